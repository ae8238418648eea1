"""AppTest runs of issue 27 on the pages: Reconstruct's out-of-distribution warning (a rendered letter
raises it, test digits and a photo of a handwritten digit do not), the Embeddings page's placed
upload, the manifold's holes and the latent pad's density layer."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import open_app, rerun, shown
from PIL import Image, ImageDraw, ImageFont
from safetensors.torch import load_file

from test_reconstruct import upload
from vae.embeddings import sample_path

ROOT = Path(__file__).resolve().parents[1]


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def letter(char: str = "A") -> bytes:
    """A typed letter, black on white, in Pillow's own font (the same on every machine)."""
    im = Image.new("L", (240, 240), 255)
    ImageDraw.Draw(im).text((120, 120), char, fill=0, font=ImageFont.load_default(size=160), anchor="mm")
    return png(im)


def mnist_digits(n: int = 4) -> list[np.ndarray]:
    """The first n images of the bundled MNIST test sample, uint8 (28, 28)."""
    sample = load_file(str(sample_path(ROOT / "pretrained" / "mnist-vae-2d", "mnist")))
    return [sample["images"][i].numpy() for i in range(n)]


def digit_photo(digit: np.ndarray) -> bytes:
    """A handwritten MNIST digit as a phone photo of paper: dark ink, 10x larger, off-centre, uneven light, noise, JPEG."""
    rng = np.random.default_rng(0)
    ink = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC), dtype=np.float64) / 255
    h, w = 480, 640
    m = np.zeros((h, w))
    m[80:360, 150:430] = ink
    x = np.arange(w)[None, :]
    paper = 230 - 60 * x / w
    grey = paper * (1 - m) + 50 * m + rng.normal(0, 3, (h, w))
    return png(Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB"), "JPEG")


def ood_warnings(at) -> list[str]:
    return [w.value for w in at.warning if "out of distribution" in w.value]


@pytest.fixture(scope="module")
def page():
    return open_app("reconstruct")


def test_a_rendered_letter_is_called_out_of_distribution(page):
    at = upload(page, "letter-K.png", letter("K"))
    [text] = ood_warnings(at)
    assert "This upload is out of distribution for mnist-vae-2d" in text and "do not trust" in text
    why = next(c.value for c in at.caption if "complexity-corrected score" in c.value)
    assert "Serrà et al. (2020)" in why and "bits" in why and "framed as uploads are" in why
    assert not any("much larger value" in c.value for c in at.caption)  # the old sentence is gone


@pytest.mark.parametrize("i", range(4))
def test_test_digits_and_a_photo_of_one_are_not(page, i):
    digit = mnist_digits()[i]
    at = upload(page, f"test-digit-{i}.png", png(Image.fromarray(digit)))
    assert not ood_warnings(at)
    assert any(c.value.startswith("In distribution by this test.") for c in at.caption)
    at = upload(page, f"photo-of-digit-{i}.jpg", digit_photo(digit), "image/jpeg")
    assert not ood_warnings(at), "a photo of one handwritten digit raised the warning"


def test_a_test_image_says_where_it_falls_among_the_test_split():
    at = open_app("reconstruct", "mnist-vae-20d")
    texts = [c.value for c in at.caption] + [w.value for w in at.warning]
    said = next(t for t in texts if "which leaves 5% of the test images above it" in t)
    assert "of the 10,000 test images;" in said or "of the 10,000 test images, and" in said  # as they are, not framed
    assert "framed as uploads" not in said


def test_the_embeddings_page_says_so_for_a_placed_letter():
    at = open_app("embeddings")
    at.file_uploader[0].set_value(("letter-K.png", letter("K"), "image/png"))
    rerun(at)
    [text] = ood_warnings(at)
    assert "This upload is out of distribution" in text


def test_the_manifold_marks_the_holes_with_their_share():
    at = open_app("manifold")
    before = shown(at)
    at.toggle(key="manifold/holes").set_value(True)
    rerun(at)
    caption = next(c.value for c in at.caption if c.value.startswith("Red cells: holes. A hole:"))
    assert "q(z) / p(z) < 0.1" in caption and "Prior mass in holes:" in caption and "±" in caption
    assert shown(at)[0] != before[0]  # the grid is redrawn with the holes marked
    count = lambda text: int(re.search(r"circle\): (\d+) of (\d+) cells", text).group(1))  # noqa: E731
    assert count(caption) > 0  # mnist-vae-2d has holes on its 15 x 15 grid at span 2 (9.7% of the prior's mass)
    assert any("hole cells" in i.caption for img in at.get("image") for i in img.proto.imgs)  # the images decoded there
    at.select_slider(key="manifold_hole_threshold").set_value(0.01)
    rerun(at)
    fewer = next(c.value for c in at.caption if c.value.startswith("Red cells: holes. A hole:"))
    assert count(fewer) < count(caption)


def test_a_20d_manifold_says_its_holes_are_of_a_two_dimensional_marginal():
    at = open_app("manifold", "mnist-vae-20d")
    at.toggle(key="manifold/holes").set_value(True)
    rerun(at)
    caption = next(c.value for c in at.caption if c.value.startswith("Red cells: holes. A hole:"))
    assert "two-dimensional marginal of the 20-dimensional aggregate posterior" in caption


def test_the_latent_pad_shades_the_density_ratio():
    at = open_app("sliders")
    at.toggle(key="sliders/holes").set_value(True)
    rerun(at)
    assert any("Prior mass in holes" in c.value for c in at.caption)
    pad = next(c for c in at.get("plotly_chart") if "log10 q(z)" in c.proto.spec)
    names = [t.get("name") for t in json.loads(pad.proto.spec)["data"]]
    assert names[0] == "log10 q(z)/p(z)" and "pad" in names and names.index("pad") > 0


def test_no_hole_toggle_for_an_autoencoder():
    at = open_app("manifold", "mnist-ae-2d")
    assert not [t for t in at.toggle if t.key == "manifold/holes"]


def test_the_theory_page_carves_up_the_kl_term():
    at = open_app("theory", "mnist-vae-20d")
    values = {m.label: m.value for m in at.metric}
    assert values["Average KL"] == "22.20 nats"  # the closed form of metrics.json's test split
    mi, marginal = (float(values[k].split()[0]) for k in ("I_q(n; z)", "KL(q(z) ‖ p(z))"))
    assert mi <= 9.22 and abs(mi + marginal - 22.20) < 0.05
    assert any("ELBO surgery" in s.value for s in at.subheader)
    chart = next(c for c in at.get("plotly_chart") if "marginal KL" in c.proto.spec)
    assert "mnist-vae-binarized" in chart.proto.spec and "mnist-ae-2d" not in chart.proto.spec
