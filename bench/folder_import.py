"""Importing a folder of PNG files (vae.folders.load_folder): the first time (decoding) and the second
(the cache), against reading the same images from MNIST's IDX files through torchvision, in one run.

MNIST's first N training images are written as PNG files in class folders under a temporary folder
(or --folder), then imported twice with a fresh cache folder: the first import hashes, reads the
headers and decodes every file and writes the cache; the second hashes the files again and reads the
cache. The baseline is ``vae.data.load_dataset("mnist", "train")``: torchvision reading the IDX
files. The files were just written, so the first import reads them from the page cache: a cold disk
adds its read time. Prints seconds, images per second, the ratios, and the load average (the machine
may be shared).

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/folder_import.py [--n 60000] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vae.data import load_dataset  # noqa: E402
from vae.folders import load_folder  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=60_000, help="MNIST training images to write as PNG files")
    p.add_argument("--folder", default=None, help="where to write them (default: a temporary folder, removed after)")
    a = p.parse_args()
    work = Path(a.folder or tempfile.mkdtemp(prefix="folder-import-"))
    try:
        t = time.perf_counter()
        x, y = load_dataset("mnist", "train")
        baseline = time.perf_counter() - t
        src = work / "mnist-pngs"
        pixels = x[: a.n, 0].mul(255).round().to(torch.uint8).numpy()
        for i, (img, label) in enumerate(zip(pixels, y[: a.n].tolist())):
            (src / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(src / str(label) / f"{i:05d}.png")
        size = sum(f.stat().st_size for f in src.rglob("*.png"))
        cache = work / "cache"
        load1 = os.getloadavg()[0]
        t = time.perf_counter()
        first = load_folder(src, cache_dir=cache)
        t_first = time.perf_counter() - t
        t = time.perf_counter()
        second = load_folder(src, cache_dir=cache)
        t_second = time.perf_counter() - t
        assert second.card["cached"] and torch.equal(first.images, second.images)
        n = first.card["n_images"]
        print(f"{n:,} PNG files ({size / 1e6:.1f} MB), {os.cpu_count()} CPUs, load average {load1:.2f} before, "
              f"{os.getloadavg()[0]:.2f} after")
        print(f"baseline: torchvision reading MNIST's IDX files (60,000 images): {baseline:.2f} s")
        print(f"first import (decode, write the cache):  {t_first:6.2f} s, {n / t_first:8,.0f} images/s, "
              f"{t_first / baseline:6.1f} x the baseline")
        print(f"second import (hash, read the cache):    {t_second:6.2f} s, {n / t_second:8,.0f} images/s, "
              f"{t_second / baseline:6.1f} x the baseline; {t_first / t_second:.1f} x faster than the first")
    finally:
        if a.folder is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
