"""AppTest runs of the reconstruct page: uploads good and bad, the test-image gallery, every kind of model."""

import io
import json
import re
import struct
import zlib

import numpy as np
import pytest
import streamlit as st
from PIL import Image, ImageDraw
from conftest import SHIPPED, image_size, labelled, open_app, rerun, shown
from streamlit.testing.v1 import AppTest

from ui.images import ANY_CLASS


def seven_photo(fmt: str = "JPEG", size=(600, 450)) -> bytes:
    """A dark "7" on light, unevenly lit paper, off-centre."""
    w, h = size
    im = Image.fromarray(np.linspace(235, 160, w, dtype=np.float32)[None, :].repeat(h, 0).astype(np.uint8)).convert("RGB")
    ImageDraw.Draw(im).line([(120, 90), (260, 90), (170, 330)], fill=(40, 40, 40), width=26, joint="curve")
    b = io.BytesIO()
    im.save(b, fmt)
    return b.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG header claiming width x height grey pixels (10 gigapixels here), with no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def open_page(model: str | None = None) -> AppTest:
    return open_app("reconstruct", model)


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    if not at.file_uploader:  # the page opens on the test images
        at.get("button_group")[0].set_value("Upload")
        rerun(at)
    at.file_uploader[0].set_value((name, data, mime))
    return rerun(at)


def nats(at: AppTest) -> dict[str, float]:
    """The metrics row: label -> value in nats."""
    return {m.label: float(re.match(r"(-?[\d.]+) nats", m.value).group(1)) for m in at.metric}


@pytest.fixture(scope="module")
def page():
    """One session for the checks that only add uploads, to keep the file fast."""
    return open_page()


def test_page_opens_on_a_test_image_then_offers_the_uploader(page):
    assert page.title[0].value == "Reconstruct an image"
    assert page.get("button_group")[0].value == "Test image" and len(shown(page)) == 3 + 1 and len(page.metric) == 4
    page.get("button_group")[0].set_value("Upload")
    rerun(page)
    assert page.file_uploader[0].proto.type == [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"]
    assert not page.error and not page.metric and not shown(page)
    assert "appear here" in page.info[0].value
    page.get("button_group")[0].set_value("Draw")
    rerun(page)  # the canvas is a custom component: AppTest shows it empty
    assert not page.error and not page.metric and page.info[0].value.startswith("Draw")
    page.get("button_group")[0].set_value("Upload")
    rerun(page)


def test_an_upload_shows_the_steps_reconstruction_samples_elbo_and_the_plane(page):
    at = upload(page, "seven.jpg", seven_photo(), "image/jpeg")
    assert not at.error
    receives = next(m.value for m in at.markdown if "What the model receives" in m.value)
    assert "dark ink inverted" in receives and "JPEG, 600 × 450 px" in receives
    assert len(shown(at)) == 5 + 3 + 1  # five steps; input, reconstruction, samples; the attribute pair (issue 26)
    assert all(url.endswith(".png") for url in shown(at))
    v = nats(at)
    assert 0 < v["KL"] < 50 and 20 < v["Reconstruction"] < 600
    assert v["−ELBO"] == pytest.approx(v["Reconstruction"] + v["KL"], abs=0.11)
    assert v["IWAE NLL (k = 100)"] <= v["−ELBO"] + 0.1  # the IWAE bound is the tighter one
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the latent plane (2-d model) and mu, sigma per dimension
    plane = charts[0].proto.spec
    # Ten classes, then the ellipse and the star, all WebGL, so the star is drawn last: on top.
    traces = json.loads(plane)["data"]
    assert [t["type"] for t in traces] == ["scattergl"] * 12 and traces[-1]["marker"]["symbol"] == "star"
    assert [t["name"] for t in traces[-2:]] == ["μ ± 2σ", "this image"]


@pytest.mark.parametrize("name, data, message", [
    ("notes.png", b"these are my notes, not a picture\n" * 20, "not an image that can be read"),
    ("empty.png", b"", "empty"),
    ("cut.jpg", seven_photo()[:3000], "could not be decoded"),
    ("bomb.png", png_header(100_000, 100_000), "megapixel limit"),
    ("white.png", (lambda b: (Image.new("L", (64, 64), 255).save(b, "PNG"), b.getvalue())[1])(io.BytesIO()), "blank"),
    ("huge.bmp", b"BM" + bytes(11 * 2**20), "The file is 11 MiB, over the 10 MiB limit"),
])
def test_bad_uploads_show_one_error_and_the_page_keeps_working(page, name, data, message):
    at = upload(page, name, data)
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert not at.metric and not shown(at)
    assert not any("appear here" in i.value for i in at.info)  # no placeholder beside the error (issue 14)
    at = upload(at, "seven.png", seven_photo("PNG"))  # a good file afterwards works at once
    assert not at.error and len(at.metric) == 4


def test_the_gallery_picks_test_images():
    at = open_page()
    assert not at.error
    assert "Example 0 is test image #0, a 7." in at.caption[0].value
    first, elbo = shown(at), nats(at)["−ELBO"]
    assert len(first) == 3 + 1  # input, reconstruction, samples; the attribute pair (issue 26)
    at.number_input[0].set_value(5)
    rerun(at)
    assert shown(at)[0] != first[0] and nats(at)["−ELBO"] != elbo
    at.select_slider[0].set_value(1000)
    rerun(at)
    assert "IWAE NLL (k = 1000)" in nats(at)


def test_a_larger_latent_space_shows_mu_and_sigma_without_the_plane():
    at = upload(open_page("mnist-vae-20d"), "seven.png", seven_photo("PNG"))
    assert not at.error and len(at.get("plotly_chart")) == 1
    spec = at.get("plotly_chart")[0].proto.spec
    assert '"z[19]"' in spec and "this image" not in spec


@pytest.mark.skipif("mnist-cvae" not in SHIPPED, reason="the CVAE is not trained yet")
def test_the_cvae_asks_for_the_class_and_it_changes_the_reconstruction():
    at = upload(open_page("mnist-cvae"), "seven.png", seven_photo("PNG"))
    def label():
        return next(s for s in at.selectbox if s.key == "reconstruct/label")

    assert "label y" in label().label
    label().select(7)
    rerun(at)
    seven = shown(at)[-3]  # the reconstruction (then the samples, then the attribute pair)
    label().select(1)
    rerun(at)
    assert "label y" in label().label and shown(at)[-3] != seven


@pytest.mark.skipif("fashion-vae-2d" not in SHIPPED, reason="the Fashion-MNIST model is not trained yet")
def test_a_fashion_model_frames_uploads_as_fashion_mnist_was_made():
    shoe = Image.new("L", (400, 220), 250)
    ImageDraw.Draw(shoe).polygon([(60, 60), (200, 60), (340, 130), (340, 170), (60, 170)], fill=50)
    b = io.BytesIO()
    shoe.save(b, "PNG")
    at = upload(open_page("fashion-vae-2d"), "shoe.png", b.getvalue())
    receives = next(m.value for m in at.markdown if "What the model receives" in m.value)
    assert not at.error and "framed as Fashion-MNIST's images were" in receives
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert any(c.startswith("longer side 28 px: 28×") for c in captions) and "box centred" in captions[4]



def test_a_doubtful_ink_box_is_said_beside_the_steps(page):
    """Issue 14, item 5: ink that reaches one edge of the photo is probably not (only) the digit."""
    im = Image.new("L", (400, 300), 230)
    ImageDraw.Draw(im).rectangle([0, 100, 200, 130], fill=40)
    b = io.BytesIO()
    im.save(b, "PNG")
    at = upload(page, "bar.png", b.getvalue())
    assert not at.error and any("reaches the left edge" in w.value for w in at.warning)
    at = upload(at, "seven.jpg", seven_photo(), "image/jpeg")
    assert not at.warning


# ---------------------------------------------------------------- kept when the page is left (issue 25, item 2)


def leave_and_come_back(at: AppTest) -> AppTest:
    at.switch_page("pages/manifold.py")
    rerun(at)
    at.switch_page("pages/reconstruct.py")
    return rerun(at)


def test_the_input_the_test_image_and_k_are_kept_and_in_the_url():
    at = open_page()
    at.selectbox(key="reconstruct/class").select(3)
    rerun(at)
    at.number_input(key="reconstruct/example").set_value(5)
    rerun(at)
    at.select_slider(key="reconstruct/k").set_value(1000)
    rerun(at)
    before, caption = shown(at), at.caption[0].value
    assert "Example 5 is test image #" in caption and "a 3" in caption
    at = leave_and_come_back(at)
    assert at.selectbox(key="reconstruct/class").value == 3 and at.number_input(key="reconstruct/example").value == 5
    assert at.select_slider(key="reconstruct/k").value == 1000 and "IWAE NLL (k = 1000)" in nats(at)
    assert shown(at) == before and at.caption[0].value == caption
    at.switch_page("pages/manifold.py")
    rerun(at)
    at.switch_page("pages/reconstruct.py")
    at.query_params.clear()  # the settings come from the session store, not only from the URL
    rerun(at)
    assert at.select_slider(key="reconstruct/k").value == 1000
    assert {k: at.query_params[k] for k in ("class", "example", "k")} == {"class": "3", "example": "5", "k": "1000"}


def test_the_any_class_choice_comes_back_after_a_class():
    """'any class' chosen after a class is not replaced by the class kept before."""
    at = open_page()
    at.selectbox(key="reconstruct/class").select(3)
    rerun(at)
    at.selectbox(key="reconstruct/class").select(ANY_CLASS)
    rerun(at)
    assert at.selectbox(key="reconstruct/class").value == ANY_CLASS and "Example (of 10,000)" in at.number_input(key="reconstruct/example").label


def test_an_upload_survives_leaving_the_page_and_can_be_removed():
    at = upload(open_page(), "seven.png", seven_photo("PNG"))
    first = shown(at)
    assert len(at.metric) == 4
    at.get("button_group")[0].set_value("Test image")
    rerun(at)
    at.get("button_group")[0].set_value("Upload")
    rerun(at)
    assert shown(at) == first and len(at.metric) == 4  # the uploader is empty again, the kept file is used
    at = leave_and_come_back(at)
    assert at.get("button_group")[0].value == "Upload" and at.query_params["input"] == "Upload"
    assert shown(at) == first and len(at.metric) == 4
    assert any("Current image: **seven.png**" in m.value for m in at.markdown)
    labelled(at.button, "Remove").click()
    rerun(at)
    assert not at.metric and not shown(at) and "appear here" in at.info[0].value


def test_an_unusable_upload_names_its_file():
    """Issue 25, item 11: the error says which file it is about (a larger file the browser refuses never
    reaches the server, which keeps the previous one and its error)."""
    white = io.BytesIO()
    Image.new("L", (64, 64), 255).save(white, "PNG")
    at = upload(open_page(), "white.png", white.getvalue())
    assert len(at.error) == 1 and at.error[0].value.startswith("**white.png**: The image looks blank")


def test_offline_the_example_number_and_the_test_image_number_agree(monkeypatch, tmp_path):
    """Issue 25, item 11: offline, "Example 0" was captioned "Test image #14" with nothing between them."""
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))  # no dataset here: the bundled sample
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = open_page()
        assert at.number_input(key="reconstruct/example").value == 0
        assert at.caption[0].value.startswith("Example 0 is test image #14, a ")
        assert at.caption[0].value.endswith("; the examples are a bundled sample of 2,000 MNIST test images "
                                            "(the dataset is not on disk).")
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


# ---------------------------------------------------------------- projector mode (issue 25)


def sizes(at: AppTest, media: dict) -> dict[str, tuple[int, int]]:
    """Each image's caption -> its (width, height) in pixels."""
    return {img.proto.imgs[0].caption: image_size(media, img.proto.imgs[0].url) for img in at.get("image")}


def test_projector_mode_doubles_the_images_and_the_chart_fonts(media):
    at = upload(open_page(), "seven.png", seven_photo("PNG"))
    plain = sizes(at, media)
    assert plain["input x, 28×28"] == (168, 168) and plain["reconstruction: the decoder's mean at z = μ"] == (168, 168)
    labelled(at.sidebar.toggle, "Projector mode").set_value(True)
    rerun(at)
    big = sizes(at, media)
    for caption in ("input x, 28×28", "reconstruction: the decoder's mean at z = μ", "28×28, centre of mass at the centre",
                    "8 draws z ~ q(z|x), each decoded to its mean image"):
        assert big[caption] == (2 * plain[caption][0], 2 * plain[caption][1]), caption
    fonts = [json.loads(c.proto.spec)["layout"]["font"]["size"] for c in at.get("plotly_chart")]
    assert fonts == [24, 24]
