"""Placing new points on a stored t-SNE map: how far from where a map recomputed with them puts them.

The protocol (issue 24): a t-SNE map of N test images' means is computed with scikit-learn, as the
stored maps are; M of those images are then held out, a ``vae.embeddings.Placer`` is built from the
map of the other N - M (their places taken from the full map, which they fit almost as they would a
map without the M), and the M are placed on it with openTSNE's transform after 0, 25, 50, 100 and 250
iterations. The error of each placed point is its distance from its place on the full map, in % of
the map's extent (the larger side of its bounding box). 0 iterations is openTSNE's start, the median
of the 25 nearest map points in the latent space: the baseline the ratios are against. Also printed:
the distance of each point's 25 nearest map points' median from its place among them; the time per
placement call.

    .venv/bin/python bench/placement.py [--model mnist-vae-20d] [--n 5000] [--held-out 200]

It reads the stored map's means (``embedding.safetensors``), so it needs no dataset on disk.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vae.embeddings import Embedding, Placer, load_embedding, tsne  # noqa: E402

ITERATIONS = (0, 25, 50, 100, 250)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mnist-vae-20d", help="a folder under pretrained/ with a stored t-SNE map")
    p.add_argument("--n", type=int, default=5000, help="images in the recomputed map")
    p.add_argument("--held-out", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    stored = load_embedding(ROOT / "pretrained" / a.model)
    mu = stored.mu[: a.n]
    t0 = time.perf_counter()
    coords, _ = tsne(mu, stored.perplexity, a.seed)
    print(f"{a.model}: scikit-learn t-SNE of {a.n:,} test images' {mu.shape[1]}-d means in "
          f"{time.perf_counter() - t0:.1f} s (perplexity {stored.perplexity:g}, seed {a.seed})")
    held = np.random.default_rng(a.seed).choice(a.n, a.held_out, replace=False)
    keep = np.setdiff1d(np.arange(a.n), held)
    rest = Embedding(coords[keep], stored.indices[: a.n][keep], stored.labels[: a.n][keep], mu[keep], "tsne",
                     stored.perplexity, a.seed, 0.0)
    placer = Placer(rest)
    extent = float(np.ptp(coords, axis=0).max())
    base = None
    print(f"  {a.held_out} held-out images placed on the map of the other {len(keep):,}; error = distance from "
          f"their places on the full map, % of its extent {extent:.1f}")
    print(f"  {'iterations':>10s} {'median':>8s} {'p90':>8s} {'ratio':>7s} {'s / call':>9s}")
    for n_iter in ITERATIONS:
        t0 = time.perf_counter()
        placed = placer.place(mu[held].numpy(), n_iter=n_iter)
        seconds = time.perf_counter() - t0
        err = np.hypot(*(placed - coords[held]).T) / extent * 100
        base = np.median(err) if base is None else base
        print(f"  {n_iter:10d} {np.median(err):7.2f}% {np.percentile(err, 90):7.2f}% {np.median(err) / base:7.2f} "
              f"{seconds:9.2f}")


if __name__ == "__main__":
    main()
