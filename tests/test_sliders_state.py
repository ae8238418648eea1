"""Issue 25 on the Latent sliders, Interpolation and CVAE pages: their settings kept across pages and in
the URL, the manifold's hand-off for every kind of model, the sliders ordered by KL."""


import pytest
from conftest import ROOT, image_size, open_app, rerun, shown
from streamlit.testing.v1 import AppTest

from vae.checkpoint import load_checkpoint
from vae.latent import grid_coordinates


def z_values(at: AppTest, model: str, d: int) -> list[float]:
    return [at.slider(key=f"sliders/{model}/z{j}").value for j in range(d)]


@pytest.mark.parametrize("model", ["mnist-vae-2d", "mnist-vae-20d", "mnist-cvae", "fashion-vae-2d"])
def test_a_manifold_cell_opens_in_the_sliders_for_every_model(model):
    """Item 1: for mnist-vae-20d, mnist-cvae and fashion-vae-2d the picker fell back and every z was 0."""
    at = open_app("manifold", model)
    net, config, metrics = load_checkpoint(ROOT / "pretrained" / model, "cpu")
    d = net.latent_dim
    if config["model"] == "cvae":
        at.button_group(key="manifold/label").set_value(6)
        rerun(at)
    dims = (at.selectbox(key="manifold/x").value, at.selectbox(key="manifold/y").value) if d > 2 else (0, 1)
    at.number_input(key="manifold_cell_col").set_value(15)  # the right column
    at.number_input(key="manifold_cell_row").set_value(1)  # the top row
    at.button(key="manifold_cell_open").click()
    rerun(at)
    assert at.title[0].value == "Latent sliders" and at.sidebar.selectbox[0].value == model
    top = round(float(grid_coordinates(15, 2.0, "quantile")[-1]), 2)
    expected = [0.0] * d
    expected[dims[0]] = expected[dims[1]] = top
    assert z_values(at, model, d) == pytest.approx(expected, abs=1e-9)
    caption = at.get("image")[0].proto.imgs[0].caption
    assert "the manifold cell (15, 1)" in caption, caption
    if config["model"] == "cvae":
        assert at.button_group(key=f"sliders/{model}/y").value == 6 and "y = 6" in caption


def reopened(params: dict, page: str) -> AppTest:
    """A new session on /PAGE?PARAMS: what a shared link opens."""
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    fresh.query_params.update(params)
    rerun(fresh)  # the landing page: the model is read from the link
    fresh.switch_page(f"pages/{page}.py")
    fresh.query_params.update(params)  # what a link to /PAGE?... holds
    return rerun(fresh)


def away_and_back(at: AppTest, page: str) -> AppTest:
    for other in ("theory", "manifold"):
        at.switch_page(f"pages/{other}.py")
        rerun(at)
    at.switch_page(f"pages/{page}.py")
    return rerun(at)


def test_the_sliders_keep_z_across_pages_and_open_from_a_link():
    """Item 2: the sliders went back to 0 after a visit to another page."""
    model = "mnist-vae-20d"
    at = open_app("sliders", model)
    at.slider(key=f"sliders/{model}/z3").set_value(1.5)
    at.slider(key=f"sliders/{model}/z7").set_value(-2.25)
    rerun(at)
    image, params = shown(at)[0], dict(at.query_params)
    expected = [0.0] * 20
    expected[3], expected[7] = 1.5, -2.25
    assert params["model"] == model and params["z"] == ",".join(f"{v:g}" for v in expected)
    away_and_back(at, "sliders")
    assert z_values(at, model, 20) == expected and shown(at)[0] == image
    fresh = reopened(params, "sliders")
    assert fresh.sidebar.selectbox[0].value == model and z_values(fresh, model, 20) == expected
    assert shown(fresh)[0] == image and not fresh.warning


def test_a_cvae_label_and_a_pad_click_are_kept_and_linked():
    model = "mnist-cvae"
    at = open_app("sliders", model)
    at.button_group(key=f"sliders/{model}/y").set_value(7)
    at.slider(key=f"sliders/{model}/z0").set_value(0.5)
    rerun(at)
    image, params = shown(at)[0], dict(at.query_params)
    assert params["y"] == "7" and params["z"] == "0.5,0"
    away_and_back(at, "sliders")
    assert at.button_group(key=f"sliders/{model}/y").value == 7 and shown(at)[0] == image
    assert shown(reopened(params, "sliders"))[0] == image


def test_a_link_with_a_z_of_the_wrong_length_is_ignored_and_said():
    fresh = reopened({"model": "mnist-vae-2d", "z": "1,2,3"}, "sliders")
    assert z_values(fresh, "mnist-vae-2d", 2) == [0.0, 0.0] and not fresh.exception
    assert len(fresh.warning) == 1 and "z=1,2,3 (needs 2 values)" in fresh.warning[0].value


def interpolation_strip(at: AppTest) -> tuple[str, ...]:
    return tuple(at.get("image")[-1].value)


def test_the_interpolation_keeps_its_ends_and_settings():
    at = open_app("interpolate")
    at.selectbox(key="interpolate/start_class").select(3)
    rerun(at)
    at.number_input(key="interpolate/start_example").set_value(5)
    at.radio(key="interpolate/method").set_value("slerp")
    at.slider(key="interpolate/n").set_value(12)
    rerun(at)
    strip, params = interpolation_strip(at), dict(at.query_params)
    assert params == {"start_class": "3", "start_example": "5", "method": "slerp", "n": "12"}
    away_and_back(at, "interpolate")
    assert interpolation_strip(at) == strip and at.slider(key="interpolate/n").value == 12
    assert interpolation_strip(reopened(params, "interpolate")) == strip


def test_the_cvae_page_keeps_its_class_and_style():
    model = "mnist-cvae"
    at = open_app("cvae", model)
    at.button_group(key="cvae/class").set_value(7)
    at.slider(key=f"cvae/{model}/style0").set_value(1.5)
    at.slider(key=f"cvae/{model}/style1").set_value(-0.75)
    at.slider(key="cvae/rows").set_value(2)
    rerun(at)
    next(b for b in at.button if b.label == "New styles").click()
    rerun(at)
    images, params = shown(at), dict(at.query_params)
    assert {k: params[k] for k in ("class", "style", "rows")} == {"class": "7", "style": "1.5,-0.75", "rows": "2"}
    assert int(params["seed"]) >= 0
    away_and_back(at, "cvae")
    assert shown(at) == images
    assert shown(reopened(params, "cvae")) == images


def test_the_sliders_of_a_large_model_are_ordered_by_kl_with_the_inactive_folded_away():
    """mnist-vae-binarized: 50 sliders in index order, 26 of them inactive, all in view."""
    from vae.latent import ACTIVE_KL_THRESHOLD, rank_dimensions

    model = "mnist-vae-binarized"
    at = open_app("sliders", model)
    metrics = load_checkpoint(ROOT / "pretrained" / model, "cpu")[2]
    kl = (metrics.get("test") or metrics.get("test_binarized"))["kl_per_dim"]
    active, inactive = rank_dimensions(kl, ACTIVE_KL_THRESHOLD)
    assert len(inactive) == 26
    keys = [s.key for s in at.slider if s.key.startswith(f"sliders/{model}/z")]
    assert keys == [f"sliders/{model}/z{j}" for j in active + inactive]  # by KL, most informative first
    folded = next(e for e in at.expander if e.label.startswith("26 inactive dimensions"))
    assert [s.key for s in folded.slider] == [f"sliders/{model}/z{j}" for j in inactive]
    assert all(s.label.endswith("inactive") for s in folded.slider)


def width(media: dict, url: str) -> int:
    return image_size(media, url)[0]


@pytest.mark.parametrize("page, model", [("sliders", "mnist-vae-2d"), ("interpolate", "mnist-vae-2d"), ("cvae", "mnist-cvae")])
def test_projector_mode_enlarges_the_images(media, page, model):
    """Projector mode: the decoded image, the start's thumbnail, the CVAE's style at twice the scale;
    the path's frames as large as one row of the wider column allows (3x instead of 2x for 12 frames)."""
    at = open_app(page, model)
    before, frame = width(media, shown(at)[0]), width(media, shown(at)[-1])
    at.sidebar.toggle(key="app/projector").set_value(True)
    rerun(at)
    assert width(media, shown(at)[0]) == 2 * before
    if page == "interpolate":
        assert (frame, width(media, shown(at)[-1])) == (56, 84)


def test_a_link_value_that_is_no_number_is_said_in_words():
    """Issue 40 item 15: ?z=abc said Python's own "could not convert string to float: 'abc'" in English."""
    fresh = reopened({"model": "mnist-vae-2d", "z": "abc"}, "sliders")
    assert z_values(fresh, "mnist-vae-2d", 2) == [0.0, 0.0] and "z" not in fresh.query_params
    assert [w.value for w in fresh.warning] == ["Ignored from the link, showing the defaults instead: z=abc (not a number)."]


def test_a_model_with_every_dimension_inactive_says_so_instead_of_traversing_nothing(tmp_path, monkeypatch):
    """Issue 40's review: a 20-image zip trained for one epoch left every dimension at the prior, and the
    traversals crashed (ZeroDivisionError in tile) with "show inactive" off."""
    from vae.checkpoint import save_checkpoint
    from vae.models import build_model

    config = {"dataset": "mnist", "model": "vae", "latent_dim": 2, "hidden": [16]}
    metrics = {"test": {"kl_per_dim": [0.0, 0.0], "n_images": 10000, "neg_elbo": 500.0}}
    save_checkpoint(build_model(config), config, metrics, tmp_path / "user_models" / "collapsed")
    monkeypatch.setenv("VAE_USER_MODELS", str(tmp_path / "user_models"))
    at = open_app("sliders", model="collapsed")
    assert any("No dimension is active" in i.value for i in at.info), [i.value for i in at.info]
