"""Images for the pages: the test split (or the bundled sample), a test-image picker, and uploads."""

from __future__ import annotations

import streamlit as st
import torch

from vae.data import CLASS_NAMES, DatasetNotFoundError, load_test_images, sample_file
from vae.preprocess import EXTENSIONS, ImageError, Preprocessed, preprocess_image

from . import PRETRAINED


@st.cache_resource(show_spinner="Reading the test images...", max_entries=2)
def _test_images(dataset: str):
    return load_test_images(dataset, sample=sample_file(PRETRAINED / "samples", dataset))


def test_images(dataset: str):
    """(images (N, 1, 28, 28), labels, indices, source) from the data root, else the bundled sample.

    Cached once per server process and shared by sessions without copying: treat the tensors as
    read-only. When neither is there, shows why with st.error and stops the page.
    """
    try:
        return _test_images(dataset)
    except DatasetNotFoundError as err:
        st.error(str(err))
        st.stop()


def pick_test_image(dataset: str, key: str, container=st):
    """Widgets to choose one test image: a class (or any) and an example number, with a dice button.

    ``key`` keeps several pickers on one page apart. Returns (image float (1, 1, 28, 28) in [0, 1],
    label int, index into the full test split int). Stops the page when no test images exist.
    """
    images, labels, indices, source = test_images(dataset)
    names = CLASS_NAMES[dataset]
    c1, c2, c3 = container.columns([3, 2, 1], vertical_alignment="bottom")
    cls = c1.selectbox("Class", [None, *range(len(names))], key=f"{key}_class",
                       format_func=lambda c: "any class" if c is None else names[c])
    pool = torch.arange(len(labels)) if cls is None else torch.nonzero(labels == cls).flatten()
    number_key = f"{key}_number"
    if c3.button("", icon=":material/casino:", key=f"{key}_dice", help="A random example"):
        st.session_state[number_key] = int(torch.randint(len(pool), ()).item())
    if st.session_state.get(number_key, 0) >= len(pool):
        st.session_state[number_key] = 0
    n = c2.number_input(f"Example (of {len(pool):,})", 0, len(pool) - 1, key=number_key)
    i = int(pool[n])
    return images[i : i + 1], int(labels[i]), int(indices[i])


def max_upload_bytes() -> int:
    """Streamlit's ``server.maxUploadSize`` (set in .streamlit/config.toml), in bytes."""
    return int(st.get_option("server.maxUploadSize")) * 2**20


@st.cache_data(show_spinner=False, max_entries=32)
def _preprocess(data: bytes, max_bytes: int, style: str) -> Preprocessed:
    return preprocess_image(data, max_bytes=max_bytes, style=style)


def preprocess(data: bytes, style: str = "mnist") -> Preprocessed:
    """``vae.preprocess.preprocess_image`` with the upload size limit, cached in memory (never on
    disk), so a rerun for another widget does not decode the image again. Raises ImageError."""
    return _preprocess(data, max_upload_bytes(), style)


def upload_preprocessed(key: str, container=st, label: str = "Upload an image", style: str = "mnist"):
    """A file uploader whose file goes through ``vae.preprocess.preprocess_image``.

    Returns the Preprocessed (its ``image`` float (1, 1, 28, 28) in [0, 1], and the steps), or None
    when no file is chosen or the file is unusable; then its reason shows as one st.error sentence.
    ``style``: "mnist", or "fashion" for a Fashion-MNIST model (``Selection.preprocess_style``).
    """
    file = container.file_uploader(
        label, type=list(EXTENSIONS), key=key,
        help=f"PNG, JPEG, BMP, GIF, WebP or TIFF, up to {max_upload_bytes() // 2**20} MB (the browser refuses "
        "larger files); a photo of one digit on paper works. Read in memory only, never saved.",
    )
    if file is None:
        return None
    try:
        return preprocess(file.getvalue(), style)
    except ImageError as err:
        container.error(str(err))
        return None


def upload_image(key: str, container=st, label: str = "Upload an image", style: str = "mnist"):
    """A file uploader that returns the model's input: float (1, 1, 28, 28) in [0, 1], or None.

    None when no file is chosen, or when the file is unusable (its reason then shows with st.error);
    doubts about the ink found (``Preprocessed.warnings``) show as st.warning under the uploader.
    """
    done = upload_preprocessed(key, container, label, style)
    if done is None:
        return None
    for doubt in done.warnings:  # why the ink found may not be one digit
        container.warning(doubt, icon=":material/crop:")
    return done.image


def show_image(container, pixels, caption: str | None = None) -> None:
    """A uint8 image array at its own size in pixels: the browser never resamples it where it fits
    (``width="content"`` would stretch it to a caption wider than the image); a narrower column,
    as on a phone, shrinks it to fit. Pick the ``tile`` scale so that it fits the column."""
    container.image(pixels, caption=caption, width=int(pixels.shape[1]), output_format="PNG")


def download_png(pixels, name: str, key: str, container=st) -> None:
    """A scale picker and a button that downloads ``pixels`` (a uint8 array at scale 1, grey or RGB)
    as NAME-xS.png, enlarged S times by pixel repetition (crisp on a slide)."""
    c1, c2 = container.columns([1, 2], vertical_alignment="bottom")
    scale = c1.selectbox("PNG scale", [1, 2, 4, 8], index=2, key=f"{key}_scale", format_func=lambda s: f"{s}x")
    c2.download_button("Download PNG", lambda: png_bytes(pixels, scale), f"{name}-x{scale}.png", "image/png",
                       key=key, icon=":material/download:")


def png_bytes(pixels, scale: int = 1) -> bytes:
    """A uint8 image array (H, W) or (H, W, 3) as PNG file bytes, enlarged ``scale`` times by pixel repetition."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels.repeat(scale, 0).repeat(scale, 1)).save(buf, "PNG")
    return buf.getvalue()
