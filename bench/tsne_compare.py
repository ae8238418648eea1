"""A new t-SNE map two ways, on the same encodings in one run: scikit-learn's Barnes-Hut t-SNE (what
``vae.projection.tsne`` uses) against openTSNE's FFT-accelerated t-SNE (Linderman et al., 2019), with
the same perplexity, seed, PCA initialisation and one thread each; and a quality figure for each map.

Quality: the share of each point's k nearest neighbours in z (Euclidean, the encoder's means) that are
also among its k nearest on the map, averaged over the points (k = 10 by default): 1 when the map keeps
every neighbourhood. Neighbours found with scikit-learn's NearestNeighbors (exact). Prints seconds, the
ratio openTSNE / scikit-learn, the two quality figures and the load average (the machine may be shared).

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/tsne_compare.py [--model mnist-vae-20d] [--n 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vae.checkpoint import load_checkpoint  # noqa: E402
from vae.data import load_test_images  # noqa: E402
from vae.latent import encode_images  # noqa: E402
from vae.projection import tsne  # noqa: E402


def knn_kept(z: np.ndarray, xy: np.ndarray, k: int = 10) -> float:
    """Mean over points of |kNN_z(i) ∩ kNN_map(i)| / k (each point's own index left out)."""
    from sklearn.neighbors import NearestNeighbors

    a = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z, return_distance=False)[:, 1:]
    b = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(a, b)]))


def open_tsne(z: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """openTSNE with the settings closest to ``vae.projection.tsne``'s: PCA initialisation, learning rate
    "auto", early exaggeration 12 for 250 iterations then 500 more (its defaults), FFT gradients, one thread."""
    from openTSNE import TSNE

    return np.asarray(TSNE(perplexity=perplexity, initialization="pca", negative_gradient_method="fft", n_jobs=1,
                           random_state=seed).fit(z.astype(np.float64)), dtype=np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mnist-vae-20d", help="a folder under pretrained/")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=10)
    a = p.parse_args()
    model, config, _ = load_checkpoint(ROOT / "pretrained" / a.model)
    images, labels, _, source = load_test_images(config["dataset"])
    z = encode_images(model, images[: a.n], labels[: a.n] if model.conditional else None)[0].numpy()
    print(f"{a.model}: {len(z):,} encodings ({z.shape[1]}-d) of {source}; perplexity {a.perplexity:g}, seed {a.seed}, "
          f"one thread; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    results = {}
    for name, run in (("scikit-learn Barnes-Hut", lambda: tsne(z, a.perplexity, a.seed)[0]),
                      ("openTSNE FFT", lambda: open_tsne(z, a.perplexity, a.seed))):
        t0 = time.perf_counter()
        xy = run()
        seconds = time.perf_counter() - t0
        results[name] = (seconds, knn_kept(z, xy, a.k))
        print(f"  {name:24s} {seconds:7.1f} s   {a.k}-NN kept {results[name][1]:.3f}", flush=True)
    (s_sk, q_sk), (s_ot, q_ot) = results.values()
    print(f"  openTSNE / scikit-learn: time {s_ot / s_sk:.2f}x, {a.k}-NN kept {q_ot - q_sk:+.3f}; "
          f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
