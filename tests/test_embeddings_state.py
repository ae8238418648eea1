"""Issue 25 on the Embeddings page: its map, colouring and selection kept across pages and in the URL
(item 2, and the link), a colouring by -ELBO that stays readable after a click, and Clear selection
(item 10), an autoencoder's words (item 11)."""

import pytest
from conftest import ROOT, image_size, labelled, open_app, rerun
from streamlit.testing.v1 import AppTest

from vae.embeddings import load_embedding

PRETRAINED = ROOT / "pretrained"


def widget(at: AppTest, kind: str, label: str):
    return labelled(at.get(kind), label)


def chart_data(at: AppTest) -> list:
    """Each chart's points (the map first, then a 2-d model's plane) as a DataFrame, and its spec."""
    import json

    import pyarrow as pa

    out = []
    for chart in at.get("vega_lite_chart"):
        frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
        out.append((next(f for f in frames if "test image" in f), json.loads(chart.proto.spec)))
    return out


def picked(at: AppTest) -> list[list[int]]:
    """The map positions each chart draws as selected."""
    return [sorted(data.loc[data["picked"], "pos"].tolist()) if "picked" in data else [] for data, _ in chart_data(at)]


def click(at: AppTest, chart: int, positions: list[int]) -> AppTest:
    """What st.altair_chart stores under chart number ``chart``'s key when its points are clicked."""
    key = at.get("vega_lite_chart")[chart].key
    at.session_state[key] = {"selection": {"points": [{"pos": p} for p in positions]}}
    return rerun(at)


def away_and_back(at: AppTest) -> AppTest:
    for other in ("theory", "manifold"):
        at.switch_page(f"pages/{other}.py")
        rerun(at)
    at.switch_page("pages/embeddings.py")
    return rerun(at)


def reopened(params: dict) -> AppTest:
    """A new session on /embeddings?PARAMS: what a shared link opens."""
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    fresh.query_params.update(params)
    rerun(fresh)
    fresh.switch_page("pages/embeddings.py")
    fresh.query_params.update(params)
    return rerun(fresh)


def view(at: AppTest) -> tuple:
    """What the page shows: its method, colouring, headline and the selected points of each chart."""
    return (widget(at, "button_group", "Method").value, widget(at, "button_group", "Colour by").value,
            [s.value for s in at.subheader], picked(at))


def test_the_map_its_colouring_and_selection_survive_other_pages_and_open_from_a_link():
    """Item 2: after a visit to another page the map was back to t-SNE coloured by class, nothing selected."""
    at = open_app("embeddings", "mnist-vae-2d")
    widget(at, "button_group", "Method").set_value("pca")
    rerun(at)
    widget(at, "button_group", "Colour by").set_value("neg_elbo")
    rerun(at)
    click(at, 0, [3, 5])
    before = view(at)
    assert before[:3] == ("pca", "neg_elbo", ["2 selected on the PCA map"])
    assert view(away_and_back(at))[:3] == before[:3]
    assert before[3] == picked(at) == [[3, 5], [3, 5]]  # both charts draw the selection (it may come from a link)
    params = dict(at.query_params)
    emb = load_embedding(PRETRAINED / "mnist-vae-2d")
    assert params["method"] == "pca" and params["colour"] == "neg_elbo"
    assert params["picked"] == ",".join(str(int(emb.indices[p])) for p in (3, 5))  # test indices, not positions
    assert view(reopened(params)) == before


def test_a_point_picked_on_one_map_stays_picked_on_another():
    """The selection names test images: the same images are picked on the PCA map as on the t-SNE map."""
    at = open_app("embeddings", "mnist-vae-20d")
    click(at, 0, [7])
    emb = load_embedding(PRETRAINED / "mnist-vae-20d")
    title = f"Test image #{int(emb.indices[7]):,} ("
    assert at.subheader[0].value.startswith(title)
    widget(at, "button_group", "Method").set_value("pca")
    rerun(at)
    assert at.subheader[0].value.startswith(title) and "picked on the PCA map" in at.subheader[0].value


def test_a_box_on_the_plane_survives_other_pages_and_a_link():
    at = open_app("embeddings", "mnist-vae-2d")
    widget(at, "toggle", "Box select").set_value(True)
    rerun(at)
    key = at.get("vega_lite_chart")[1].key
    at.session_state[key] = {"selection": {"box": {"x": [0.5, -1.0], "y": [-0.5, 1.0]}}}
    rerun(at)
    headline = at.subheader[0].value
    assert headline.endswith("selected on the latent plane")
    assert at.query_params["rect"] == "-1,0.5,-0.5,1" and at.query_params["on"] == "plane"
    assert away_and_back(at).subheader[0].value == headline
    assert reopened(dict(at.query_params)).subheader[0].value == headline


def test_n_belongs_to_the_model():
    """A model without stored maps never inherits a shipped model's N, nor one model another's."""
    at = open_app("embeddings", "mnist-vae-2d")
    widget(at, "button_group", "Method").set_value("pca")
    rerun(at)
    widget(at, "slider", "Test images (N)").set_value(500)
    rerun(at)
    at.sidebar.selectbox[0].select("mnist-vae-20d")
    rerun(at)
    assert widget(at, "slider", "Test images (N)").value == widget(at, "slider", "Test images (N)").max
    at.sidebar.selectbox[0].select("mnist-vae-2d")
    rerun(at)
    assert widget(at, "slider", "Test images (N)").value == 500


def test_a_link_with_values_the_page_cannot_take_opens_the_defaults_and_says_so():
    at = reopened({"model": "mnist-vae-2d", "method": "isomap", "perplexity": "900", "picked": "x,1"})
    assert widget(at, "button_group", "Method").value == "tsne" and widget(at, "slider", "Perplexity").value == 30
    assert not at.subheader and not at.exception
    (notice,) = [w.value for w in at.warning if w.value.startswith("Ignored from the link")]
    assert "method=isomap" in notice and "perplexity=900" in notice and "picked=x,1" in notice


def test_a_linked_pick_the_map_does_not_hold_is_said_and_leaves_the_link():
    """Issue 40 item 15: picked=123456 was neither said nor dropped from the URL; on=plane for a 20-d model,
    which has no plane, was not said either."""
    emb = load_embedding(PRETRAINED / "mnist-vae-20d")
    on_map = str(int(emb.indices[7]))
    at = reopened({"model": "mnist-vae-20d", "picked": f"{on_map},123456", "on": "plane"})
    (notice,) = [w.value for w in at.warning if w.value.startswith("Ignored from the link")]
    assert f"picked=123456 (not among the {emb.n:,} test images of this map)" in notice  # the dataset on disk
    assert "on=plane (a chart this model does not have)" in notice
    assert at.query_params["picked"] == on_map and "on" not in at.query_params
    assert at.subheader[0].value.startswith(f"Test image #{int(on_map):,} (")
    rerun(at)
    assert not [w for w in at.warning if w.value.startswith("Ignored from the link")]  # said once


def test_colouring_by_elbo_after_a_click_keeps_the_colour_scale_readable():
    """Item 10: every point but the clicked one was drawn at 10% opacity, so the colour bar could not be
    read. Now the others keep most of their colour and the picked point is outlined and larger."""
    at = open_app("embeddings", "mnist-vae-20d")
    click(at, 0, [7])
    widget(at, "button_group", "Colour by").set_value("neg_elbo")
    rerun(at)
    ((data, spec),) = chart_data(at)
    layer = spec["layer"][0]
    assert layer["encoding"]["color"]["field"] == "value"
    assert layer["encoding"]["opacity"] == {"field": "alpha", "scale": None, "type": "quantitative"}
    others, one = data[~data["picked"]], data[data["picked"]]
    assert one["pos"].tolist() == [7] and float(one["alpha"].iloc[0]) > 0.9
    assert float(others["alpha"].min()) >= 0.5  # was 0.1
    assert float(one["size"].iloc[0]) > float(others["size"].max())
    stroke = layer["encoding"]["stroke"]
    assert stroke["condition"] == [{"test": "datum.picked", "value": "black"}] and stroke["value"] is None
    widget(at, "button_group", "Colour by").set_value("class")
    rerun(at)
    ((data, _),) = chart_data(at)
    assert float(data.loc[~data["picked"], "alpha"].max()) < 0.2  # by class the others fade: the picked point stands out


def test_clear_selection_is_a_button():
    """Item 10: clearing a selection took a double-click that only Box select's help mentioned."""
    at = open_app("embeddings", "mnist-vae-2d")
    clear = widget(at, "button", "Clear selection")
    assert clear.disabled  # nothing to clear yet
    click(at, 0, [3, 5])
    assert at.subheader[0].value == "2 selected on the t-SNE map" and "picked" in at.query_params
    widget(at, "button", "Clear selection").click()
    rerun(at)
    assert not at.subheader and picked(at) == [[], []] and "picked" not in at.query_params
    assert widget(at, "button", "Clear selection").disabled
    assert at.info[-1].value.startswith("Hover a point to see its image")
    click(at, 0, [3, 5])  # the same points again: the charts were drawn afresh, so this is a new selection
    assert at.subheader[0].value == "2 selected on the t-SNE map"


@pytest.mark.parametrize("name", ["mnist-ae-2d", "mnist-vae-2d", "mnist-cvae-class-prior"])
def test_the_page_speaks_of_codes_for_an_autoencoder(name):
    """Item 11: for mnist-ae-2d the page said "mu(x) of q(z|x)" and "the prior N(0, I) is centred at the
    origin"; a plain autoencoder has neither (its codes z = f(x), no prior)."""
    at = open_app("embeddings", name)
    intro = at.main.markdown[0].value
    plane = next(c.value for c in at.main.caption if c.value.startswith("The raw latent plane"))
    text = " ".join([intro, *(c.value for c in at.main.caption), *(w.help or "" for w in at.main.get("button_group"))])
    if name == "mnist-ae-2d":
        assert "q(z|x)" not in text and "mu(x)" not in text and "N(0, I)" not in text and "the means of" not in text
        assert "code z = f(x)" in intro and "no prior" in plane and "t-SNE of the codes of" in text
    elif name == "mnist-vae-2d":
        assert "mu(x) of q(z|x)" in intro and "The prior N(0, I) is centred at the origin." in plane
    else:  # its prior is a mean per class
        assert "N(0, I)" not in plane and "Each class's prior N(mu_y, I)" in plane


def test_projector_mode_enlarges_the_charts_fonts_and_the_images(media):
    def sizes() -> list[tuple[int, int]]:
        return [image_size(media, img.proto.imgs[0].url) for img in at.get("image")]

    at = open_app("embeddings", "mnist-vae-2d")
    click(at, 0, [3])
    plain = sizes()
    axis = lambda: chart_data(at)[0][1]["layer"][0]["encoding"]["x"].get("axis", {})  # noqa: E731
    assert len(plain) == 3 and "labelFontSize" not in axis()  # the theme's
    labelled(at.sidebar.toggle, "Projector mode").set_value(True)
    rerun(at)
    assert axis()["labelFontSize"] == 16  # on the axis itself: Streamlit's theme overrides a chart's config
    assert sizes() == [(2 * w, 2 * h) for w, h in plain]  # the preview, the picked image, its neighbours


def test_your_placed_image_survives_other_pages():
    import io

    import numpy as np
    from PIL import Image

    picture = np.zeros((112, 112), dtype=np.uint8)
    picture[20:92, 50:62] = 255  # a one
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "PNG")
    at = open_app("embeddings", "mnist-vae-2d")
    at.file_uploader(key="emb_upload").set_value(("one.png", buf.getvalue(), "image/png"))
    rerun(at)
    headline = at.subheader[0].value
    assert headline.startswith("Your image, at (")
    assert away_and_back(at).subheader[0].value == headline
    (expander,) = [e for e in at.main.expander if e.label == "Place your own image on the map"]
    assert expander.proto.expanded  # open on it
