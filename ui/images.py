"""Images for the pages: the test split (or the bundled sample), a test-image picker, uploads, and
images shown at their own size or downloaded (PNG at a chosen scale, an animated GIF); the test
images' hover thumbnails, served as static files (one small PNG per image).

    python -m ui.images   # writes static/thumbnails/ for both datasets (the Dockerfile runs it)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image, ImageDraw, ImageFont

from vae.data import CLASS_NAMES, DatasetNotFoundError, is_builtin, load_test_images, sample_file
from vae.errors import Message, UserError, format_size
from vae.folders import FolderDatasetError, prepare_upload
from vae.latent import tile
from vae.preprocess import EXTENSIONS, ImageError, Preprocessed, preprocess_image

from . import PRETRAINED, state
from .i18n import _, error_message, say

# Streamlit serves the app folder's static/ at app/static/ (server.enableStaticServing, .streamlit/config.toml).
STATIC = PRETRAINED.parent / "static"
THUMBNAILS = STATIC / "thumbnails"


@st.cache_resource(show_spinner=False, max_entries=4)  # its spinner, in the run's language: test_images
def _test_images(dataset: str, image_shape: tuple[int, int, int] | None):
    # a folder's test split has no bundled sample: load_test_images reads the folder's cache instead
    return load_test_images(dataset, sample=sample_file(PRETRAINED / "samples", dataset), image_shape=image_shape)


def test_images(dataset: str, image_shape=None):
    """(images float (N, C, H, W) in [0, 1], labels, indices, source): MNIST's or Fashion-MNIST's test
    split from the data root, else the bundled sample; for a folder or zip of images (``dataset`` a
    path, as a model's config names it) its held-out test split at ``image_shape`` (C, S, S), the
    model's, read from the decoded dataset's cache.

    Cached once per server process and shared by sessions without copying: treat the tensors as
    read-only. When neither is there, shows why with st.error and stops the page.
    """
    try:
        with st.spinner(_("Reading the test images...")):
            return _test_images(dataset, None if image_shape is None else tuple(int(v) for v in image_shape))
    except (DatasetNotFoundError, FolderDatasetError) as err:
        st.error(_("No test images for this model: {error}").format(error=error_message(err)))
        st.stop()


ANY_CLASS = -1  # the picker's "any class" (None would show as no choice at all: "Choose an option")


def picker_settings(prefix: str = "") -> list[state.Setting]:
    """The two settings of a ``pick_test_image`` bound to a page's state: PREFIX + "class" (``ANY_CLASS``:
    any) and PREFIX + "example" (its number among that class's test images); put them in the page's
    ``state.PageState``. Their ranges depend on the dataset: ``pick_test_image`` sets them."""
    return [state.Setting(prefix + "class", int, ANY_CLASS, ANY_CLASS), state.Setting(prefix + "example", int, 0, 0)]


def pick_test_image(sel, key: str, container=st, page_state: state.PageState | None = None,
                    caption: bool = False):
    """Widgets to choose one test image: a class (or any) and an example number, with a dice button.

    ``key`` keeps several pickers on one page apart; with ``page_state`` (a page's state holding
    ``picker_settings(key)``), the choice is kept there instead (the page left and revisited, a link),
    and ``key`` is the settings' prefix. ``caption``: say under it which test image the example is
    (offline, example 0 of the bundled sample is test image #14). ``sel``: the model's
    ``ui.models.Selection``, whose test images are picked from. Returns (image float (1, C, H, W) in
    [0, 1], label int, index into the full test split int). Stops the page when no test images exist.
    """
    images, labels, indices, source = sel.test_images()
    names = sel.class_names
    c1, c2, c3 = container.columns([3, 2, 1], vertical_alignment="bottom")
    class_key = f"{key}_class" if page_state is None else page_state.bind(key + "class", hi=len(names) - 1)
    if len(names) > 1:
        any_class = _("any class")  # looked up now: AppTest calls format_func after the run, where _ is English
        cls = c1.selectbox(_("Class"), [ANY_CLASS, *range(len(names))], key=class_key,
                           format_func=lambda c: any_class if c == ANY_CLASS else names[c])
    else:  # an unlabelled folder: one class, nothing to choose
        cls = ANY_CLASS
        c1.markdown(_("Test images of **{name}** (unlabelled)").format(name=names[0]))
    pool = torch.arange(len(labels)) if cls == ANY_CLASS else torch.nonzero(labels == cls).flatten()
    if page_state is None:
        number_key = f"{key}_number"
        if c3.button("", icon=":material/casino:", key=f"{key}_dice", help=_("A random example")):
            st.session_state[number_key] = int(torch.randint(len(pool), ()).item())
        if st.session_state.get(number_key, 0) >= len(pool):
            st.session_state[number_key] = 0
    else:
        number_key = page_state.bind(key + "example", hi=len(pool) - 1)
        c3.button("", icon=":material/casino:", key=f"{page_state.key(key + 'example')}-dice", help=_("A random example"),
                  on_click=lambda: page_state.set(key + "example", int(torch.randint(len(pool), ()).item())))
    n = c2.number_input(_("Example (of {n:,})").format(n=len(pool)), 0, len(pool) - 1, key=number_key)
    i = int(pool[n])
    if caption:
        full = torch.equal(indices, torch.arange(len(indices)))
        which = (_("Example {n:,} is test image #{index:,}, a {name}.") if full else
                 _("Example {n:,} is test image #{index:,}, a {name}; the examples are {source}.")) if len(names) > 1 else (
                 _("Example {n:,} is test image #{index:,}.") if full else
                 _("Example {n:,} is test image #{index:,}; the examples are {source}."))
        container.caption(which.format(n=n, index=int(indices[i]), name=names[int(labels[i])], source=say(source)))
    return images[i : i + 1], int(labels[i]), int(indices[i])


# An image upload's limit in MiB: the uploader's max_upload_size and the server's check (Streamlit's
# "megabytes" are 2**20 bytes on its server; its browser check counts 10**6 outside Windows). The server's
# cap is larger for zips.
IMAGE_UPLOAD_MIB = 10


def max_upload_bytes() -> int:
    """The largest image upload, in bytes: ``IMAGE_UPLOAD_MIB``, or Streamlit's ``server.maxUploadSize``
    (.streamlit/config.toml, in MiB) when that is smaller."""
    return min(IMAGE_UPLOAD_MIB, int(st.get_option("server.maxUploadSize"))) * 2**20


@st.cache_data(show_spinner=False, max_entries=32)
def _preprocess(data: bytes, max_bytes: int, style) -> Preprocessed:
    if isinstance(style, tuple):  # a folder model's (C, S, S)
        try:
            return prepare_upload(data, style, max_bytes)
        except FolderDatasetError as err:  # its reason, a clause ("the file is ..."): upload_error capitalizes it
            raise ImageError(err.message if isinstance(err, UserError) else Message("{reason}", reason=str(err))) from None
    return preprocess_image(data, max_bytes=max_bytes, style=style)


def preprocess(data: bytes, style="mnist") -> Preprocessed:
    """An upload made into the model's input with the upload size limit, cached in memory (never on
    disk), so a rerun for another widget does not decode the image again. style: "mnist" or
    "fashion" (``vae.preprocess.preprocess_image``: framed as the dataset framed its images), or a
    folder model's image_shape (C, S, S) (``vae.folders.prepare_upload``: centre-cropped and resized
    as its training images were); ``Selection.preprocess_style`` says which. Raises ImageError; say
    it with ``upload_error``."""
    return _preprocess(data, max_upload_bytes(), style)


def upload_error(err: ImageError) -> str:
    """Why an upload or a drawing is unusable, in this run's language, as a sentence: a folder model's
    reason is a clause ("the file is ..."), said here with a capital."""
    text = error_message(err)
    return text[:1].upper() + text[1:]


KEPT = state.STORE + "uploads/"  # + the uploader's key: {"name", "data"}, the file it last received


def kept_upload(key: str) -> dict | None:
    """The file the uploader ``key`` last received, kept in the session after the uploader forgets it (a
    run that does not draw it: the page left, another input picked): {"name": str, "data": bytes}, or None."""
    return st.session_state.get(KEPT + key)


def _forget(key: str) -> None:
    """The uploader's on_change: its file removed (its "x"), the kept file goes too."""
    if st.session_state.get(key) is None:
        st.session_state.pop(KEPT + key, None)


def upload_preprocessed(key: str, container=st, label: str | None = None, style: str = "mnist"):
    """A file uploader whose file goes through ``vae.preprocess.preprocess_image``.

    The file's bytes are kept in the session (``kept_upload``): a page left and revisited still has it,
    said under the uploader as the current image, with a button that removes it. Returns the
    Preprocessed (its ``image`` float (1, C, H, W) in [0, 1], and the steps), or None when no file is
    chosen or the file is unusable; then its reason shows as one st.error sentence that names the file
    (a larger file that the browser refuses never reaches the server, which keeps the previous one).
    ``style``: ``preprocess``'s (``Selection.preprocess_style``); ``label``: the uploader's, "Upload an
    image" (translated) when None.
    """
    limit = max_upload_bytes()
    file = container.file_uploader(
        _("Upload an image") if label is None else label, type=list(EXTENSIONS), key=key, on_change=_forget,
        args=(key,), max_upload_size=limit // 2**20,
        help=_("PNG, JPEG, BMP, GIF, WebP or TIFF, up to {limit}: the browser refuses a larger file (it is "
               "listed in red and never sent, and the page keeps the file it had); a photo of one digit on paper "
               "works. Kept in memory for this session only, never saved.").format(limit=format_size(limit)),
    )
    if file is not None:
        st.session_state[KEPT + key] = {"name": file.name, "data": file.getvalue()}
    kept = kept_upload(key)
    if file is None and kept is not None:  # the uploader was drawn afresh: the page was left, or the input changed
        row = container.container(horizontal=True, vertical_alignment="center")
        row.markdown(_("Current image: **{name}** ({size}), uploaded earlier in this session").format(
            name=kept["name"], size=format_size(len(kept["data"]))))
        row.button(_("Remove"), icon=":material/close:", key=f"{key}-remove",
                   on_click=lambda: st.session_state.pop(KEPT + key, None))
    if kept is None:
        return None
    try:
        return preprocess(kept["data"], style)
    except ImageError as err:
        container.error(_("**{name}**: {error}").format(name=kept["name"], error=upload_error(err)))
        return None


def upload_image(key: str, container=st, label: str | None = None, style: str = "mnist"):
    """A file uploader that returns the model's input: float (1, C, H, W) in [0, 1], or None.

    None when no file is chosen, or when the file is unusable (its reason then shows with st.error);
    doubts about the ink found (``Preprocessed.warnings``) show as st.warning under the uploader.
    ``label``: ``upload_preprocessed``'s.
    """
    done = upload_preprocessed(key, container, label, style)
    if done is None:
        return None
    for doubt in done.warnings:  # why the ink found may not be one digit
        container.warning(say(doubt), icon=":material/crop:")
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
    scale = c1.selectbox(_("PNG scale"), [1, 2, 4, 8], index=2, key=f"{key}_scale", format_func=lambda s: f"{s}x")
    c2.download_button(_("Download PNG"), lambda: png_bytes(pixels, scale), f"{name}-x{scale}.png", "image/png",
                       key=key, icon=":material/download:")


def png_bytes(pixels, scale: int = 1) -> bytes:
    """A uint8 image array (H, W) or (H, W, 3) as PNG file bytes, enlarged ``scale`` times by pixel repetition."""
    buf = io.BytesIO()
    Image.fromarray(pixels.repeat(scale, 0).repeat(scale, 1)).save(buf, "PNG")
    return buf.getvalue()


# Noto Sans CJK (Debian's fonts-noto-cjk, the Dockerfile's): Pillow's default font has no Chinese glyphs (boxes)
CJK_FONT_FILES = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                  "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc")
CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")


@functools.cache
def cjk_font(size: int) -> ImageFont.FreeTypeFont | None:
    """Noto Sans CJK SC at ``size`` px (fonts-noto-cjk: the Dockerfile and CI install it), or None where it
    is not installed; loaded once per size."""
    for path in CJK_FONT_FILES:
        for index in range(10):  # a collection: JP, KR, SC, ...
            try:
                font = ImageFont.truetype(path, size, index=index)
            except OSError:
                break
            if font.getname()[0] == "Noto Sans CJK SC":
                return font
    return None


def font_of(text: str, size: int) -> dict:
    """``draw.text``'s font arguments for ``text``: Pillow's default font at ``size`` px, as ever, unless the
    text holds Chinese (a translated axis name, a folder's class), then Noto Sans CJK where installed."""
    font = cjk_font(int(size)) if CJK.search(text) else None
    return {"font_size": size} if font is None else {"font": font}


def label_tiles(pixels, labels: list[str], per_row: int, cell: int, font: int = 12):
    """The tiled strip (uint8 (H, W) grey or (H, W, 3) colour) with each image's label (its t) in a band
    under its row."""
    rows = (len(labels) + per_row - 1) // per_row
    band = font + 6
    h, w = pixels.shape[:2]
    out = Image.new("L" if pixels.ndim == 2 else "RGB", (w, h + rows * band), (255,) * (1 if pixels.ndim == 2 else 3))
    for r in range(rows):  # each row of images, then its band of labels
        out.paste(Image.fromarray(pixels[r * cell : (r + 1) * cell]), (0, r * (cell + band)))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(labels):
        r, c = divmod(i, per_row)
        draw.text((c * cell + cell // 2, r * (cell + band) + cell + 2), text, fill=60 if pixels.ndim == 2 else (60,) * 3,
                  anchor="ma", **font_of(text, font))
    return np.asarray(out)


def path_gif(ends, path, scale: int = 4, ms: int = 120) -> bytes:
    """Frames: ends float (2, C, H, W) and path float (n, C, H, W) in [0, 1]."""
    # The start's reconstruction, the path, the end's reconstruction, and back: an animated GIF.
    frames = torch.cat([ends[:1], path, ends[1:]])
    pictures = [Image.fromarray(tile(f[None], nrow=1, scale=scale)) for f in frames]
    pictures += pictures[-2:0:-1]  # back again, without repeating the two ends
    buf = io.BytesIO()
    pictures[0].save(buf, "GIF", save_all=True, append_images=pictures[1:], duration=ms, loop=0)
    return buf.getvalue()


THUMBNAIL_FORMAT = b"grey PNG, 1x"  # in the folders' hash: change it with png_files (a grey image gives the same bytes as ever)


def _uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def png_files(images: torch.Tensor) -> list[bytes]:
    """Each image of float (N, C, H, W) in [0, 1] as the bytes of a PNG file, grey (C = 1) or RGB (C = 3)
    (about 270 bytes for a 28x28 MNIST digit)."""
    out = []
    for x in _uint8(images).permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(x[..., 0] if x.shape[-1] == 1 else x).save(buffer, "PNG", optimize=True)
        out.append(buffer.getvalue())
    return out


def png_data_urls(images: torch.Tensor) -> list[str]:
    """Each image of float (N, C, H, W) in [0, 1] as a PNG data URL (about 370 characters for a 28x28
    MNIST digit): Vega's tooltip draws a field named "image" holding one as a picture."""
    return ["data:image/png;base64," + base64.b64encode(png).decode("ascii") for png in png_files(images)]


def thumbnails_dir(dataset: str, images: torch.Tensor, indices: torch.Tensor, root: Path = THUMBNAILS) -> Path:
    """Where the hover thumbnails of these test images lie: ``root/DATASET-HASH/``, the hash (SHA-256,
    12 hex digits) of the images and their test indices, so that other images at hand (the bundled
    sample, say) get another folder, and a browser never shows a stale picture from its cache."""
    digest = hashlib.sha256(THUMBNAIL_FORMAT + _uint8(images).numpy().tobytes())
    digest.update(indices.to(torch.int64).numpy().tobytes())
    return root / f"{folder_slug(dataset)}-{digest.hexdigest()[:12]}"


def folder_slug(dataset: str) -> str:
    """A dataset's name as a safe file name: "mnist", or a folder's or zip's own name (letters, digits,
    - and _ kept, at most 40 characters), the path to it left out."""
    if is_builtin(dataset):
        return dataset
    return re.sub(r"[^A-Za-z0-9_-]+", "-", Path(dataset).stem)[:40].strip("-") or "images"


def write_thumbnails(dataset: str, images: torch.Tensor, indices: torch.Tensor, root: Path = THUMBNAILS) -> Path:
    """Write ``thumbnails_dir``'s folder unless it is there: one PNG per image, named by its test index
    (``1234.png``; 10,000 MNIST images take about 1 s on a 2-core CPU and 2.7 MB, 40 MB of 4 KB disk
    blocks). Written in a temporary folder renamed at the end, so a browser never finds half of it.
    Returns the folder; raises OSError when ``root`` cannot be written (a read-only app folder)."""
    final = thumbnails_dir(dataset, images, indices, root)
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    for left in root.glob(".tmp-*"):  # left by a process stopped while writing, an hour or more ago
        if time.time() - left.stat().st_mtime > 3600:
            shutil.rmtree(left, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        for i, png in zip(indices.tolist(), png_files(images)):
            (tmp / f"{int(i)}.png").write_bytes(png)
        tmp.chmod(0o755)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # else another process wrote the same folder first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def thumbnails_url(dataset: str, image_shape=None) -> str | None:
    """``_thumbnails_url``, with a spinner in the run's language while it writes them."""
    with st.spinner(_("Writing the hover pictures...")):
        return _thumbnails_url(dataset, image_shape)


@st.cache_resource(show_spinner=False, max_entries=4)
def _thumbnails_url(dataset: str, image_shape=None) -> str | None:
    """The URL, relative to the page, of the folder of the test images' hover thumbnails
    (``write_thumbnails``): a chart names each point's picture as this folder + its test index + ".png",
    which the browser fetches when the pointer first rests on the point, so a chart's own data stays
    small (a 10,000-point chart is 0.7 MB instead of 4.2 MB, sent again on every change). None when
    Streamlit does not serve static files or the folder is neither there nor writable: then a chart
    carries the pictures itself. Once per server process and dataset (``test_images``' arguments)."""
    if not st.get_option("server.enableStaticServing"):
        return None
    images, _labels, indices, _source = test_images(dataset, image_shape)
    try:
        folder = write_thumbnails(dataset, images, indices)
    except OSError:
        return None
    return "app/static/" + folder.relative_to(STATIC).as_posix() + "/"


def main(argv: list[str] | None = None) -> None:
    """``python -m ui.images``: write the hover thumbnails of both datasets' test images at hand (the
    test split under the data root, else the bundled sample) into static/thumbnails/."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m ui.images", description=main.__doc__)
    p.add_argument("--data-root", default=None, help="default: $VAE_DATA_DIR, else ./data")
    a = p.parse_args(argv)
    for dataset in CLASS_NAMES:
        images, _labels, indices, source = load_test_images(dataset, a.data_root, sample_file(PRETRAINED / "samples", dataset))
        folder = write_thumbnails(dataset, images, indices)
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"{folder}/: {len(indices):,} thumbnails of {source}, {format_size(size)}")


if __name__ == "__main__":
    main()
