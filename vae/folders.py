"""Your own images as a dataset: a folder of pictures, or a .zip of one, decoded once and cached.

    python -m vae.folders PATH [--image-size 28|32|64] [--channels 1|3] [--json]   (prints the data card)
    python -m vae.train --dataset PATH ...                                          (trains on it)

Layout (torchvision's ``ImageFolder`` convention): every subfolder of the top folder is a class, named
by the subfolder, classes in sorted order (Python's string order: "10" before "2"); images anywhere
below a class folder belong to it. Images directly in the top folder, with no class folders, make an
unlabelled dataset (one class, label 0, ``card["labelled"]`` False). A top folder holding nothing but
one folder is stepped into (a zip of ``mydata/`` is read as ``mydata``). When the top folder holds
``train/`` and ``test/`` (and nothing else that is an image), they are the splits, each with its class
folders; otherwise a test split is held out: ``TEST_FRACTION`` of each class, drawn with
``SPLIT_SEED``. ``vae.train`` then holds out its validation images from the rest (10%, seed 0).

Every image is decoded with Pillow, never written anywhere:
1. the first frame of an animation; EXIF orientation applied (``ImageOps.exif_transpose``);
2. 16- and 32-bit grey scaled by their nominal range, 1-bit to 8-bit grey, palette images to RGB (or
   RGBA when they have a transparent colour), CMYK, YCbCr, LAB and HSV to RGB;
3. transparency composited on black: a transparent pixel becomes black, a half-transparent one is
   darkened by its alpha. Black rather than each image's dominant border colour because a fully
   transparent border has no colour of its own to be dominant (its stored RGB is whatever the
   program that wrote it left there), and because one background for every image keeps the dataset
   consistent, as MNIST's light-on-black digits are;
4. centre-cropped to a square (the shorter side; the longer one loses equal parts at both ends) and
   resized to ``image_size`` with Pillow's LANCZOS filter, which is antialiased (its kernel widens
   with the reduction; it is the filter Pillow once called ANTIALIAS); an image already of that size
   is left as it is, so MNIST's digits saved as PNG come back byte for byte;
5. to ``channels``: 1 (grey by ITU-R 601-2 luma, Pillow's "L") or 3 (RGB; a grey image's level in
   all three).
Defaults: channels 1 when every image is grey (a grey mode, or RGB whose channels differ by at most
``GREY_TOLERANCE`` levels everywhere, as a grey picture saved as a colour JPEG does), else 3;
image_size 28 when the images are grey and none is larger than 28 pixels on a side, else 32.

Bad input: ``FolderDatasetError`` (a ValueError with one sentence a person can act on, and a ``code``
and ``params`` for translation) for what makes the whole source unusable: a path that is neither a
folder nor a zip, a broken zip, a member name that climbs out of the folder (``..``) or is absolute,
a zip bomb (refused from its central directory, before a byte is decompressed, by its member count
and declared uncompressed size, and while reading by the actual size), too many files, no images,
every image corrupt, fewer than ``MIN_IMAGES`` usable images. What leaves the rest usable is skipped,
counted and named in the card: empty, truncated, corrupt and non-image files, images over Pillow's
decompression-bomb limit (checked from the header, before decoding), files over the per-file size
limit, symbolic links (never followed, in a folder or a zip), encrypted zip members, images outside
any class folder when there are class folders. Hidden and system files (any name starting with a
dot, ``.DS_Store`` and ``._*`` included, ``__MACOSX/``, ``Thumbs.db``, ``desktop.ini``) are ignored
and counted. Zip members are read into memory, one at a time, through ``zipfile``; nothing is ever
extracted, so no path is built from a member's name.

Cache: the decoded images are kept as one safetensors file of uint8 tensors in ``cache_dir``
(default ``$VAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/vae-explorer/datasets``, else
``~/.cache/vae-explorer/datasets``), named by the SHA-256 of the source's content (a zip's bytes; a
folder's file names and bytes) and the options, with the data card in its metadata. A second import
of the same content with the same options reads the hash and that file and decodes nothing. Nothing
is written anywhere else.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import stat
import sys
import time
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import N_, Message, UserError, format_size
from .data import split_train_val  # the validation split vae.train will hold out, counted in the card
from .models import IMAGE_CHANNELS, IMAGE_SIZES
from .preprocess import HIGH_DEPTH_MODES, THUMB_SIZE, Preprocessed, grey_to_8bit

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")  # Pillow openers tried (PPM also reads PGM, PBM)
MIN_IMAGES = 20  # with a 10% test split and 10% validation: 2 test, 2 validation, 16 training images
TEST_FRACTION = 0.1  # of each class, held out as the test split when the source has no test/ folder
SPLIT_SEED = 0
GREY_TOLERANCE = 4  # an RGB image whose channels differ by at most this many levels (of 255) is grey
SMALL_SIZE = 28  # the default size for grey images no larger than this; else DEFAULT_SIZE
DEFAULT_SIZE = 32
BACKGROUND = "black"  # what transparency is composited on (see the module's docstring, step 3)
RESAMPLING = "LANCZOS"
CACHE_VERSION = 1  # part of every cache key: bump it when decoding changes
MAX_NAMED = 200  # skipped files named in the card (all are counted)
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
SPLIT_NAMES = ("train", "test")
HOLD_BYTES = 512 * 2**20  # files read once (hashing, headers) are kept in memory up to this much, not read again


@dataclass(frozen=True)
class Limits:
    """What a source may hold. The command line's defaults; the app passes smaller ones for uploads.

    max_files: files (zip members, directories included) in the source, refused above it.
    max_file_bytes: one file's size (a zip member's declared and actual uncompressed size); a larger
      file is skipped.
    max_total_bytes: a zip's total uncompressed size, declared (checked before reading) and actual
      (counted while reading); refused above it. Not applied to folders, which are read one file at a
      time from the user's own disk.
    max_pixels: width x height of one image, from its header, before decoding; a larger image is
      skipped (Pillow's own decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``, by default).
    """

    max_files: int = 250_000
    max_file_bytes: int = 64 * 2**20
    max_total_bytes: int = 4 * 2**30
    max_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485


class FolderDatasetError(UserError, ValueError):
    """A folder or zip that cannot be a dataset. ``str(err)`` is one sentence saying why and what to
    do (``err.message``: the ``vae.errors.Message``, which the app translates); ``code`` names the case
    (for tests) and ``params`` the template's values."""

    def __init__(self, code: str, template: str, /, **params):
        super().__init__(template, **params)
        self.code, self.params = code, params


@dataclass
class FolderDataset:
    """A decoded dataset. images: uint8 (N, C, S, S); labels: int64 (N,) in [0, n_classes) (all 0 when
    unlabelled); test: bool (N,), the held-out test split; card: the data card (``card_markdown``)."""

    images: torch.Tensor
    labels: torch.Tensor
    test: torch.Tensor
    card: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, S, S): 1 or 3 channels, S in 28, 32, 64."""
        return tuple(self.images.shape[1:])

    @property
    def class_names(self) -> list[str]:
        """The class folders' names in label order; one name, the source's, when unlabelled."""
        return list(self.card["classes"])

    def split(self, which: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """(images float32 (M, C, S, S) in [0, 1], labels int64 (M,)) of "train" (training and validation
        images, in the dataset's order), "test" or "all". Raises ValueError for another name."""
        if which not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {which!r}")
        keep = slice(None) if which == "all" else (self.test if which == "test" else ~self.test)
        return self.images[keep].to(torch.float32).div_(255), self.labels[keep].clone()


def default_cache_dir() -> Path:
    """``$VAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/vae-explorer/datasets``, else ``~/.cache/vae-explorer/datasets``."""
    if os.environ.get("VAE_CACHE_DIR"):
        return Path(os.environ["VAE_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vae-explorer" / "datasets"


def _ignored(name: str) -> bool:
    """Hidden and system files and folders: a leading dot (.DS_Store, ._AppleDouble), __MACOSX, Thumbs.db."""
    return name.startswith(".") or name in IGNORED_NAMES


# --------------------------------------------------------------------------- listing a source


@dataclass
class _Listing:
    """What a source holds: files (relative path with "/", and how to read it), skipped (relative path,
    reason), the number of ignored entries, and the content hash."""

    kind: str  # "folder" or "zip"
    files: list[tuple[str, object]]
    skipped: list[tuple[str, str]]
    ignored: int
    sha256: str = ""
    zip: zipfile.ZipFile | None = None
    read_bytes: int = 0  # a zip's actual uncompressed bytes read so far
    held: dict = field(default_factory=dict)  # relative path -> bytes already read, up to HOLD_BYTES in all
    held_bytes: int = 0
    counted: set = field(default_factory=set)  # zip members whose actual size is in read_bytes

    def hold(self, key, data: bytes) -> None:
        """Keep a file's bytes for the next pass when they fit in HOLD_BYTES (small images: all of them)."""
        if self.held_bytes + len(data) <= HOLD_BYTES:
            self.held[key] = data
            self.held_bytes += len(data)


def _list_folder(root: Path, limits: Limits) -> _Listing:
    listing = _Listing("folder", [], [], 0)
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel = here.relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        for d in sorted(dirnames):
            if _ignored(d):
                dirnames.remove(d)
                listing.ignored += 1
            elif (here / d).is_symlink():  # os.walk lists a linked folder but does not enter it
                dirnames.remove(d)
                listing.skipped.append((prefix + d, "a symbolic link (not followed)"))
        dirnames.sort()
        for f in filenames:
            count += 1
            if count > limits.max_files:
                raise FolderDatasetError(
                    "too_many_files", N_("{root} holds more than {limit:,} files: split it, or keep only the images "
                                         "to train on."), root=str(root), limit=limits.max_files)
            path = here / f
            if _ignored(f):
                listing.ignored += 1
            elif path.is_symlink():
                listing.skipped.append((prefix + f, "a symbolic link (not followed)"))
            elif not path.is_file():
                listing.skipped.append((prefix + f, "not a regular file"))
            else:
                listing.files.append((prefix + f, path))
    listing.files.sort(key=lambda t: t[0])
    h = hashlib.sha256(b"vae.folders folder\0")
    for rel, path in listing.files:  # the names and the bytes, in sorted order
        data = _read_file(path, limits)
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        if isinstance(data, str):  # not read: its name and why stand for it
            h.update(data.encode() + b"\1")
        else:
            h.update(str(len(data)).encode() + b"\0" + data)
            listing.hold(path, data)
    for rel, reason in sorted(listing.skipped):
        h.update(f"{rel}\0{reason}\0".encode("utf-8", "surrogateescape"))
    listing.sha256 = h.hexdigest()
    return listing


def _read_file(path: Path, limits: Limits) -> bytes | str:
    """A regular file's bytes, never through a symbolic link (O_NOFOLLOW), or why it was not read: over
    max_file_bytes, or an OSError (no permission, gone, a link swapped in since it was listed)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.max_file_bytes:
                return f"{format_size(size)}, over the {format_size(limits.max_file_bytes)} limit per file"
            return f.read(limits.max_file_bytes + 1)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"


_DRIVE = re.compile(r"^[A-Za-z]:")


def _list_zip(file: Path | io.BytesIO, name: str, limits: Limits) -> _Listing:
    """Checks the central directory (names, count, declared sizes) before reading any member. file: the
    zip's path or its bytes (an upload); name: the zip in words, for messages."""
    try:
        z = zipfile.ZipFile(file)
        infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        raise FolderDatasetError("bad_zip", N_("{name} looks like a zip but cannot be read ({error}): make the zip "
                                               "again."), name=name, error=str(err)) from None
    if len(infos) > limits.max_files:
        raise FolderDatasetError(
            "zip_bomb_members", N_("{name} has {members:,} members, over the limit of {limit:,}: refused before "
                                   "extracting anything (it may be a zip bomb)."),
            name=name, members=len(infos), limit=limits.max_files)
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_total_bytes:
        raise FolderDatasetError(
            "zip_bomb_size", N_("{name} declares {declared} uncompressed, over the limit of {limit}: refused before "
                                "extracting anything (it may be a zip bomb)."),
            name=name, declared=format_size(declared), limit=format_size(limits.max_total_bytes))
    listing = _Listing("zip", [], [], 0, zip=z)
    seen = set()
    for info in infos:
        member = info.filename
        parts = re.split(r"[/\\]", member)
        if member.startswith(("/", "\\")) or _DRIVE.match(member) or ".." in parts or "\0" in member:
            raise FolderDatasetError(
                "unsafe_member", N_("{name} holds a member named {member!r}, which climbs out of the folder or is "
                                    "absolute: refused (make the zip from inside the folder)."), name=name, member=member)
        parts = [p for p in parts if p not in ("", ".")]
        rel = "/".join(parts)
        if info.is_dir() or not parts:
            continue
        if any(_ignored(p) for p in parts):
            listing.ignored += 1
        elif stat.S_ISLNK(info.external_attr >> 16):
            listing.skipped.append((rel, "a symbolic link (not followed)"))
        elif info.flag_bits & 0x1:
            listing.skipped.append((rel, "encrypted"))
        elif info.file_size > limits.max_file_bytes:
            listing.skipped.append((rel, f"{format_size(info.file_size)} uncompressed, over the "
                                         f"{format_size(limits.max_file_bytes)} limit per file"))
        elif rel in seen:
            listing.skipped.append((rel, "a second member of the same name"))
        else:
            seen.add(rel)
            listing.files.append((rel, info))
    listing.files.sort(key=lambda t: t[0])
    if isinstance(file, io.BytesIO):
        listing.sha256 = hashlib.sha256(file.getbuffer()).hexdigest()
    else:
        with open(file, "rb") as f:
            listing.sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    return listing


def _open_source(source: Path | bytes, name: str, limits: Limits) -> _Listing:
    if isinstance(source, bytes):
        if not source:
            raise FolderDatasetError("not_a_zip", N_("{name} is empty: upload a .zip of a folder of images."), name=name)
        file = io.BytesIO(source)
        if not zipfile.is_zipfile(file):
            raise FolderDatasetError("not_a_zip", N_("{name} is not a zip file: upload a .zip of a folder of images."),
                                     name=name)
        return _list_zip(file, name, limits)
    if not source.exists():
        raise FolderDatasetError("not_found", N_("{path} does not exist: give a folder of images or a .zip of one "
                                                 "(or the dataset mnist or fashion)."), path=str(source))
    if source.is_dir():
        return _list_folder(source, limits)
    if not zipfile.is_zipfile(source):
        raise FolderDatasetError("not_a_zip", N_("{name} is not a zip file (nor a folder): give a folder of images "
                                                 "or a .zip of one."), name=source.name)
    return _list_zip(source, source.name, limits)


def _read(listing: _Listing, item, limits: Limits) -> bytes | str:
    """A listed file's bytes, or the reason it cannot be read. Raises FolderDatasetError when a zip's
    actual uncompressed bytes pass max_total_bytes."""
    if item in listing.held:
        return listing.held[item]
    if listing.kind == "folder":
        data = _read_file(item, limits)
        if isinstance(data, bytes):
            listing.hold(item, data)
        return data
    try:
        with listing.zip.open(item) as f:
            data = f.read(limits.max_file_bytes + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as err:
        return f"a corrupt zip member ({err})"
    if item not in listing.counted:  # a member read twice (not held) counts once
        listing.counted.add(item)
        listing.read_bytes += len(data)
    if listing.read_bytes > limits.max_total_bytes:
        raise FolderDatasetError(
            "zip_bomb_size", N_("the zip's members decompress to more than {limit}: refused (it may be a zip bomb)."),
            limit=format_size(limits.max_total_bytes))
    if len(data) > limits.max_file_bytes:
        return f"over the {format_size(limits.max_file_bytes)} limit per file"
    listing.hold(item, data)
    return data


# --------------------------------------------------------------------------- layout: classes and splits


def _layout(rels: list[str]) -> tuple[int, bool, list[str], list[tuple[str | None, str | None]]]:
    """(path components to strip, whether train/ and test/ split it, sorted class names, and per file
    (split or None, class or None); a class of None when labelled means "outside any class folder").

    A top level that is one folder and nothing else is stepped into, as often as that holds."""
    parts = [r.split("/") for r in rels]
    strip = 0
    while parts and all(len(p) > strip + 1 for p in parts) and len({p[strip] for p in parts}) == 1:
        strip += 1
    tops = {p[strip] for p in parts if len(p) > strip + 1}
    presplit = set(SPLIT_NAMES) <= tops and tops <= set(SPLIT_NAMES)
    depth = strip + (1 if presplit else 0)  # where the class folders are
    labelled = any(len(p) > depth + 1 for p in parts)
    out = []
    for p in parts:
        split = (p[strip] if len(p) > strip + 1 else None) if presplit else None
        cls = (p[depth] if len(p) > depth + 1 else None) if labelled else ""
        if presplit and split is None:
            cls = None  # a file beside train/ and test/
        out.append((split, cls))
    classes = sorted({c for _, c in out if c}) if labelled else []
    return strip, presplit, classes, out


# --------------------------------------------------------------------------- decoding one image


def _open_image(data: bytes, limits: Limits) -> Image.Image | str:
    """The image with its header read (no pixels yet), or the reason it is skipped."""
    if not data:
        return Message(N_("an empty file"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:  # more than twice Image.MAX_IMAGE_PIXELS: Pillow refuses it itself
        return Message(N_("over the decompression-bomb limit (Pillow refuses images this large)"))
    except Exception:  # UnidentifiedImageError, or a header so broken that the plugin gives up
        return Message(N_("not an image (Pillow reads PNG, JPEG, BMP, GIF, WebP, TIFF and PPM)"))
    w, h = im.size
    if w * h > limits.max_pixels:
        return Message(N_("{width:,} x {height:,} pixels, over the decompression-bomb limit of {limit:,} pixels "
                          "(Pillow's)"), width=w, height=h, limit=limits.max_pixels)
    if w == 0 or h == 0:
        return Message(N_("an image with no pixels"))
    return im


def _to_8bit(im: Image.Image) -> Image.Image:
    """Any mode -> "L" or "RGB": high bit depths scaled, palette and CMYK converted, alpha on black."""
    if im.mode in HIGH_DEPTH_MODES:
        return grey_to_8bit(im)
    if im.mode == "1":
        return im.convert("L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("PA", "RGBa", "La"):
        im = im.convert("RGBA" if im.mode != "La" else "LA")
    elif im.mode in ("L", "RGB") and "transparency" in im.info:  # a transparent grey level or colour
        im = im.convert("RGBA")
    if im.mode in ("LA", "RGBA"):  # composite on black: each pixel times its alpha
        base = im.mode[:-1]
        out = Image.new(base, im.size, 0)
        out.paste(im.convert(base), mask=im.getchannel("A"))
        return out
    if im.mode in ("L", "RGB"):
        return im
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV (a mode Pillow cannot convert raises ValueError)


def _decode(im: Image.Image, size: int, mode: str | None) -> tuple[np.ndarray, tuple[int, int]]:
    """(uint8 (S, S) or (S, S, 3), the upright size before resizing (width, height)). mode: "L", "RGB",
    or None for the image's own (grey images "L", others "RGB"). Decoding errors propagate."""
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    stored = im.size
    if im.format in ("JPEG", "MPO"):  # libjpeg's DCT scaling: decode at 1/2, 1/4 or 1/8, still >= size
        im.draft("L" if mode == "L" else None, (size, size))
    drafted = im.size
    im = _to_8bit(ImageOps.exif_transpose(im))  # exif_transpose loads the pixels: errors surface here
    if mode and im.mode != mode:
        im = im.convert(mode)
    w, h = im.size
    turned = (w, h) != drafted
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    if s != size or w != h:
        im = im.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0 if s > 3 * size else None)
    return np.asarray(im, dtype=np.uint8), (stored[::-1] if turned else stored)


def decode_image(data: bytes, image_shape, limits: Limits | None = None) -> torch.Tensor:
    """One image file's bytes made as a folder's images were (steps 1-5 of the module's docstring), for
    a model trained on them: an upload on the Reconstruct page, say. image_shape: the model's (C, S, S).
    Returns float32 (1, C, S, S) in [0, 1]. Raises FolderDatasetError with the reason when the bytes are
    empty, not an image, over the limits (``Limits``: max_file_bytes, max_pixels) or cannot be decoded."""
    limits = limits or DEFAULT_LIMITS
    c, s = int(image_shape[0]), int(image_shape[1])
    if len(data) > limits.max_file_bytes:
        raise FolderDatasetError("image_too_large", N_("the file is {size}, over the {limit} limit: save a smaller "
                                                       "image."),
                                 size=format_size(len(data)), limit=format_size(limits.max_file_bytes))
    im = _open_image(data, limits)
    if isinstance(im, str):
        raise FolderDatasetError("bad_image", N_("the file is {reason}: upload a PNG or JPEG image."), reason=im)
    try:
        a, _ = _decode(im, s, "L" if c == 1 else "RGB")
    except Exception as err:
        raise FolderDatasetError("bad_image", N_("the file is {reason}: save it again as PNG or JPEG."),
                                 reason=_reason(err)) from None
    x = torch.from_numpy(a.copy())
    return (x[None, None] if c == 1 else x.permute(2, 0, 1)[None]).to(torch.float32).div_(255)


def prepare_upload(data: bytes, image_shape, max_bytes: int | None = None):
    """An upload for a model trained on a folder (the Reconstruct page's, say): ``decode_image`` and the
    steps to show, as ``vae.preprocess.Preprocessed``. image_shape: the model's (C, S, S); max_bytes:
    the file size limit (``Limits.max_file_bytes`` when None). Returns Preprocessed with image float32
    (1, C, S, S) in [0, 1] and two steps (the file upright with its transparency on black, at most
    ``vae.preprocess.THUMB_SIZE`` px; the model's input), never inverted and with no warnings: a
    folder's images are taken as they are. Raises FolderDatasetError as ``decode_image``."""
    limits = DEFAULT_LIMITS if max_bytes is None else Limits(max_file_bytes=max_bytes)
    x = decode_image(data, image_shape, limits)
    im = _open_image(data, limits)  # decode_image has read it already: no error left
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    fmt, mode = im.format, im.mode
    shown = _to_8bit(ImageOps.exif_transpose(im))
    w, h = shown.size
    shown.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX)
    c, s = int(image_shape[0]), int(image_shape[1])
    a = (x[0] * 255).round().to(torch.uint8)
    final = a[0].numpy() if c == 1 else a.permute(1, 2, 0).numpy()
    steps = ((Message(N_("your image, {width} × {height} px"), width=w, height=h), np.asarray(shown)),
             (Message(N_("{size}×{size}, grey: the centre square, resized") if c == 1 else
                      N_("{size}×{size}, colour: the centre square, resized"), size=s), final))
    return Preprocessed(x, steps, False, f"{fmt}, {w} × {h} px, {mode}")


def _is_grey(a: np.ndarray) -> bool:
    if a.ndim == 2:
        return True
    a = a.astype(np.int16)
    return int(np.abs(a[..., 0] - a[..., 1]).max()) <= GREY_TOLERANCE and int(np.abs(a[..., 1] - a[..., 2]).max()) <= GREY_TOLERANCE


def _reason(err: Exception) -> str:
    text = str(err).strip().rstrip(".") or type(err).__name__
    return f"truncated or corrupt (Pillow: {text[:80]})"


# --------------------------------------------------------------------------- import


def _cache_name(sha: str, size: int | str, channels: int | str) -> str:
    return f"{sha[:32]}-{size}px-{channels}ch-v{CACHE_VERSION}"


def _from_cache(path: Path) -> FolderDataset | None:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            card = json.loads(f.metadata()["card"])
            t = {k: f.get_tensor(k) for k in ("images", "labels", "test")}
    except (SafetensorError, OSError, KeyError, ValueError):
        return None  # a damaged cache file is decoded again and replaced
    card["cached"] = True
    return FolderDataset(t["images"], t["labels"], t["test"].bool(), card)


def _write_cache(path: Path, ds: FolderDataset) -> None:
    from safetensors.torch import save_file

    from .checkpoint import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"images": ds.images.contiguous(), "labels": ds.labels, "test": ds.test.to(torch.uint8)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"card": json.dumps(ds.card)}))


DEFAULT_LIMITS = Limits()


def load_folder(
    source: str | os.PathLike | bytes,
    image_size: int | None = None,
    channels: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    limits: Limits | None = None,
    min_images: int = MIN_IMAGES,
    progress: Callable[[int, int], None] | None = None,
    name: str | None = None,
) -> FolderDataset:
    """Import a folder of images, or a .zip of one, as a dataset (see the module's docstring).

    source: a folder; a zip file; a zip's bytes (an upload, ``name`` its file name for messages and
    the card); or a decoded dataset's own cache file (``card["cache_file"]``, a .safetensors file:
    read as it is, so a model trained on an upload finds its images again without the upload).
    image_size: 28, 32 or 64, or None for the default; channels: 1 or 3, or None for the default.
    cache_dir: where decoded datasets are kept (``default_cache_dir()`` when None); the only place
    anything is written. limits: ``Limits`` (None: ``DEFAULT_LIMITS``). min_images: fewer usable
    images than this are refused. progress: called with (images done, images to decode) while
    decoding (not on a cache hit). Returns a ``FolderDataset`` (images uint8 (N, C, S, S)); its card
    says what was skipped, the cache file, and how long the import took ("seconds"; "cached": whether
    it came from the cache). Raises FolderDatasetError for bad input (the message says why and what
    to do), ValueError for an image_size or channels outside the choices.
    """
    t0 = time.perf_counter()
    if image_size is not None and image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
    if channels is not None and channels not in IMAGE_CHANNELS:
        raise ValueError(f"channels must be one of {IMAGE_CHANNELS}, got {channels}")
    limits = limits or DEFAULT_LIMITS
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if isinstance(source, (bytes, bytearray, memoryview)):
        source, shown = bytes(source), Path(name or "upload.zip")
    else:
        source = shown = Path(source).expanduser().absolute()
        if source.suffix == ".safetensors" and source.is_file():
            return _cache_file(source, image_size, channels, t0)
    listing = _open_source(source, shown.name, limits)
    try:
        wanted = _cache_name(listing.sha256, image_size or "auto", channels or "auto")
        alias = cache / f"{wanted}.json"  # a request with defaults -> the options they resolved to
        found = wanted
        if (image_size is None or channels is None) and alias.is_file():
            try:
                found = json.loads(alias.read_text())["name"]
            except (OSError, ValueError, KeyError):
                found = wanted
        ds = _from_cache(cache / f"{found}.safetensors")
        if ds is None:
            ds = _import(shown, listing, image_size, channels, limits, min_images, progress)
    finally:
        if listing.zip is not None:
            listing.zip.close()
    where = str(shown) if isinstance(source, Path) else f"{shown.name} (uploaded)"
    if ds.card.get("cached") is None:  # decoded now: keep it
        c, s = ds.image_shape[0], ds.image_shape[1]
        found = _cache_name(listing.sha256, s, c)
        ds.card.update(source=where, sha256=listing.sha256, cache_file=str(cache / f"{found}.safetensors"),
                       import_seconds=round(time.perf_counter() - t0, 3))  # the first import's, kept in the cache
        _write_cache(cache / f"{found}.safetensors", ds)
        if found != wanted:
            from .checkpoint import write_json

            write_json(alias, {"name": found})
        ds.card.update(cached=False, seconds=round(time.perf_counter() - t0, 3))
    else:
        ds.card.update(source=where, cached=True, seconds=round(time.perf_counter() - t0, 3))
    return ds


def _cache_file(path: Path, image_size, channels, t0) -> FolderDataset:
    """A decoded dataset's cache file, checked against the requested options."""
    ds = _from_cache(path)
    if ds is None:
        raise FolderDatasetError("bad_cache", N_("{name} is not a dataset decoded by vae.folders (or it is damaged): "
                                                 "give the folder or zip it came from."), name=path.name)
    c, s = ds.image_shape[0], ds.image_shape[1]
    if (image_size or s) != s or (channels or c) != c:
        raise FolderDatasetError("cache_options", N_("{name} holds {size} px, {channels}-channel images, not the "
                                                     "{asked_size} px, {asked_channels}-channel ones asked for: give the "
                                                     "folder or zip it came from."), name=path.name, size=s, channels=c,
                                 asked_size=image_size or s, asked_channels=channels or c)
    ds.card.update(cached=True, seconds=round(time.perf_counter() - t0, 3))
    return ds


def _import(source: Path, listing: _Listing, image_size, channels, limits, min_images, progress) -> FolderDataset:
    skipped = list(listing.skipped)
    strip, presplit, classes, where = _layout([rel for rel, _ in listing.files])
    todo = []  # (rel, item, split, label)
    for (rel, item), (split, cls) in zip(listing.files, where):
        if cls is None:
            skipped.append((rel, "outside the class folders" + (" of train/ and test/" if presplit else
                                                                 ", directly in the top folder")))
            continue
        todo.append((rel, item, split, classes.index(cls) if classes else 0))

    images: list[np.ndarray] = []
    kept: list[tuple[str, object, str | None, int, tuple[int, int], str, str]] = []  # rel, item, split, label, size, mode, format
    small = True  # every image at most SMALL_SIZE on a side: decided from the headers before decoding
    if image_size is None:
        heads = []
        for rel, item, split, label in todo:
            data = _read(listing, item, limits)
            im = data if isinstance(data, str) else _open_image(data, limits)
            if isinstance(im, str):
                skipped.append((rel, im))
                continue
            heads.append((rel, item, split, label))
            small = small and max(im.size) <= SMALL_SIZE
        todo = heads
    size = image_size or (SMALL_SIZE if small else DEFAULT_SIZE)
    mode = {1: "L", 3: "RGB", None: None}[channels]
    for i, (rel, item, split, label) in enumerate(todo):
        data = _read(listing, item, limits)
        im = data if isinstance(data, str) else _open_image(data, limits)
        if isinstance(im, str):
            skipped.append((rel, im))
            if progress is not None:
                progress(i + 1, len(todo))
            continue
        fmt, stored_mode = im.format, im.mode
        try:
            a, before = _decode(im, size, mode)
        except Exception as err:  # Pillow's decoders raise many kinds for corrupt or truncated data
            skipped.append((rel, _reason(err)))
        else:
            images.append(a)
            kept.append((rel, item, split, label, before, stored_mode, fmt))
        if progress is not None:
            progress(i + 1, len(todo))

    _check_usable(source, listing, kept, skipped, min_images)
    grey = all(_is_grey(a) for a in images)
    c = channels or (1 if grey else 3)
    if image_size is None and size == SMALL_SIZE and c == 3:  # small colour images: DEFAULT_SIZE, decoded again
        size = DEFAULT_SIZE
        images = [_decode_again(listing, item, size, mode, limits) for _, item, *_ in kept]
    if c == 1:
        images = [a if a.ndim == 2 else np.asarray(Image.fromarray(a).convert("L")) for a in images]
        x = torch.from_numpy(np.stack(images))[:, None]
    else:
        images = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in images]
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([k[3] for k in kept], dtype=torch.int64)
    if presplit:
        test = torch.tensor([k[2] == "test" for k in kept])
        n_train, needed = int((~test).sum()), min_images - round(min_images * TEST_FRACTION)
        if n_train < needed:
            raise FolderDatasetError(
                "too_few_images", N_("the train/ folder of {name} has {found} usable images: training needs at least "
                                     "{needed} (a tenth of them held out for validation)."),
                name=source.name, found=n_train, needed=needed)
        if not test.any():
            raise FolderDatasetError(
                "no_test_images", N_("the test/ folder of {name} has no usable images: put some in it, or remove it "
                                     "and a tenth of each class is held out for testing."), name=source.name)
    else:
        test = _held_out_test(labels, max(1, len(classes)))
    card = _card(source, listing, classes, presplit, kept, skipped, labels, test, x.shape[1], x.shape[2], strip)
    return FolderDataset(x, labels, test, card)


def _decode_again(listing: _Listing, item, size: int, mode: str | None, limits: Limits) -> np.ndarray:
    """A file decoded before, decoded at another size; FolderDatasetError if it changed in between."""
    data = _read(listing, item, limits)
    im = data if isinstance(data, str) else _open_image(data, limits)
    try:
        if isinstance(im, str):
            raise ValueError(im)
        return _decode(im, size, mode)[0]
    except Exception as err:
        raise FolderDatasetError("changed", N_("a file changed while it was being imported ({error}): try again."),
                                 error=str(err)) from None


def _check_usable(source, listing, kept, skipped, min_images):
    if kept and len(kept) >= min_images:
        return
    where = Message(N_("zip")) if listing.kind == "zip" else Message(N_("folder"))
    not_images = [r for r, why in skipped if why.startswith(("not an image", "an empty file"))]
    broken = [(r, why) for r, why in skipped if why.startswith(("truncated or corrupt", "a corrupt zip member"))]
    if not kept and broken:
        first = f"{broken[0][0]}: {broken[0][1]}"
        raise FolderDatasetError(
            "all_corrupt", N_("none of the {count:,} images in the {where} {name} could be decoded ({first}): save "
                              "them again as PNG or JPEG."), count=len(broken) + len(kept), where=where,
            name=source.name, first=first)
    kinds = Counter(_reason_kind(why) for _, why in skipped)
    if not kept and set(kinds) - {"not an image", "an empty file"}:  # images there, but none usable
        summary = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common())
        raise FolderDatasetError(
            "no_usable_images", N_("the {where} {name} holds no usable images ({summary}; e.g. {example}): put PNG or "
                                   "JPEG files in it, one subfolder per class."), where=where, name=source.name,
            summary=summary, example=f"{skipped[0][0]}: {skipped[0][1]}")
    if not kept:
        if not_images:
            raise FolderDatasetError(
                "no_images", N_("the {where} {name} holds no images ({count:,} files that are not images, e.g. "
                                "{example}): put PNG or JPEG files in it, one subfolder per class."),
                where=where, name=source.name, count=len(not_images), example=not_images[0])
        raise FolderDatasetError(
            "no_images", N_("the {where} {name} holds no images: put PNG or JPEG files in it, one subfolder per class."),
            where=where, name=source.name)
    raise FolderDatasetError(
        "too_few_images", N_("the {where} {name} has {found} usable image: training needs at least {needed} (a tenth "
                             "held out for the test split and a tenth for validation).") if len(kept) == 1 else
        N_("the {where} {name} has {found} usable images: training needs at least {needed} (a tenth held out for the "
           "test split and a tenth for validation)."), where=where, name=source.name, found=len(kept), needed=min_images)


def _held_out_test(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """TEST_FRACTION of each class (rounded; at least 1 of a class of 2 or more), drawn with SPLIT_SEED."""
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    test = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(n_classes):
        idx = torch.nonzero(labels == c).flatten()
        k = max(1, round(TEST_FRACTION * len(idx))) if len(idx) >= 2 else 0
        test[idx[torch.randperm(len(idx), generator=gen)[:k]]] = True
    if not test.any():  # every class a single image: a tenth of all of them instead
        test[torch.randperm(len(labels), generator=gen)[: max(1, round(TEST_FRACTION * len(labels)))]] = True
    return test


_REASON_KINDS = ("an empty file", "not an image", "truncated or corrupt", "a corrupt zip member", "decompression-bomb",
                 "symbolic link", "outside the class folders", "limit per file", "encrypted", "second member",
                 "cannot be read", "not a regular file", "no pixels")


def _reason_kind(why: str) -> str:
    """A skip reason's kind, for the card's counts: the first of _REASON_KINDS it contains."""
    return next((k for k in _REASON_KINDS if k in why), why)


def _card(source, listing, classes, presplit, kept, skipped, labels, test, c, s, strip) -> dict:
    names = classes or [source.stem]
    train_idx = torch.nonzero(~test).flatten()
    _, val_pos = split_train_val(len(train_idx), 0.1)
    val = torch.zeros(len(labels), dtype=torch.bool)
    val[train_idx[val_pos]] = True

    def per_class(mask):
        return {n: int(((labels == i) & mask).sum()) for i, n in enumerate(names)}

    sizes = Counter(k[4] for k in kept)
    reasons = Counter(_reason_kind(why) for _, why in skipped)
    return {
        "source": str(source), "kind": listing.kind, "name": source.stem if listing.kind == "zip" else source.name,
        "labelled": bool(classes), "classes": names, "n_images": len(kept),
        "counts": per_class(torch.ones(len(labels), dtype=torch.bool)),
        "split": {
            "test_from": _test_from(presplit),
            "validation_from": VALIDATION_FROM,
            "train": per_class(~test & ~val), "validation": per_class(val), "test": per_class(test),
        },
        "sizes_before": {
            "min": [min(w for w, _ in sizes), min(h for _, h in sizes)],
            "max": [max(w for w, _ in sizes), max(h for _, h in sizes)],
            "distinct": len(sizes), "most_common": [[w, h, n] for (w, h), n in sizes.most_common(10)],
        },
        "modes_before": dict(Counter(k[5] for k in kept).most_common()),
        "formats": dict(Counter(k[6] for k in kept).most_common()),
        "n_skipped": len(skipped), "skipped_reasons": dict(reasons.most_common()),
        "skipped": [[r, why] for r, why in sorted(skipped)[:MAX_NAMED]],
        "n_ignored": listing.ignored,
        "image_size": s, "channels": c, "image_shape": [c, s, s],
        "decoding": _decoding(s, c),
    }


# The card's sentences that are the same for every dataset of a kind: English in the card's JSON, said
# in the reader's language by card_markdown (the app passes its gettext).
VALIDATION_FROM = N_("held out by vae.train: 10% of the rest, seed 0")


def _test_from(presplit: bool, _: Callable[[str], str] = str) -> str:
    if presplit:
        return _(N_("the test/ folder"))
    return _(N_("held out: {fraction:.0%} of each class, seed {seed}")).format(fraction=TEST_FRACTION, seed=SPLIT_SEED)


def _decoding(size: int, channels: int, _: Callable[[str], str] = str) -> str:
    return _(N_("Pillow; EXIF orientation applied; palette and CMYK to RGB; transparency composited on {background}; "
                "centre-cropped to a square and resized to {size} x {size} with {resampling} (antialiased); {colour}"
                )).format(background=BACKGROUND, size=size, resampling=RESAMPLING,
                          colour=_(N_("grey (ITU-R 601-2 luma)")) if channels == 1 else "RGB")


def card_markdown(card: dict, gettext: Callable[[str], str] = str) -> str:
    """The data card in Markdown: source, images per class and split, sizes and modes before
    resizing, how the images were made, what was skipped and why. gettext: translates each sentence's
    English template (the app passes its own; the default keeps English). The values (names, counts,
    the decoder's and file system's own words for a skipped file) stay as they are."""
    _ = gettext
    sp = card["split"]
    kind = _(N_("zip")) if card["kind"] == "zip" else _(N_("folder"))
    classes = (_(N_("{n} classes (one per subfolder)")).format(n=len(card["classes"])) if card["labelled"]
               else _(N_("unlabelled (no class folders)")))
    channels = _(N_("1 channel (grey)")) if card["channels"] == 1 else _(N_("3 channels (RGB)"))
    lines = [
        _(N_("# Dataset: {name}")).format(name=card["name"]),
        "",
        _(N_("Source: `{source}` ({kind}, SHA-256 `{sha}...`). {n:,} images, {classes}; {size} x {size} pixels, "
             "{channels}.")).format(source=card["source"], kind=kind, sha=card.get("sha256", "")[:16],
                                    n=card["n_images"], classes=classes, size=card["image_size"], channels=channels),
        "",
        _(N_("Split: test {test}; validation {validation}.")).format(
            test=_test_from(sp["test_from"] == _test_from(True), _), validation=_(VALIDATION_FROM)),
        "",
        _(N_("| class | images | train | validation | test |")),
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for n in card["classes"]:
        lines.append(f"| {n} | {card['counts'][n]:,} | {sp['train'][n]:,} | {sp['validation'][n]:,} | {sp['test'][n]:,} |")
    sb = card["sizes_before"]
    common = ", ".join(f"{w} x {h} ({n:,})" for w, h, n in sb["most_common"])
    lines += [
        "",
        _(N_("Sizes before resizing: {distinct} distinct, from {min} to {max} (width x height; most common: "
             "{common}). Modes: {modes}; formats: {formats}.")).format(
            distinct=sb["distinct"], min=f"{sb['min'][0]} x {sb['min'][1]}", max=f"{sb['max'][0]} x {sb['max'][1]}",
            common=common, modes=", ".join(f"{m} ({n:,})" for m, n in card["modes_before"].items()),
            formats=", ".join(f"{m} ({n:,})" for m, n in card["formats"].items())),
        "",
        _(N_("Decoding: {decoding}.")).format(decoding=_decoding(card["image_size"], card["channels"], _)),
        "",
    ]
    if card["n_skipped"]:
        reasons = "; ".join(f"{why}: {n:,}" for why, n in card["skipped_reasons"].items())
        lines += [_(N_("Skipped: {n:,} files ({reasons}):")).format(n=card["n_skipped"], reasons=reasons), ""]
        lines += [f"- `{r}`: {why}" for r, why in card["skipped"][:20]]
        if card["n_skipped"] > 20:
            lines.append(_(N_("- and {n:,} more")).format(n=card["n_skipped"] - 20))
        lines.append("")
    else:
        lines += [_(N_("Skipped: none.")), ""]
    lines.append(_(N_("Ignored: {n:,} hidden or system files (names starting with a dot, __MACOSX, Thumbs.db, "
                      "desktop.ini).")).format(n=card["n_ignored"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m vae.folders PATH [--image-size N] [--channels C] [--cache-dir DIR] [--json]``: import
    (or find in the cache) and print the data card. Exit 1 with the reason on bad input."""
    p = argparse.ArgumentParser(prog="python -m vae.folders", description="Import a folder or a .zip of images "
                                "as a dataset and print its data card.")
    p.add_argument("source", help="a folder of images (one subfolder per class) or a .zip of one")
    p.add_argument("--image-size", type=int, choices=IMAGE_SIZES, default=None,
                   help=f"default: {SMALL_SIZE} for grey images of at most {SMALL_SIZE} px, else {DEFAULT_SIZE}")
    p.add_argument("--channels", type=int, choices=IMAGE_CHANNELS, default=None,
                   help="default: 1 when every image is grey, else 3")
    p.add_argument("--cache-dir", default=None, help="default: $VAE_CACHE_DIR, else ~/.cache/vae-explorer/datasets")
    p.add_argument("--json", action="store_true", help="print the card as one JSON object")
    a = p.parse_args(argv)
    try:
        ds = load_folder(a.source, a.image_size, a.channels, a.cache_dir, progress=tqdm_progress())
    except FolderDatasetError as err:
        sys.exit(f"error: {err}")
    print(json.dumps(ds.card) if a.json else card_markdown(ds.card)
          + f"\nImported in {ds.card['seconds']} s{' (from the cache)' if ds.card['cached'] else ''}.")


def tqdm_progress() -> Callable[[int, int], None]:
    """A progress callback drawing one tqdm bar on stderr, made when the first image is decoded."""
    from tqdm import tqdm

    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="image", desc="decoding", leave=False)
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return report


if __name__ == "__main__":
    main()
