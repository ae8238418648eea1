"""Projections of (N, D) points to 2-D, t-SNE, UMAP and PCA, and the child-process task that runs one.

Where it sits: the maths behind ``vae.embeddings``' maps, apart so that a map's child process
(``vae.map_jobs`` runs ``project_task`` through ``vae.runner``) imports numpy and scikit-learn (and
umap-learn for UMAP) but not torch: about 3 s less CPU before every new map on a 2-core machine.
t-SNE: van der Maaten & Hinton, 2008 (JMLR 9), openTSNE's FFT-accelerated interpolation (Linderman
et al., 2019, Nature Methods 16; Poličar et al., openTSNE, JSS 2024) for new maps (the shipped models'
stored maps were made with scikit-learn's Barnes-Hut t-SNE and stay as they are); UMAP:
McInnes, Healy & Melville, 2018 (arXiv:1802.03426), umap-learn with its defaults; PCA: scikit-learn.
"""

from __future__ import annotations

import time
from importlib.metadata import version

import numpy as np

from .runner import TaskFailed

UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1}  # umap-learn's defaults, the app's UMAP settings


class EmbeddingError(ValueError):
    """An embedding file is malformed, or the settings asked for cannot be computed."""


def largest_perplexity(n: int) -> float:
    """The largest perplexity t-SNE can use on n points: (n - 1) / 3, since each point's affinities come
    from its 3 x perplexity nearest neighbours (openTSNE's rule: its TSNE lowers a larger one to this, and
    the map is then not the one its perplexity names). 3.33 for 11 points, 9.67 for 30, 100 for 301."""
    return (n - 1) / 3


def umap_neighbours(n: int) -> int:
    """UMAP's n_neighbors for a map of n points: umap-learn's default 15 (``UMAP_PARAMS``), lowered to
    n - 2 for fewer than 17 points (what ``umap`` needs); below 2, for fewer than 4 points, no UMAP."""
    return min(UMAP_PARAMS["n_neighbors"], n - 2)


def tsne(
    mu: np.ndarray, perplexity: float = 30.0, seed: int = 0, threads: int | None = 1
) -> tuple[np.ndarray, float]:
    """openTSNE's t-SNE of (N, D) points to 2-D: FFT-accelerated gradients, PCA initialisation, learning
    rate "auto", early exaggeration 12 for 250 iterations then 500 more (openTSNE's defaults, as
    scikit-learn's), exact perplexity-based affinities of the 3 x perplexity nearest neighbours.

    Chosen over scikit-learn's Barnes-Hut t-SNE (which made the shipped models' stored maps) by
    bench/tsne_compare.py on mnist-vae-20d's 10,000 test encodings, perplexity 30, seed 0, one thread
    each, on the 2-core machine: 62.8 s against 100.0 s (0.63x), with the same share of each point's 10
    nearest neighbours in z kept among its 10 nearest on the map (0.419 against 0.420).
    Returns (coords float32 (N, 2), the final KL divergence between the input and map affinities).
    Deterministic for a given seed, openTSNE version and machine. ``threads``: openTSNE's n_jobs (None:
    every core); one by default, since on a small shared machine more threads were no faster
    (bench/tsne_speed.py). Raises EmbeddingError when the perplexity is not above 0 and at most
    ``largest_perplexity(N)`` (a larger one openTSNE would lower: the map would not be the one its
    perplexity names).
    """
    import logging

    from openTSNE import TSNE

    x = np.asarray(mu, dtype=np.float64)
    if not 0 < perplexity <= largest_perplexity(len(x)):
        raise EmbeddingError(f"t-SNE of {len(x)} points needs a perplexity above 0 and at most (N - 1) / 3 = "
                             f"{largest_perplexity(len(x)):.3g}, got {perplexity:g}")
    logging.getLogger("openTSNE").setLevel(logging.ERROR)  # its note when 3 x (N - 1) / 3 rounds above N - 1
    t = TSNE(perplexity=perplexity, initialization="pca", negative_gradient_method="fft",
             n_jobs=threads or -1, random_state=seed)
    embedding = t.fit(x)
    return np.asarray(embedding, dtype=np.float32), float(embedding.kl_divergence)


def umap(mu: np.ndarray, seed: int = 0, n_neighbors: int = UMAP_PARAMS["n_neighbors"]) -> np.ndarray:
    """umap-learn's UMAP of (N, D) points to 2-D (min_dist ``UMAP_PARAMS``'s, spectral initialisation).

    Returns coords float32 (N, 2). Seeded, so single-threaded (umap-learn's rule) and deterministic on
    one machine. Its first call in a process imports umap-learn and compiles numba code: 11 to 19 s on
    a 2-core CPU, in every new process (numba's disk cache did not shorten it here): a new map in the
    app, computed in a child process of its own (``vae.map_jobs``), pays it every time. Raises EmbeddingError for fewer than n_neighbors + 2 points.
    """
    import warnings

    from umap import UMAP

    x = np.asarray(mu, dtype=np.float32)
    if len(x) < n_neighbors + 2:
        raise EmbeddingError(f"UMAP with {n_neighbors} neighbours needs at least {n_neighbors + 2} points, got {len(x)}")
    with warnings.catch_warnings():  # "n_jobs value 1 overridden to 1 by setting random_state": what we ask
        warnings.simplefilter("ignore", UserWarning)
        coords = UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=UMAP_PARAMS["min_dist"], random_state=seed,
                      n_jobs=1).fit_transform(x)
    return np.asarray(coords, dtype=np.float32)


def warm_up_umap() -> float:
    """Compile umap-learn's numba code with a tiny fit (bench/tsne_speed.py times it apart); seconds."""
    t0 = time.perf_counter()
    umap(np.random.default_rng(0).normal(size=(64, 4)), seed=0, n_neighbors=5)
    return time.perf_counter() - t0


def pca(mu: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """The projection of (N, D) points, D >= 2, on their two leading principal axes (scikit-learn's PCA).

    Returns (coords float32 (N, 2), the fraction of the variance each axis explains). Milliseconds.
    Raises EmbeddingError for fewer than two points or dimensions.
    """
    from sklearn.decomposition import PCA

    x = np.asarray(mu, dtype=np.float32)
    if x.ndim != 2 or min(x.shape) < 2:
        raise EmbeddingError(f"PCA to 2-D needs at least two points of at least two dimensions, got shape {x.shape}")
    p = PCA(n_components=2)
    coords = p.fit_transform(x)
    return coords.astype(np.float32), [float(v) for v in p.explained_variance_ratio_]


def project(mu: np.ndarray, method: str, perplexity: float = 30.0, seed: int = 0) -> tuple[np.ndarray, dict]:
    """(coords float32 (N, 2), info) of (N, D) points by ``method``: "tsne" (info: its final KL
    divergence), "umap" (its parameters, n_neighbors from ``umap_neighbours(N)``, and version) or "pca"
    (each axis's explained variance ratio). The perplexity is t-SNE's alone, the seed t-SNE's and UMAP's.
    Raises EmbeddingError for an unknown method or settings the method cannot use."""
    if method == "tsne":
        coords, kl = tsne(mu, perplexity, seed)
        return coords, {"kl_divergence": round(kl, 4), "library": f"openTSNE {version('openTSNE')}"}
    if method == "umap":
        k = umap_neighbours(len(mu))
        return umap(mu, seed, k), {**UMAP_PARAMS, "n_neighbors": k, "umap_version": version("umap-learn")}
    if method == "pca":
        coords, ratios = pca(mu)
        return coords, {"explained_variance_ratio": [round(r, 4) for r in ratios]}
    raise EmbeddingError(f"unknown method {method!r}; expected tsne, umap or pca")


def project_task(task: dict, arrays: dict, send, stop) -> dict:
    """A new map's work in its child process (``vae.runner.child_main`` calls it): ``project`` of
    arrays["mu"] (N, D) float32 with task's "method", "perplexity" and "seed". Returns {"coords": N
    pairs, "info": dict, "seconds": the projection's wall time}. Does not look at ``stop`` (neither
    library can be interrupted): a cancelled map's process is killed. Raises TaskFailed for settings
    the method cannot use."""
    t0 = time.perf_counter()
    try:
        coords, info = project(arrays["mu"], task["method"], float(task["perplexity"]), int(task["seed"]))
    except EmbeddingError as err:
        raise TaskFailed(str(err)) from None
    return {"coords": coords.astype(np.float32).tolist(), "info": info, "seconds": time.perf_counter() - t0}
