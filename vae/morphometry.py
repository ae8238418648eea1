"""Morpho-MNIST's measurements of a digit: area, length, thickness, slant, width, height.

Castro, Tan, Kainz, Konukoglu & Glocker (2019), "Morpho-MNIST: Quantitative Assessment and
Diagnostics for Representation Learning", JMLR 20(178), Sec. 2.1 ("Morphometry"). The pipeline,
per image:

1. upsample by ``UPSAMPLING`` (4x, cubic; Sec. 2.1: measuring at a finer scale than 28x28 makes
   the binary shape and its skeleton smoother);
2. threshold at half the intensity range (``THRESHOLD`` = 0.5 of [0, 1]) to a binary mask;
3. the mask's skeleton (its medial axis, thinned to one pixel) and its Euclidean distance map;
4. the six numbers below, scaled back to pixels of the input image.

``measure`` does one batch; ``load_measurements`` reads the MNIST test split's measurements, which
``python -m vae.morphometry --dataset mnist --split test`` computed once, so that no page measures a
whole split at run time. The code is ours, written from the paper's definitions (not the
Morpho-MNIST repository's).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from .errors import N_

MEASUREMENTS = ("area", "length", "thickness", "slant", "width", "height")
UNITS = {"area": "px^2", "length": "px", "thickness": "px", "slant": "rad", "width": "px", "height": "px"}
DESCRIPTIONS = {  # in English; marked for the app's catalogue (shown translated by ui.meaning.describe)
    "area": N_("foreground area of the binarised digit"),
    "length": N_("length of the stroke's skeleton"),
    "thickness": N_("mean stroke thickness, twice the distance map along the skeleton"),
    "slant": N_("slant from the image moments' horizontal shear, positive when the top leans right"),
    "width": N_("width of the slant-corrected bounding parallelogram"),
    "height": N_("height of the slant-corrected bounding parallelogram"),
}
PAPER = ("Castro, Tan, Kainz, Konukoglu & Glocker (2019), Morpho-MNIST, JMLR 20(178), "
         "Sec. 2.1 Morphometry")
UPSAMPLING = 4  # Sec. 2.1: images are measured after 4x upsampling
THRESHOLD = 0.5  # half the intensity range [0, 1]
MEASUREMENTS_DIR = Path(__file__).resolve().parent.parent / "pretrained" / "morphometry"


class MeasurementsNotFoundError(FileNotFoundError):
    """No stored measurements for a dataset and split. The message says how to compute them."""


def measure(images) -> dict[str, np.ndarray]:
    """Morpho-MNIST's six measurements of each image (Castro et al., 2019, Sec. 2.1).

    images: (N, 1, H, W), (N, H, W) or (H, W), either float in [0, 1] (numpy or a CPU torch tensor)
      or uint8 in [0, 255] (divided by 255, so a uint8 image and its float copy measure the same);
      light ink on black, as in MNIST.
    Returns a dict with the keys of ``MEASUREMENTS``, each float64 (N,), in pixels of the input image
    (28x28 for MNIST), not of the upsampled one:

    - ``area`` (px^2): number of foreground pixels of the mask, / UPSAMPLING^2.
    - ``length`` (px): number of pixels of the skeleton, / UPSAMPLING (the paper's skeleton
      length; a diagonal step counts 1, so a 45-degree stroke reads up to ~29% short).
    - ``thickness`` (px): 2 x the mean, over the skeleton, of the Euclidean distance map (each
      foreground pixel's distance to the nearest background pixel), / UPSAMPLING. A stroke drawn
      1.5 to 6 px wide reads within 7% of its width (tests/test_morphometry.py), except a 1.5 px
      stroke at 45 degrees (+20%) and widths off the 1/UPSAMPLING grid (up to ~14% at 1.75 px).

    The skeleton is ``skimage.morphology.skeletonize`` (thinning), not the pixels
    ``skimage.morphology.medial_axis`` returns: on the staircase boundary of an oblique stroke the
    latter sprouts a spur at every step, which doubled the length and read thickness 30% low on a
    4 px stroke at slope 4/3. The distance map is the one ``medial_axis(return_distance=True)``
    returns (``scipy.ndimage.distance_transform_edt``).
    - ``slant`` (rad): arctan of the horizontal shear s = -mu11 / mu02 of the mask's central moments
      (x to the right, y downwards, mu11 = sum (x - xc)(y - yc), mu02 = sum (y - yc)^2). The
      minus sign makes it positive when the top leans right (x grows as y decreases), as in the
      paper's figures; an upright digit reads 0 and a shear x -> x + s (yc - y) adds s to tan(slant).
    - ``width``, ``height`` (px): the bounding parallelogram after undoing the slant (x -> x - s
      (yc - y)): the extents, in x and y, of the foreground pixels, counted in whole upsampled
      pixels (max - min + 1), / UPSAMPLING. For a stroke the height is its vertical extent and the
      width is measured along the horizontal.

    A blank image (no pixel at or above THRESHOLD after upsampling) gives NaN in every measurement,
    with no warning. Raises ValueError for another shape or dtype. One 28x28 image takes a few ms.
    """
    batch = _as_batch(images)
    out = {name: np.full(len(batch), np.nan) for name in MEASUREMENTS}
    for i, image in enumerate(batch):
        for name, value in _measure_one(image).items():
            out[name][i] = value
    return out


def _as_batch(images) -> np.ndarray:
    """(N, H, W) float64 in [0, 1] from any of the shapes and dtypes ``measure`` takes."""
    if hasattr(images, "detach"):  # a torch tensor; vae.morphometry itself never imports torch
        images = images.detach().cpu().numpy()
    a = np.asarray(images)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"images must be (N, 1, H, W), (N, H, W) or (H, W); got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"images must be float in [0, 1] or uint8; got dtype {a.dtype}")
    return a.astype(np.float64)


def _measure_one(image: np.ndarray) -> dict[str, float]:
    """The six numbers of one (H, W) float image in [0, 1]; NaN for all when it is blank."""
    f = UPSAMPLING
    # Cubic spline upsampling on the pixel-area grid (grid_mode): output pixel j samples input
    # (j + 0.5) / f - 0.5, so a shift by k input pixels is a shift by exactly k * f output pixels.
    big = ndimage.zoom(image, f, order=3, mode="grid-constant", cval=0.0, grid_mode=True)
    mask = big >= THRESHOLD
    n = int(mask.sum())
    if n == 0:
        return {name: float("nan") for name in MEASUREMENTS}
    skeleton = skeletonize(mask)
    distance = ndimage.distance_transform_edt(mask)
    on_axis = distance[skeleton]

    ys, xs = np.nonzero(mask)  # rows (down), columns (right), in upsampled pixels
    yc, xc = ys.mean(), xs.mean()
    mu11 = np.sum((xs - xc) * (ys - yc))
    mu02 = np.sum((ys - yc) ** 2)
    shear = -mu11 / mu02 if mu02 > 0 else 0.0
    upright_x = xs - shear * (yc - ys)  # undo x -> x + s (yc - y)

    return {
        "area": n / f**2,
        "length": int(skeleton.sum()) / f,
        "thickness": 2.0 * on_axis.mean() / f if on_axis.size else float("nan"),
        "slant": float(np.arctan(shear)),
        "width": (upright_x.max() - upright_x.min() + 1.0) / f,
        "height": (ys.max() - ys.min() + 1.0) / f,
    }


def measurements_path(dataset: str = "mnist", split: str = "test") -> Path:
    """Where a split's stored measurements live: pretrained/morphometry/<dataset>-<split>.safetensors."""
    return MEASUREMENTS_DIR / f"{dataset}-{split}.safetensors"


def load_measurements(dataset: str = "mnist", split: str = "test", path: str | os.PathLike | None = None
                      ) -> dict[str, np.ndarray]:
    """A split's stored measurements: the keys of ``MEASUREMENTS``, each float32 (N,), row i = image i
    of the split (in ``vae.data.load_dataset`` order), units in ``UNITS``; NaN for a blank image.

    The file's metadata (dataset, split, n_images, paper, upsampling, threshold, wall time, cores)
    is read by ``load_measurements_metadata``. Raises MeasurementsNotFoundError when the file is
    missing (only the MNIST test split ships), and ValueError when it lacks a measurement.
    """
    from safetensors.numpy import load_file

    path = Path(path) if path is not None else measurements_path(dataset, split)
    if not path.is_file():
        raise MeasurementsNotFoundError(
            f"No stored Morpho-MNIST measurements for {dataset} {split} (looked for {path}). "
            f"Compute them once with `python -m vae.morphometry --dataset {dataset} --split {split}`; "
            "only the MNIST test split ships, and the measures are defined for digits.")
    arrays = load_file(str(path))
    missing = [name for name in MEASUREMENTS if name not in arrays]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; recompute it with "
                         f"`python -m vae.morphometry --dataset {dataset} --split {split}`.")
    return {name: arrays[name] for name in MEASUREMENTS}


def load_measurements_metadata(dataset: str = "mnist", split: str = "test",
                               path: str | os.PathLike | None = None) -> dict:
    """The JSON metadata stored with a split's measurements (see ``main``); raises as ``load_measurements``."""
    from safetensors import safe_open

    path = Path(path) if path is not None else measurements_path(dataset, split)
    if not path.is_file():
        load_measurements(dataset, split, path)  # raises the helpful error
    with safe_open(str(path), framework="numpy") as f:
        return json.loads(f.metadata()["morphometry"])


def _measure_chunk(images: np.ndarray) -> dict[str, np.ndarray]:
    return measure(images)


def measure_parallel(images, jobs: int = 2, chunk: int = 250) -> dict[str, np.ndarray]:
    """``measure`` over ``jobs`` worker processes, in chunks of ``chunk`` images; same result and order."""
    batch = _as_batch(images)
    if jobs <= 1:
        return measure(batch)
    import multiprocessing as mp

    parts = [batch[i:i + chunk] for i in range(0, len(batch), chunk)]
    with mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn").Pool(jobs) as pool:
        results = pool.map(_measure_chunk, parts)
    return {name: np.concatenate([r[name] for r in results]) for name in MEASUREMENTS}


def main(argv: list[str] | None = None) -> None:
    """CLI: measure a whole split once and write it (float32 per measurement, safetensors + JSON metadata)."""
    from safetensors.numpy import save_file

    from vae.data import load_dataset

    p = argparse.ArgumentParser(prog="python -m vae.morphometry", description=main.__doc__)
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion"))
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--out", default=None, help="output file (default: %(default)s -> "
                   "pretrained/morphometry/<dataset>-<split>.safetensors)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default: %(default)s)")
    p.add_argument("--root", default=None, help="data root (default: $VAE_DATA_DIR or ./data)")
    p.add_argument("--note", default="", help="stored with the wall time, e.g. what else shared the CPU")
    args = p.parse_args(argv)

    images, _ = load_dataset(args.dataset, args.split, root=args.root)
    images = images.numpy()
    start = time.perf_counter()
    values = measure_parallel(images, jobs=args.jobs)
    wall = time.perf_counter() - start

    out = Path(args.out) if args.out else measurements_path(args.dataset, args.split)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "dataset": args.dataset, "split": args.split, "n_images": len(images),
        "index": "row i is image i of vae.data.load_dataset(dataset, split)",
        "paper": PAPER, "upsampling": UPSAMPLING, "upsampling_interpolation": "cubic spline",
        "threshold": THRESHOLD, "units": UNITS,
        "wall_time_s": round(wall, 1), "jobs": args.jobs, "cores": os.cpu_count(), "note": args.note,
        "n_blank": int(np.isnan(values["area"]).sum()),
    }
    tmp = out.with_name(out.name + ".tmp")
    save_file({name: values[name].astype(np.float32) for name in MEASUREMENTS}, str(tmp),
              metadata={"morphometry": json.dumps(metadata)})
    os.chmod(tmp, 0o644)  # safetensors writes 0600; the app may run as another user (Docker)
    os.replace(tmp, out)
    medians = ", ".join(f"{name} {np.nanmedian(values[name]):.3g} {UNITS[name]}" for name in MEASUREMENTS)
    print(f"measured {len(images)} images in {wall:.1f} s with {args.jobs} workers -> {out}")
    print(f"medians: {medians}")


if __name__ == "__main__":
    main()
