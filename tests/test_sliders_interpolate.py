"""AppTest runs of the sliders and interpolation pages: no exception, and their widgets change the images."""

import io

import numpy as np
import pytest
import torch
from conftest import ROOT, SAMPLE, SHIPPED, labelled, open_app, rerun, shown
from PIL import Image
from streamlit.testing.v1 import AppTest

from vae.checkpoint import load_checkpoint, save_checkpoint
from vae.data import load_test_images
from vae.latent import encode_images, kl_per_dimension, rank_dimensions
from vae.models import VAE
from vae.train import TrainConfig


def open_page(page: str, model: str = "mnist-vae-2d") -> AppTest:
    return open_app(page, model)


def z_values(at: AppTest, model: str, d: int) -> list[float]:
    return [at.slider(key=f"sliders/{model}/z{j}").value for j in range(d)]


# ---------------------------------------------------------------- sliders


def test_a_slider_redraws_the_decoded_image_and_the_traversals():
    at = open_page("sliders")
    assert at.title[0].value == "Latent sliders" and not at.error
    assert z_values(at, "mnist-vae-2d", 2) == [0.0, 0.0]
    before = shown(at)  # decoded image, test-image thumbnail, two traversal rows
    assert len(before) == 4 and all(url.endswith(".png") for url in before)
    at.slider(key="sliders/mnist-vae-2d/z0").set_value(1.5)
    rerun(at)
    after = shown(at)
    assert after[0] != before[0] and after[1] == before[1]  # the image changed, the thumbnail did not
    # Traversal rows, by KL: z[1]'s row is drawn around the new z[0]; z[0]'s own row sweeps z[0] anyway.
    kl = load_checkpoint(ROOT / "pretrained" / "mnist-vae-2d")[2]["test"]["kl_per_dim"]
    order = sorted(range(2), key=lambda j: -kl[j])
    assert [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**z[")] == [f"z[{j}]" for j in order]
    row_of = {j: 2 + r for r, j in enumerate(order)}  # position in shown(): image, thumbnail, then the rows
    assert after[row_of[1]] != before[row_of[1]] and after[row_of[0]] == before[row_of[0]]
    at.slider(key="sliders/mnist-vae-2d/z0").set_value(0.0)
    rerun(at)
    assert shown(at)[0] == before[0]  # same z, same pixels


def test_starting_points_and_reset_set_the_sliders():
    model = "mnist-vae-20d"
    at = open_page("sliders", model)
    start = shown(at)[0]
    labelled(at.button, "Random draw").click()
    rerun(at)
    drawn = z_values(at, model, 20)
    assert sum(v != 0 for v in drawn) >= 18 and all(-4 <= v <= 4 for v in drawn) and shown(at)[0] != start
    labelled(at.button, "Prior mean").click()
    rerun(at)
    assert z_values(at, model, 20) == [0.0] * 20 and shown(at)[0] == start

    # The encoding of the 6th test image of class 3 (index 5 among the threes).
    at.selectbox(key="sliders/class").select(3)
    rerun(at)
    at.number_input(key="sliders/example").set_value(5)
    rerun(at)
    labelled(at.button, "Start from its encoding (mu)").click()
    rerun(at)
    images, labels, _, _ = load_test_images("mnist", sample=SAMPLE)
    x = images[torch.nonzero(labels == 3).flatten()[5]][None]
    net, _, _ = load_checkpoint(ROOT / "pretrained" / model, "cpu")
    mu = encode_images(net.eval(), x)[0][0]
    expected = [round(min(4.0, max(-4.0, float(v))), 2) for v in mu]
    assert z_values(at, model, 20) == pytest.approx(expected, abs=1e-9)
    assert "encoding of test image" in at.get("image")[0].proto.imgs[0].caption
    encoded = shown(at)[0]

    at.slider(key=f"sliders/{model}/z7").set_value(-3.0)
    rerun(at)
    assert shown(at)[0] != encoded
    labelled(at.button, "Reset").click()  # back to the last starting point, not to zero
    rerun(at)
    assert z_values(at, model, 20) == pytest.approx(expected, abs=1e-9) and shown(at)[0] == encoded


def test_each_model_keeps_its_own_sliders():
    at = open_page("sliders", "mnist-vae-2d")
    at.slider(key="sliders/mnist-vae-2d/z1").set_value(2.5)
    rerun(at)
    at.sidebar.selectbox[0].select("mnist-vae-20d")
    rerun(at)
    assert z_values(at, "mnist-vae-20d", 20) == [0.0] * 20
    assert len([s for s in at.slider if s.label.startswith("z[")]) == 20


def test_kl_chart_and_traversals_fold_the_inactive_dimensions():
    model = "mnist-vae-20d"
    at = open_page("sliders", model)
    net, _, metrics = load_checkpoint(ROOT / "pretrained" / model, "cpu")
    images, _, _, _ = load_test_images("mnist", sample=SAMPLE)
    measured = rank_dimensions(kl_per_dimension(net.eval(), images))
    assert measured[1], "the 20-d model is expected to leave some dimensions unused"
    # The page shows metrics.json's KL (the whole test split) when present, else measures it.
    shipped = (metrics.get("test") or metrics.get("test_binarized") or {}).get("kl_per_dim")
    active, inactive = rank_dimensions(shipped) if shipped else measured
    assert set(inactive) == set(measured[1])  # the shipped figures agree with the weights
    assert [c.key for c in at.get("plotly_chart")] == ["sliders_kl"]
    caption = next(c.value for c in at.caption if "dimensions active" in c.value)
    assert f"{len(active)} of 20 dimensions active, {len(inactive)} inactive" in caption
    labels = [s.label for s in at.slider if s.label.startswith("z[")]
    assert sorted(int(s[2:s.index("]")]) for s in labels if s.endswith("inactive")) == sorted(inactive)
    # Traversal rows: one image per active dimension, ordered by KL; the inactive ones folded away.
    rows = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**z[")]
    assert rows == [f"z[{j}]" for j in active] and len(shown(at)) == 2 + len(active)
    before = shown(at)
    at.toggle[0].set_value(True)
    rerun(at)
    rows = [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**z[")]
    assert rows == [f"z[{j}]" for j in active + inactive] and len(shown(at)) == 22
    labelled(at.slider, "Images per row").set_value(5)
    rerun(at)
    assert shown(at)[2] != before[2] and shown(at)[0] == before[0]
    labelled(at.slider, "Traversal span (± standard deviations)").set_value(1.5)
    rerun(at)
    assert len(set(shown(at)[2:]) & set(before[2:])) == 0


def test_a_model_without_test_metrics_has_its_kl_measured(tmp_path, monkeypatch):
    # A saved 6-d model whose last three dimensions are the prior for every x: mu = 0, logvar = 0.
    torch.manual_seed(0)
    net = VAE(latent_dim=6, hidden=(32,))
    with torch.no_grad():
        for layer in (net.fc_mu, net.fc_logvar):
            layer.weight[3:] = 0
            layer.bias[3:] = 0
        net.fc_mu.bias[:3] = 1.0  # and the first three clearly used: KL >= 0.5 nats each
    save_checkpoint(net, vars(TrainConfig(model="vae", latent_dim=6, hidden=[32])), {}, tmp_path / "half-used")
    monkeypatch.setenv("VAE_USER_MODELS", str(tmp_path))
    at = open_page("sliders", "half-used")
    caption = next(c.value for c in at.caption if "dimensions active" in c.value)
    assert "3 of 6 dimensions active, 3 inactive" in caption and "metrics.json" not in caption
    assert [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**z[")] == [
        f"z[{j}]" for j in rank_dimensions(kl_per_dimension(net.eval(), load_test_images("mnist", sample=SAMPLE)[0]))[0]]
    assert len(shown(at)) == 2 + 3 and not at.error


def test_cvae_label_joins_the_sliders():
    at = open_page("sliders", "mnist-cvae")
    label = at.get("button_group")[0]
    before = shown(at)[0]
    label.set_value(7)
    rerun(at)
    assert shown(at)[0] != before and "y = 7" in at.get("image")[0].proto.imgs[0].caption
    at.selectbox(key="sliders/class").select(4)
    rerun(at)
    labelled(at.button, "Start from its encoding (mu)").click()
    rerun(at)
    assert at.get("button_group")[0].value == 4  # the image's own label comes with its style


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_runs_both_pages(name):
    for page in ("sliders", "interpolate"):
        at = open_page(page, name)
        assert shown(at) and not at.error


# ---------------------------------------------------------------- interpolation


def strip(at: AppTest) -> tuple[str, ...]:
    """The path's images (one st.image of every frame, the last image element on the page)."""
    return tuple(at.get("image")[-1].value)


def strip_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Left to right"))


def test_interpolation_strip_follows_method_and_count():
    at = open_page("interpolate")
    assert at.title[0].value == "Interpolation" and not at.error
    assert len(at.get("image")) == 3 and len(strip(at)) == 8 + 4 and len(at.get("plotly_chart")) == 1
    assert "test image 0 (a 7)" in strip_caption(at) and "test image 1 (a 2)" in strip_caption(at)
    seen = {strip(at)}
    labelled(at.radio, "Interpolation").set_value("slerp")
    rerun(at)
    seen.add(strip(at))
    labelled(at.slider, "Images between the ends").set_value(12)
    rerun(at)
    seen.add(strip(at))
    assert "12 images decoded" in strip_caption(at) and len(strip(at)) == 16
    at.number_input(key="interpolate/end_example").set_value(42)
    rerun(at)
    seen.add(strip(at))
    assert len(seen) == 4 and not at.error


def test_cvae_path_is_decoded_with_the_class_of_either_end():
    at = open_page("interpolate", "mnist-cvae")
    assert len(at.get("image")) == 3 and len(at.get("plotly_chart")) == 1
    assert "path decoded with y = 7" in strip_caption(at)  # test image 0 is a 7
    before = strip(at)
    labelled(at.radio, "Decode the path with the class of").set_value("the end")
    rerun(at)
    assert "path decoded with y = 2" in strip_caption(at) and strip(at) != before


def test_larger_latent_space_has_no_plane():
    at = open_page("interpolate", "mnist-vae-20d")
    assert len(at.get("image")) == 3 and not at.get("plotly_chart")


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_an_upload_can_be_an_end_and_a_bad_one_says_why():
    at = open_page("interpolate")
    before = strip(at)
    at.radio(key="interpolate/end_from").set_value("an upload")
    rerun(at)
    assert len(shown(at)) == 1 and at.info  # the start's thumbnail; waits for the end's file
    digit = np.zeros((140, 140), np.uint8)
    digit[30:110, 60:80] = 255  # a thick white "1" on black
    at.file_uploader[0].set_value(("one.png", png(digit), "image/png"))
    rerun(at)
    assert len(at.get("image")) == 3 and strip(at) != before and not at.error
    assert "your upload" in strip_caption(at)
    at.file_uploader[0].set_value(("broken.png", b"not an image at all", "image/png"))
    rerun(at)
    assert len(at.error) == 1 and len(shown(at)) == 1  # the start's thumbnail, no strip


def test_interpolation_labels_t_and_offers_a_png_and_a_gif(monkeypatch):
    """Issue 14: the ends' thumbnails, the frames labelled with t, a PNG and an animated GIF. Issue 25: the GIF
    was interpolation.gif at 112 x 112 px; it is named after the model, the ends and the method, and larger."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    from ui.images import label_tiles

    made = {}  # file name -> the callable a download button runs when clicked
    add_deferred = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        made[file_name] = data_callable
        return add_deferred(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    at = open_page("interpolate")
    assert [b.proto.label for b in at.main.get("download_button")] == ["Download PNG", "Download GIF"]
    captions = [i.caption for i in at.get("image")[-1].proto.imgs]
    assert captions == ["image", "t = 0", *[f"t = {i / 9:.2f}" for i in range(1, 9)], "t = 1", "image"]
    gif = Image.open(io.BytesIO(made["mnist-vae-2d-test-image-0-to-test-image-1-linear.gif"]()))
    assert gif.n_frames == 2 * 10 - 2 and gif.size == (224, 224)  # there and back; each frame 8x
    assert "mnist-vae-2d-test-image-0-to-test-image-1-linear-x4.png" in made
    strip_png = np.full((29, 4 * 29), 128, np.uint8)
    labelled_strip = label_tiles(strip_png, ["image", "t = 0", "t = 1", "image"], 4, 29, font=9)
    assert labelled_strip.shape == (29 + 15, 4 * 29) and (labelled_strip[29:] < 128).any()  # text in the band


def test_interpolation_says_the_prior_norm_of_the_models_dimension():
    """Issue 25, item 11: for d = 2 it said |z| is near 1.41; the chi distribution's mean is 1.25, its median 1.18."""
    at = open_page("interpolate")
    caption = next(c.value for c in at.caption if c.value.startswith("|z| along the path"))
    assert "mean 1.25, median 1.18" in caption and "90% of draws from 0.32 to 2.45" in caption
    at = open_page("interpolate", "mnist-vae-20d")
    caption = next(c.value for c in at.caption if c.value.startswith("|z| along the path"))
    assert "chi distribution with 20 degrees of freedom, mean 4.42" in caption  # sqrt(2) G(10.5) / G(10)


def pad_key(at: AppTest, model: str = "mnist-vae-2d") -> str:
    return next(c.key for c in at.get("plotly_chart") if c.key.startswith(f"sliders/{model}/pad"))


def click_pad(at: AppTest, x: float, y: float) -> None:
    point = {"x": x, "y": y, "curve_number": 10, "point_number": 0, "point_index": 0}
    at.session_state[pad_key(at)] = {"selection": {"points": [point], "point_indices": [0], "box": [], "lasso": []}}
    rerun(at)


def test_a_click_on_the_latent_pad_sets_the_sliders():
    """Issue 14: for a 2-d model, a click on the plane decodes that z (the sliders follow). Issue 25: a
    click on the point clicked before, after a slider moved, sets the sliders again (it was ignored: the
    chart's selection had not changed, and to Plotly a second click on a selected point deselects it)."""
    at = open_page("sliders")
    before = shown(at)[0]
    click_pad(at, 1.5, -0.75)
    assert z_values(at, "mnist-vae-2d", 2) == [1.5, -0.75] and shown(at)[0] != before
    assert "a click on the latent pad at (1.5, -0.75)" in at.get("image")[0].proto.imgs[0].caption
    at.slider(key="sliders/mnist-vae-2d/z0").set_value(0.25)  # the click is not applied again: the slider's move stays
    rerun(at)
    assert z_values(at, "mnist-vae-2d", 2) == [0.25, -0.75]
    click_pad(at, 1.5, -0.75)  # the same point again
    assert z_values(at, "mnist-vae-2d", 2) == [1.5, -0.75]
