"""Any image file or drawing -> a 28x28 model input, made the way MNIST itself was made.

MNIST (LeCun, Cortes & Burges, "The MNIST database of handwritten digits", yann.lecun.com/exdb/mnist):
"the images were size normalized to fit in a 20x20 pixel box while preserving their aspect ratio
[...] anti-aliasing [...] centered in a 28x28 image by computing the center of mass of the pixels,
and translating the image so as to position this point at the center of the 28x28 field."
Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017, Sec. 2) instead trims the product, resizes its longer
edge to 28 and centres the box; ``style="fashion"`` does that.

``preprocess_image`` is the one entry point. Nothing is written to disk; Pillow only decodes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from vae.errors import N_, Message, UserError, format_size

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")  # JPEG's opener also reads MPO, which phones write
EXTENSIONS = ("png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff")
MAX_BYTES = 10 * 2**20  # files; the app passes Streamlit's server.maxUploadSize instead
MAX_PIXELS = 50_000_000  # a 48-megapixel phone photo passes; a decompression bomb does not
WORK_SIZE = 512  # longer side, in pixels, of the grey image the steps below work on
THUMB_SIZE = 96  # longer side of the step images kept for display
STYLES = {"mnist": (20, "mass"), "fashion": (28, "box")}  # (box size in pixels, how it is centred)
_KINDS = "PNG, JPEG, BMP, GIF, WebP or TIFF"


class ImageError(UserError, ValueError):
    """The input is not a usable image: unreadable, too large, or blank. The message says what to do
    (a ``vae.errors.Message``, which the app translates)."""


@dataclass(frozen=True)
class Preprocessed:
    """What ``preprocess_image`` made, and how.

    image: float32 (1, 1, 28, 28) in [0, 1], light ink on black, the model's input.
    steps: (caption, uint8 (H, W) grey image) pairs in order, each at most THUMB_SIZE pixels on a side,
      for showing what happened; the last is ``image`` itself.
    inverted: whether the grey levels were inverted (dark ink on light paper).
    source: the input in words, e.g. "JPEG, 3024 × 4032 px, RGB, turned upright from its EXIF orientation".
    warnings: sentences saying why the ink found may not be one digit (``_ink_box_doubts``); empty
      when nothing looks wrong.
    """

    image: torch.Tensor
    steps: tuple[tuple[str, np.ndarray], ...]
    inverted: bool
    source: str
    warnings: tuple[str, ...] = ()


def preprocess_image(
    data: bytes | np.ndarray,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    style: str = "mnist",
) -> Preprocessed:
    """Turn an image file's bytes, or a uint8 array, into the model's 28x28 input.

    data: the bytes of a PNG, JPEG (also MPO), BMP, GIF, WebP or TIFF file, or a uint8 array
      (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA (a drawing canvas's pixels).
    max_bytes: larger inputs are refused before decoding. max_pixels: width x height above this is
      refused from the file's header, before any pixel is decompressed (decompression bombs).
    style: "mnist" (20-px box, centred on the centre of mass) or "fashion" (28-px box, centred box).

    Steps, each shown in ``steps``:
    1. decode with Pillow: the first frame of an animation or a multi-page TIFF; EXIF orientation
       applied (ImageOps.exif_transpose); transparency composited onto white; any mode to 8-bit grey
       (colour by ITU-R 601-2 luma, 16- and 32-bit grey by their nominal range); large images
       reduced to WORK_SIZE pixels on the longer side (JPEGs already while decoding).
    2. polarity: the border is taken as paper; if it is nearer the lightest grey than the darkest,
       the ink is dark and the image is inverted to MNIST's light ink on black. For "mnist", uneven
       lighting and shadows are removed by subtracting the paper's background, a grey-scale opening
       with a square a quarter of the shorter side wide (``_paper_background``); for "fashion", the
       paper's median grey. Grey levels
       are then stretched so the paper's noise floor (5 robust standard deviations) is 0 and the
       typical ink (median of the pixels above Otsu's threshold; the 99th percentile for
       "fashion") is 1.
    3. crop to the ink: the bounding box of the pixels above Otsu's threshold, less 0.2% of them
       at each side (specks).
    4. scale the longer side to the box (20 px for "mnist") keeping the aspect ratio, anti-aliased
       (a triangle filter over the source pixels, Pillow's BILINEAR).
    5. paste into 28x28 with the centre of mass at the centre (integer shift, as MNIST), the box
       kept inside the frame; for "fashion" the box is centred.

    Returns a Preprocessed. Raises ImageError, with a sentence a person can act on, for an empty
    or too large input, a file that is not a decodable image of these formats (including truncated
    ones), too many pixels, a colour mode Pillow cannot convert, and a blank image (no ink).
    Raises ValueError for an unknown style (a programming error, not the user's).
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {', '.join(STYLES)}")
    box, centring = STYLES[style]
    grey, source = _decode(data, max_bytes, max_pixels)
    steps = [(Message(N_("decoded: {width}×{height} grey"), width=grey.shape[1], height=grey.shape[0]), grey)]

    g = grey.astype(np.float32) / 255
    inverted = _ink_is_dark(g)
    if inverted:
        g = 1 - g
    flat = (g - (_paper_background(g) if style == "mnist" else np.median(_border(g)))).astype(np.float32)
    lo, hi, t = _ink_levels(flat, style)
    norm = np.clip((flat - lo) / (hi - lo), 0, 1).astype(np.float32)
    steps.append((Message(N_("inverted, paper flattened") if inverted else N_("paper flattened")), _to_uint8(norm)))

    top, bottom, left, right = _ink_box(flat > t)
    crop = norm[top:bottom, left:right]
    steps.append((Message(N_("cropped to the ink: {width}×{height}"), width=right - left, height=bottom - top),
                  _to_uint8(crop)))

    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
    small = np.clip(small, 0, 1)
    steps.append((Message(N_("longer side {box} px: {width}×{height}"), box=box, width=size[0], height=size[1]),
                  _to_uint8(small)))

    out = np.zeros((28, 28), np.float32)
    oy, ox = _offsets(small, centring)
    out[oy : oy + size[1], ox : ox + size[0]] = small
    centre = N_("28×28, centre of mass at the centre") if centring == "mass" else N_("28×28, box centred")
    steps.append((Message(centre), _to_uint8(out)))
    return Preprocessed(torch.from_numpy(out).view(1, 1, 28, 28), tuple((c, _thumb(a)) for c, a in steps),
                        inverted, source,
                        () if source.startswith("drawing") else _ink_box_doubts((top, bottom, left, right), flat.shape))


def _decode(data: bytes | np.ndarray, max_bytes: int, max_pixels: int) -> tuple[np.ndarray, str]:
    """Step 1: uint8 (H, W) grey image, longer side at most WORK_SIZE, and the input in words."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] not in (3, 4)):
            raise ImageError(N_("A drawing must be uint8 (H, W), (H, W, 3) or (H, W, 4) pixels, not {dtype} {shape}."),
                             dtype=data.dtype, shape=data.shape)
        if data.size == 0:
            raise ImageError(N_("The drawing is empty: draw a digit first."))
        im = Image.fromarray(data)
        source, turned = Message(N_("drawing, {width} × {height} px, {mode}"), width=im.width, height=im.height,
                                 mode=im.mode), False
    else:
        if len(data) == 0:
            raise ImageError(N_("The file is empty: choose an image file ({kinds})."), kinds=_KINDS)
        if len(data) > max_bytes:
            raise ImageError(N_("The file is {size}, over the {limit} limit: save a smaller image and try again."),
                             size=format_size(len(data)), limit=format_size(max_bytes))
        im = _open(data, max_pixels)
        source = Message("{format}, {width} × {height} px, {mode}", format=im.format, width=im.width, height=im.height,
                         mode=im.mode)
    try:
        if not isinstance(data, np.ndarray):
            frames = getattr(im, "n_frames", 1)  # reads the frames' headers, not their pixels
            if frames > 1:
                source += Message(N_(", first of {frames} frames"), frames=frames)
                im.seek(0)
            turned = im.getexif().get(0x0112, 1) not in (1, None)  # 0x0112: EXIF Orientation
        if im.format in ("JPEG", "MPO"):
            im.draft("L", (WORK_SIZE, WORK_SIZE))  # libjpeg decodes at 1/2, 1/4 or 1/8 scale: fast
        im = ImageOps.exif_transpose(im)  # loads the pixels; any decoding error surfaces here
        grey = _to_grey(im)
    except ImageError:
        raise
    except Exception as err:  # Pillow's decoders raise many kinds for corrupt or truncated data
        raise ImageError(N_("This file could not be decoded ({reason}): it may be truncated or damaged; try saving "
                            "it again as PNG or JPEG."), reason=_reason(err)) from None
    if turned:
        source += Message(N_(", turned upright from its EXIF orientation"))
    if max(grey.size) > WORK_SIZE:
        grey = grey.copy()
        grey.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.uint8), source


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only, and refuse what is not one of FORMATS or has more than max_pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check the size ourselves
            im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(N_("The image has more pixels than Pillow allows, over the {limit:g}-megapixel limit: scale "
                            "it down and try again."), limit=max_pixels / 1e6) from None
    except Exception:  # UnidentifiedImageError, or a header so broken that the plugin gives up
        raise ImageError(N_("This file is not an image that can be read: upload a {kinds} file."), kinds=_KINDS) from None
    w, h = im.size
    if w * h > max_pixels:
        raise ImageError(N_("The image is {width:,} × {height:,} pixels ({megapixels:,.0f} megapixels), over the "
                            "{limit:g}-megapixel limit: scale it down and try again."), width=w, height=h,
                         megapixels=w * h / 1e6, limit=max_pixels / 1e6)
    if w == 0 or h == 0:
        raise ImageError(N_("The image has no pixels: upload one with a digit on it."))
    return im


HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # grey images of more than 8 bits


def grey_to_8bit(im: Image.Image) -> Image.Image:
    """A grey image of a HIGH_DEPTH_MODES mode as "L": floats in [0, 1] or [0, 255], 16-bit (or 32-bit
    holding 16-bit values) scaled so that the largest code is 255."""
    a = np.asarray(im, dtype=np.float64)
    if im.mode == "F":  # floating point grey: [0, 1] when it fits there, else [0, 255]
        a = a * 255 if np.nanmax(a) <= 1 else a
    elif np.max(a) > 255:  # 16-bit grey (or 32-bit holding 16-bit values)
        a = a / (257 if np.max(a) <= 65535 else 16843009)  # 65535 -> 255; 2^32 - 1 -> 255
    return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8))


def _to_grey(im: Image.Image) -> Image.Image:
    """Any mode -> "L": alpha and transparent colours composited onto white; high bit depths scaled."""
    if im.mode in HIGH_DEPTH_MODES:
        return grey_to_8bit(im)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        if im.mode == "La":
            im = im.convert("LA")
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if im.mode == "L":
        return im
    try:
        return im.convert("RGB").convert("L")  # L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2)
    except ValueError:
        raise ImageError(N_("Images in the {mode} colour mode cannot be read: save it as RGB or grey PNG or JPEG."),
                         mode=im.mode) from None


def _border(g: np.ndarray) -> np.ndarray:
    """The outer ring of pixels, 3% of the shorter side wide (at least 1): taken to be paper."""
    b = max(1, round(0.03 * min(g.shape)))
    return np.concatenate([g[:b].ravel(), g[-b:].ravel(), g[b:-b, :b].ravel(), g[b:-b, -b:].ravel()])


def _ink_is_dark(g: np.ndarray) -> bool:
    """True when the paper (border median) is nearer the lightest grey than the darkest one.

    The extremes are taken after a 3x3 median filter, so that a few noisy pixels do not decide.
    """
    smooth = np.asarray(Image.fromarray(g).filter(ImageFilter.MedianFilter(3))) if min(g.shape) >= 3 else g
    paper = float(np.median(_border(g)))
    return paper - float(smooth.min()) > float(smooth.max()) - paper


def _paper_background(g: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """The paper's grey level at every pixel, shadows and uneven lighting included: a grey-scale
    morphological opening (erosion, then dilation) with a square a quarter of the shorter side wide.

    g: float (H, W), ink light. The opening removes every light structure narrower than the square
    (the strokes) and keeps broader ones as they are, a shadow's hard edge or a lamp's gradient
    included: opening keeps steps and monotone ramps wider than its window (Serra, 1982, "Image
    Analysis and Mathematical Morphology"; the "rolling ball" background of Sternberg, 1983). A 3x3
    mean first, so that the erosion's minimum is not one noisy pixel. A shadow narrower than the
    square is taken for ink, and a stroke wider than it loses its middle. Returns float32 (H, W).
    """
    from scipy import ndimage

    k = max(3, int(fraction * min(g.shape)))
    return ndimage.grey_opening(ndimage.uniform_filter(g, 3), size=(k, k)).astype(np.float32)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold (1979): the grey level that maximises the between-class variance."""
    hist, edges = np.histogram(values, bins=256, range=(0.0, float(values.max())))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0 / w0 - (m0[-1] - m0) / w1) ** 2 * w0 * w1
    return float(edges[1:][np.nanargmax(np.nan_to_num(between, nan=-1.0))])


def _ink_levels(flat: np.ndarray, style: str) -> tuple[float, float, float]:
    """(paper level, ink level, Otsu's threshold) of a flattened float32 image with light ink.

    The paper level is 5 robust standard deviations (1.4826 x MAD of the darker half) of its noise,
    at most half the threshold. Raises ImageError if blank: after a 3x3 mean, nothing stands more
    than max(0.1, 6 noise) above the paper.
    """
    f = np.clip(flat, 0, None)
    p = np.pad(f, 1, mode="edge")
    h, w = f.shape
    smooth = sum(p[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9
    paper = flat[flat <= np.percentile(flat, 50)]
    noise = 1.4826 * float(np.median(np.abs(paper - np.median(paper))))
    if smooth.max() <= max(0.1, 6 * noise):
        raise ImageError(N_("The image looks blank: no strokes stand out from the background; upload or draw one "
                            "with a visible digit."))
    t = _otsu(f)
    ink = f[f > t]
    lo = min(5 * noise, t / 2)
    hi = float(np.median(ink) if style == "mnist" else np.percentile(ink, 99))
    return lo, max(hi, lo + 1e-3), t


def _ink_box(ink: np.ndarray, trim: float = 0.002) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom and right exclusive: where the ink pixels (a boolean mask)
    lie, less ``trim`` of them at each side (stray specks)."""
    a = ink.astype(np.float64)
    def span(profile):
        c = np.cumsum(profile) / profile.sum()
        return int(np.searchsorted(c, trim, side="right")), int(np.searchsorted(c, 1 - trim, side="left")) + 1

    top, bottom = span(a.sum(1))
    left, right = span(a.sum(0))
    return top, min(bottom, a.shape[0]), left, min(right, a.shape[1])


def _ink_box_doubts(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[str, ...]:
    """Why an ink box (top, bottom, left, right) in an image of ``shape`` may not be one digit: it
    reaches exactly one edge (a shadow's or the paper's edge, or something beside the digit), it is a
    thin line from one edge to the opposite one, or it fills most of the image. Drawings are not
    judged (``preprocess_image`` skips this for a canvas's array)."""
    top, bottom, left, right = box
    h, w = shape
    m = max(1, round(0.01 * min(h, w)))  # within 1% of an edge counts as touching it
    sides = [name for name, touches in (("top", top <= m), ("bottom", bottom >= h - m), ("left", left <= m),
                                        ("right", right >= w - m)) if touches]
    doubts = []
    if len(sides) == 1:
        doubts.append(Message({
            "top": N_("The ink found reaches the top edge of the image and no other: a shadow, the paper's edge or "
                      "another object may have been taken for ink. Crop closer to the digit."),
            "bottom": N_("The ink found reaches the bottom edge of the image and no other: a shadow, the paper's edge "
                         "or another object may have been taken for ink. Crop closer to the digit."),
            "left": N_("The ink found reaches the left edge of the image and no other: a shadow, the paper's edge or "
                       "another object may have been taken for ink. Crop closer to the digit."),
            "right": N_("The ink found reaches the right edge of the image and no other: a shadow, the paper's edge "
                        "or another object may have been taken for ink. Crop closer to the digit."),
        }[sides[0]]))
    bh, bw = bottom - top, right - left
    across = {"top", "bottom"} <= set(sides) or {"left", "right"} <= set(sides)
    if min(bh, bw) < max(bh, bw) / 12 and across:
        doubts.append(Message(N_("The ink found is a thin line from edge to edge of the image: a fold, an edge or a "
                                 "line of the paper rather than a digit? Crop closer to the digit.")))
    if bh * bw > 0.85 * h * w:
        doubts.append(Message(N_("The ink found fills most of the image: unless the image is one tightly cropped "
                                 "digit, a frame, a shadow or a texture may have been taken for ink.")))
    return tuple(doubts)


def _offsets(small: np.ndarray, centring: str) -> tuple[int, int]:
    """Top-left corner in the 28x28 frame: centre of mass (or the box's centre) at pixel centre 13.5."""
    h, w = small.shape
    if centring == "mass":
        mass = small.sum()
        cy = float((small.sum(1) * np.arange(h)).sum() / mass)
        cx = float((small.sum(0) * np.arange(w)).sum() / mass)
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    oy = min(max(round(13.5 - cy), 0), 28 - h)
    ox = min(max(round(13.5 - cx), 0), 28 - w)
    return oy, ox


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def _thumb(a: np.ndarray) -> np.ndarray:
    """A display copy at most THUMB_SIZE pixels on the longer side (area-averaged)."""
    if max(a.shape) <= THUMB_SIZE:
        return a
    im = Image.fromarray(a)
    im.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX)
    return np.asarray(im)


def _reason(err: Exception) -> str:
    text = str(err).strip().rstrip(".")
    return text[:80] if text else type(err).__name__
