"""Unit tests of vae.preprocess over a corpus the tests generate: formats, modes, bad files, a photo."""

import ast
import io
import os
import re
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFile

from conftest import ROOT
from vae.errors import format_size
from vae.folders import FolderDatasetError
from vae.preprocess import ImageError, preprocess_image


def seven(w: int = 200, h: int = 280, width: int = 28) -> Image.Image:
    """A clean "7", light on black: a bar at the top, a diagonal down to the bottom left."""
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).line([(35, 40), (170, 40), (80, 250)], fill=255, width=width, joint="curve")
    return im


def one() -> Image.Image:
    """A "1": a vertical bar, for telling animation frames apart from the "7"."""
    im = Image.new("L", (200, 280), 0)
    ImageDraw.Draw(im).line([(100, 40), (100, 250)], fill=255, width=28)
    return im


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def dark_on_light(im: Image.Image) -> Image.Image:
    return Image.eval(im, lambda v: 255 - v)


def on_transparent(im: Image.Image) -> Image.Image:
    """Black strokes whose only trace is the alpha channel: RGB is black everywhere, alpha = ink."""
    rgba = Image.new("RGBA", im.size, (0, 0, 0, 0))
    rgba.putalpha(im)
    return rgba


def on_transparent_index(im: Image.Image) -> Image.Image:
    """Palette image: index 1 (black) where the ink is, index 0 (also black, but transparent) elsewhere."""
    p = Image.fromarray((np.asarray(im) > 127).astype(np.uint8), mode="P")
    p.putpalette([0, 0, 0] * 256)
    return p


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height 8-bit grey pixels but holds one compressed row of them."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1))) + chunk(b"IEND", b"")


REFERENCE = preprocess_image(np.asarray(seven())).image[0, 0].numpy()


def similarity(result) -> float:
    return float(np.corrcoef(result.image[0, 0].numpy().ravel(), REFERENCE.ravel())[0, 1])


def frame_of(result):
    """(rows, cols) spanned by nonzero pixels, and the centre of mass (row, col), of the 28x28 output."""
    x = result.image[0, 0].numpy()
    rows, cols = np.nonzero(x.max(1) > 0)[0], np.nonzero(x.max(0) > 0)[0]
    m = x.sum()
    com = ((x.sum(1) * np.arange(28)).sum() / m, (x.sum(0) * np.arange(28)).sum() / m)
    return (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1), com


def test_reference_is_made_the_mnist_way():
    (h, w), (cy, cx) = frame_of(preprocess_image(np.asarray(seven())))
    assert h == 20 and 10 <= w < 20  # the longer side is 20 px, the aspect ratio kept
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5  # centre of mass at the centre
    assert REFERENCE.dtype == np.float32 and REFERENCE.min() == 0 and REFERENCE.max() == 1
    top, bottom = REFERENCE[:12], REFERENCE[16:]
    assert (top > 0.5).sum(1).max() >= 10 and (bottom > 0.5).sum(1).max() <= 6  # the bar is at the top


def corpus():
    """(name, bytes) for every format and odd mode the app accepts, all holding the "7"."""
    s, d = seven(), dark_on_light(seven())
    rgb = Image.merge("RGB", (d, d, d))
    yield "png L", encode(s, "PNG")
    yield "png 1 (bilevel)", encode(s.point(lambda v: 255 * (v > 127)).convert("1"), "PNG")
    yield "png P", encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    yield "png RGB", encode(rgb, "PNG")
    yield "png LA", encode(on_transparent(s).convert("LA"), "PNG")
    yield "png RGBA", encode(on_transparent(s), "PNG")
    keyed = Image.new("RGB", s.size, (0, 0, 40))  # black ink on a dark blue that is marked transparent
    keyed.paste((0, 0, 0), mask=s.point(lambda v: 255 * (v > 127)))
    yield "png RGB with a transparent colour", encode(keyed, "PNG", transparency=(0, 0, 40))
    yield "png I;16", encode(Image.fromarray(np.asarray(d).astype(np.uint16) * 257), "PNG")
    yield "tiff I (32-bit)", encode(Image.fromarray(np.asarray(d).astype(np.int32) * 257), "TIFF")
    yield "jpeg L", encode(d, "JPEG", quality=90)
    yield "jpeg RGB", encode(rgb, "JPEG", quality=90)
    yield "jpeg CMYK", encode(rgb.convert("CMYK"), "JPEG", quality=90)
    yield "bmp RGB", encode(rgb, "BMP")
    yield "bmp 1", encode(d.convert("1"), "BMP")
    yield "gif", encode(d, "GIF")
    yield "gif with a transparent index", encode(on_transparent_index(s), "GIF", transparency=0)
    yield "gif animated", encode(d, "GIF", save_all=True, append_images=[dark_on_light(one())], duration=100)
    yield "webp RGB", encode(rgb, "WEBP", quality=90)
    yield "webp RGBA", encode(on_transparent(s), "WEBP", lossless=True)
    yield "webp animated", encode(rgb, "WEBP", save_all=True, append_images=[dark_on_light(one()).convert("RGB")], lossless=True)
    yield "tiff L", encode(s, "TIFF")
    yield "tiff RGBA", encode(on_transparent(s), "TIFF")
    yield "tiff CMYK", encode(rgb.convert("CMYK"), "TIFF")
    yield "tiff I;16", encode(Image.fromarray(np.asarray(s).astype(np.uint16) * 257), "TIFF")
    yield "tiff F in [0, 1]", encode(Image.fromarray(np.asarray(s, dtype=np.float32) / 255), "TIFF")
    yield "tiff multi-page", encode(s, "TIFF", save_all=True, append_images=[one()])


@pytest.mark.parametrize("name, data", list(corpus()), ids=[n for n, _ in corpus()])
def test_every_format_and_mode_gives_the_same_digit(name, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may reach the terminal
        result = preprocess_image(data)
    assert result.image.shape == (1, 1, 28, 28) and result.image.dtype == torch.float32
    assert 0 <= result.image.min() and result.image.max() <= 1
    (h, _), (cy, cx) = frame_of(result)
    assert h == 20 and abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5
    assert similarity(result) > 0.97, name  # the first frame ("7"), not the second ("1")


def test_polarity_is_decided_by_the_paper():
    assert not preprocess_image(encode(seven(), "PNG")).inverted
    assert preprocess_image(encode(dark_on_light(seven()), "PNG")).inverted
    assert preprocess_image(encode(on_transparent(seven()), "PNG")).inverted  # composited onto white


def test_steps_are_small_and_end_with_the_input():
    result = preprocess_image(encode(dark_on_light(seven()).resize((1600, 2240)), "PNG"))
    assert len(result.steps) == 5
    assert all(a.dtype == np.uint8 and max(a.shape) <= 96 for _, a in result.steps)
    h, w = result.steps[3][1].shape  # the 20-px box, the aspect ratio of the ink kept
    crop = result.steps[2][0]  # "cropped to the ink: W×H"
    cw, ch = map(int, crop.rsplit(" ", 1)[1].split("×"))
    assert h == 20 and w == round(20 * cw / ch)
    torch.testing.assert_close(torch.from_numpy(result.steps[-1][1]).float() / 255, result.image[0, 0], atol=0.5 / 255, rtol=0)


def photo(tilt: float = 4.0) -> Image.Image:
    """A phone-like photo: a dark "7", tilted, off-centre (upper left) on paper lit unevenly, with noise."""
    rng = np.random.default_rng(0)
    H, W = 900, 1200
    mask = Image.new("L", (W, H), 0)
    mask.paste(seven().rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True), (220, 140))
    m = np.asarray(mask, dtype=np.float64) / 255
    y, x = np.mgrid[0:H, 0:W]
    paper = 235 - 80 * x / W - 40 * ((y - 0.3 * H) / H) ** 2  # a lamp on the left
    grey = paper * (1 - m) + (45 + 10 * y / H) * m + rng.normal(0, 4, (H, W))
    return Image.fromarray(np.clip(np.stack([grey, 0.97 * grey, 0.9 * grey], -1), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_photo_comes_out_upright_inverted_20px_tall_and_centred(orientation):
    upright = photo()
    stored = {1: upright, 3: upright.transpose(Image.Transpose.ROTATE_180),
              6: upright.transpose(Image.Transpose.ROTATE_90),  # the camera was turned: EXIF 6 turns it back
              8: upright.transpose(Image.Transpose.ROTATE_270)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = preprocess_image(encode(stored, "JPEG", quality=85, exif=exif))
    assert result.inverted and ("turned upright" in result.source) == (orientation != 1)
    (h, w), (cy, cx) = frame_of(result)
    assert h == 20 and w < 20
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5
    x = result.image[0, 0].numpy()
    assert (x == 0).mean() > 0.7 and x[:4].max() == 0 and x[:, :4].max() == 0  # the paper is black
    assert (x[7:11] > 0.5).sum(1).max() >= 10 and (x[22:27] > 0.5).sum(1).max() <= 5  # bar on top: upright
    assert similarity(result) > 0.85


def test_a_photo_without_tilt_matches_the_clean_digit():
    assert similarity(preprocess_image(encode(photo(tilt=0), "JPEG", quality=85))) > 0.93


def test_a_drawing_canvas_array_is_accepted():
    rgba = np.zeros((280, 280, 4), np.uint8)  # a transparent canvas with black strokes
    rgba[..., 3] = np.asarray(seven(280, 280))
    result = preprocess_image(rgba)
    assert result.inverted and frame_of(result)[0][0] == 20 and result.source.startswith("drawing")
    with pytest.raises(ImageError, match="uint8"):
        preprocess_image(rgba.astype(np.float32))


def blank(value: int, noise: float = 0.0, gradient: float = 0.0) -> Image.Image:
    rng = np.random.default_rng(1)
    x = np.linspace(0, 1, 300)[None, :].repeat(200, 0)
    a = value - gradient * x + rng.normal(0, noise, (200, 300)) if noise else value - gradient * x
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name, data", [
    ("white", encode(blank(255), "PNG")),
    ("black", encode(blank(0), "PNG")),
    ("grey JPEG", encode(blank(128), "JPEG")),
    ("paper under uneven light, with noise", encode(blank(230, noise=4, gradient=80).convert("RGB"), "JPEG")),
    ("fully transparent", encode(Image.new("RGBA", (100, 100), (0, 0, 0, 0)), "PNG")),
    ("single pixel", encode(Image.new("L", (1, 1), 255), "PNG")),
])
def test_blank_images_are_refused(name, data):
    with pytest.raises(ImageError, match="blank"):
        preprocess_image(data)


@pytest.mark.parametrize("name, data, message", [
    ("empty", b"", "empty"),
    ("text", b"hello, this is not an image\n" * 10, "not an image"),
    ("fake PNG", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not an image"),
    ("SVG", b'<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0L9 9"/></svg>', "not an image"),
    ("PPM, not an accepted format", encode(seven(), "PPM"), "not an image"),
    ("truncated PNG", encode(seven(), "PNG")[:400], "could not be decoded"),
    ("truncated JPEG", encode(photo(), "JPEG")[:20_000], "could not be decoded"),
    ("truncated GIF", encode(seven(), "GIF")[:300], "could not be decoded"),
])
def test_files_that_are_not_images_are_refused(name, data, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match=message):
            preprocess_image(data)


@pytest.mark.parametrize("width, height", [(8_000, 8_000), (100_000, 100_000)])
def test_decompression_bombs_are_refused_from_the_header(width, height, monkeypatch):
    def no_decoding(self, *args, **kw):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape either
        with pytest.raises(ImageError, match="megapixel limit"):
            preprocess_image(png_header_only(width, height))


def test_pixel_and_byte_limits_are_parameters():
    data = encode(seven(), "PNG")
    with pytest.raises(ImageError, match=r"200 × 280 pixels .*0\.05-megapixel limit"):
        preprocess_image(data, max_pixels=50_000)
    with pytest.raises(ImageError, match=r"The file is \d+(\.\d+)? KiB, over the 512 B limit"):
        preprocess_image(data, max_bytes=512)
    assert preprocess_image(data, max_pixels=56_000, max_bytes=len(data)).image.shape == (1, 1, 28, 28)


def test_one_size_unit_a_64_mib_limit_is_said_64_mib_by_the_upload_and_the_folder_messages():
    """Issue 37, item 6: sizes were said in decimal MB by one function (vae.folders) and in binary units
    named MB by another (vae.preprocess): "67.1 MB" for the 64 MiB limit. One function, binary units named
    as such."""
    from vae.folders import DEFAULT_LIMITS, prepare_upload

    assert [format_size(n) for n in (0, 512, 1536, 340 * 2**10, int(7.25 * 2**20), 64 * 2**20, 12 * 2**30)] == \
        ["0 B", "512 B", "1.5 KiB", "340 KiB", "7.25 MiB", "64 MiB", "12 GiB"]
    assert DEFAULT_LIMITS.max_file_bytes == 64 * 2**20
    data = bytes(65 * 2**20)  # refused by its length, before any decoding
    with pytest.raises(ImageError) as upload:
        preprocess_image(data, max_bytes=64 * 2**20)
    with pytest.raises(FolderDatasetError) as folder:
        prepare_upload(data, (1, 28, 28))
    assert "The file is 65 MiB, over the 64 MiB limit" in str(upload.value)
    assert "the file is 65 MiB, over the 64 MiB limit" in str(folder.value)
    assert upload.value.message.parts[0][1] == folder.value.message.parts[0][1] == {"size": "65 MiB", "limit": "64 MiB"}


def test_no_other_size_formatter_and_no_decimal_unit_in_words_a_person_reads():
    """Issue 37, item 6: every size the app says goes through vae.errors.format_size (binary units,
    KiB/MiB/GiB); no string in vae/, ui/, pages/ or app.py (docstrings aside) names KB, MB or GB, and no
    module defines a formatter of its own."""
    unit = re.compile(r"\b[kKMGTP]B\b")
    found = []
    for path in sorted([ROOT / "app.py", *(ROOT / d / f for d in ("vae", "ui", "pages")
                                             for f in sorted(os.listdir(ROOT / d)) if f.endswith(".py"))]):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and unit.search(node.value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
            if isinstance(node, ast.FunctionDef) and re.fullmatch(r"_?(size|format_bytes|human_size|sizeof_fmt)", node.name):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: def {node.name}")
    assert not found, found


def test_fashion_style_fills_a_centred_28px_box():
    shoe = Image.new("L", (400, 200), 255)
    ImageDraw.Draw(shoe).polygon([(60, 60), (200, 60), (340, 120), (340, 160), (60, 160)], fill=40)
    result = preprocess_image(encode(shoe, "PNG"), style="fashion")
    (h, w), _ = frame_of(result)
    x = result.image[0, 0].numpy()
    assert w == 28 and 10 <= h <= 12 and x.max() == 1 and x[0].max() == 0
    rows = np.nonzero(x.max(1) > 0)[0]
    assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 0.5  # the box, not the mass, is centred
    with pytest.raises(ValueError, match="style"):
        preprocess_image(encode(shoe, "PNG"), style="cifar")


def shadowed(kind: str) -> Image.Image:
    """A small dark "7" on evenly lit paper, under a shadow (issue 14, item 5): "hard", a hard-edged
    strip over the right 30% of the photo, 25% darker than the paper; "soft", a shadow 40% darker
    whose edge is blurred over about a tenth of the width; "none", no shadow."""
    rng = np.random.default_rng(2)
    H, W = 600, 800
    mask = Image.new("L", (W, H), 0)
    mask.paste(seven().resize((100, 140), Image.Resampling.BILINEAR), (300, 220))  # a small digit
    m = np.asarray(mask, dtype=np.float64) / 255
    y, x = np.mgrid[0:H, 0:W]
    light = np.ones((H, W))
    if kind == "hard":
        light[:, int(0.7 * W):] = 0.75
    elif kind == "soft":
        light = 1 - 0.4 / (1 + np.exp(-(x - 0.65 * W) / (0.04 * W)))  # a blurred edge, 40% darker beyond
    grey = (220 * (1 - m) + 50 * m) * light + rng.normal(0, 3, (H, W))
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_a_shadow_is_paper_not_ink(kind):
    clean = preprocess_image(encode(shadowed("none"), "JPEG", quality=90))
    result = preprocess_image(encode(shadowed(kind), "JPEG", quality=90))
    assert not clean.warnings and not result.warnings
    crop = result.steps[2][0]  # "cropped to the ink: WxH", in the work image's pixels (800 -> 512 wide)
    w, h = map(int, crop.rsplit(" ", 1)[1].split("×"))
    assert w < 100 and h < 110, crop  # the digit, about 64x90 there; not the shadow's edge with it
    a, b = clean.image[0, 0].numpy().ravel(), result.image[0, 0].numpy().ravel()
    assert float(np.corrcoef(a, b)[0, 1]) > 0.9


def test_an_implausible_ink_box_is_said():
    """Ink that reaches one edge, or fills the frame, is probably not one digit: the result says so."""
    im = Image.new("L", (400, 300), 230)
    ImageDraw.Draw(im).rectangle([0, 100, 200, 130], fill=40)  # a bar from the left edge
    result = preprocess_image(encode(im, "PNG"))
    assert any("edge" in w for w in result.warnings)
    full = Image.new("L", (300, 300), 230)
    ImageDraw.Draw(full).rectangle([5, 5, 294, 294], outline=40, width=30)  # a frame around the photo
    assert any("most of the image" in w for w in preprocess_image(encode(full, "PNG")).warnings)
