"""Embedding time: encoding N test images and projecting their means, t-SNE and UMAP against PCA, in one run.

What the Embeddings page does when a map is not stored with the model (other N, perplexity or seed,
or a model trained in the app): ``vae.embeddings.compute_embedding`` with the page's defaults
(perplexity 30, seed 0, one OpenMP thread; UMAP with umap-learn's defaults). PCA, the page's instant
method, is the baseline. UMAP's first call in a process compiles numba code (which the app's new
maps, each in a child process, pay every time): the warm-up (``warm_up_umap``) is timed first, then
UMAP runs warm.

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/tsne_speed.py [--model mnist-vae-20d] [--n 2000 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vae.checkpoint import load_checkpoint  # noqa: E402
from vae.data import load_test_images  # noqa: E402
from vae.embeddings import compute_embedding, warm_up_umap  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mnist-vae-20d", help="a folder under pretrained/")
    p.add_argument("--n", type=int, nargs="+", default=[2000, 5000])
    a = p.parse_args()
    model, config, _ = load_checkpoint(ROOT / "pretrained" / a.model)
    images, labels, indices, source = load_test_images(config["dataset"])
    print(f"{a.model} ({config['latent_dim']}-d means) on {source}; {os.cpu_count()} CPUs, torch {torch.__version__}")
    compute_embedding(model, images, labels, indices, 100, "pca")  # warm-up: imports scikit-learn, first encodes
    print(f"  UMAP's warm-up (import, numba compilation, a 64-point fit): {warm_up_umap():.1f} s")
    print(f"  {'N':>6s} {'PCA (s)':>8s} {'t-SNE (s)':>10s} {'ratio':>7s} {'UMAP (s)':>9s} {'ratio':>7s}")
    for n in a.n:
        pca = compute_embedding(model, images, labels, indices, n, "pca")
        tsne = compute_embedding(model, images, labels, indices, n, "tsne")
        umap = compute_embedding(model, images, labels, indices, n, "umap")
        print(f"  {n:6,d} {pca.seconds:8.2f} {tsne.seconds:10.2f} {tsne.seconds / pca.seconds:7.0f} "
              f"{umap.seconds:9.2f} {umap.seconds / pca.seconds:7.0f}   (t-SNE KL {tsne.info['kl_divergence']:.2f})")


if __name__ == "__main__":
    main()
