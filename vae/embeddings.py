"""Maps of the latent space: the encoder's means mu(x) of test images, projected to 2-D by t-SNE, UMAP or PCA.

    python -m vae.embeddings pretrained/mnist-vae-20d [--method tsne|umap] [--n N] [--perplexity 30] [--seed 0]

stores the map the app opens with in the model's folder, ``embedding.safetensors`` for t-SNE and
``embedding-umap.safetensors`` for UMAP: float32 coordinates, the test-split indices of the images
used, their labels and means, and metadata (method, perplexity, seed, N, scikit-learn version,
seconds, the weights' SHA-256), written atomically. t-SNE: van der Maaten & Hinton, 2008,
"Visualizing Data using t-SNE" (JMLR 9), new maps through openTSNE (``vae.projection.tsne``; the stored
maps of the shipped models through scikit-learn's Barnes-Hut implementation); UMAP:
McInnes, Healy & Melville, 2018, "UMAP: Uniform Manifold Approximation and Projection for Dimension
Reduction" (arXiv:1802.03426), through umap-learn with its defaults (15 neighbours, min_dist 0.1);
PCA through scikit-learn.

Which N images: the test images of the bundled offline sample (``pretrained/samples``) come first,
in test-split order, then the other test images in order. The default N is every test image at hand
(10,000 with the dataset on disk), and the first 2,000 of a stored map's images are the sample's,
so a map of the whole test split still serves the app offline: the page shows the sample's part of
it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .checkpoint import CheckpointError, atomic_write, load_checkpoint, weights_sha256  # noqa: F401 (re-exported)
from .data import DatasetNotFoundError, is_builtin, load_test_images, sample_file
from .latent import encode_images
from .projection import (UMAP_PARAMS, EmbeddingError, largest_perplexity, pca, project, tsne, umap,  # noqa: F401
                         umap_neighbours, warm_up_umap)  # re-exported

EMBEDDING = "embedding.safetensors"  # the stored t-SNE map; embedding_file(method) for the others
METHODS = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}
STORED = ("tsne", "umap")  # the methods whose maps python -m vae.embeddings stores
UMAP_SETTINGS = f"{UMAP_PARAMS['n_neighbors']} neighbours, min_dist {UMAP_PARAMS['min_dist']:g}"  # in words


def embedding_file(method: str) -> str:
    """The file name of a model folder's stored map for ``method``: embedding.safetensors for t-SNE,
    embedding-METHOD.safetensors for the others."""
    return EMBEDDING if method == "tsne" else f"embedding-{method}.safetensors"


@dataclass
class Embedding:
    """A 2-D map of N encodings.

    coords float32 (N, 2); indices int64 (N,) into the full test split; labels int64 (N,); mu float32
    (N, latent_dim), the encoder's means; method "tsne", "umap" or "pca"; perplexity (t-SNE's, kept for
    the others too) and seed (t-SNE's and UMAP's); seconds: wall time of encoding plus projection; info: extra numbers (t-SNE's final
    KL divergence and, for a new map, "library": its openTSNE version; PCA's explained variance ratios,
    UMAP's settings and umap-learn's version); sklearn_version: the scikit-learn that computed a stored
    t-SNE map or a PCA map ("" for UMAP maps and new t-SNE maps, made by openTSNE; UMAP files written
    before this field was emptied carry one that did not compute them); weights_sha256 of the model it
    came from, if known.
    """

    coords: np.ndarray
    indices: torch.Tensor
    labels: torch.Tensor
    mu: torch.Tensor
    method: str
    perplexity: float
    seed: int
    seconds: float
    sklearn_version: str = ""  # the scikit-learn that computed a stored t-SNE or a PCA map; "" otherwise (see info)
    weights_sha256: str = ""
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.indices)


def image_order(indices: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
    """The order in which test images join a map as N grows; the first N positions are the N images.

    indices int64 (M,): test-split indices of the images at hand; first int64 (K,): test indices to
    put first (the bundled sample's), or None. Returns int64 (M,) positions into ``indices``: those in
    ``first`` in test-split order, then the rest in test-split order.
    """
    later = torch.ones_like(indices, dtype=torch.bool) if first is None else ~torch.isin(indices, first)
    key = indices + later.to(torch.int64) * (int(indices.max()) + 1 if len(indices) else 0)
    return torch.argsort(key, stable=True)


# openTSNE's transform runs 250 iterations by default, each a gradient step against every map point.
# bench/placement.py holds 200 images out of a 5,000-point map of mnist-vae-20d's means, places them on
# the map of the other 4,800 and measures their distance from their places on the full map (% of its
# extent; 2-core CPU, other work beside it): median / 90th percentile 1.25 / 6.89% at 0 iterations (the
# start: the median of the 25 nearest map points), 0.36 / 4.15% at 50, 0.31 / 2.96% at 100 and
# 0.31 / 2.01% at 250, taking 0.04, 0.33, 0.69 and 2.39 s for the 200. 100 keep the median's gain.
PLACE_ITERATIONS = 100


class Placer:
    """Places new points on an existing map without recomputing it; returns them in the map's own frame.

    t-SNE maps: openTSNE's ``TSNEEmbedding.transform`` (Policar, Strazar & Zupan, 2024, "openTSNE: A
    Modular Python Library for t-SNE Dimensionality Reduction and Embedding", JSS 109(3)): the map's
    points stay fixed; each new point starts at the median of its nearest map points in the latent
    space and moves under the t-SNE gradient against them alone, for ``PLACE_ITERATIONS`` steps. The
    map's affinities (perplexity as the map's, exact nearest neighbours) are built once, here: 1 to 2 s
    for 10,000 points on a 2-core CPU. ``transform`` centres the reference map in place, on the midpoint
    of its bounding box, and answers in that centred frame; so the map is handed over already centred,
    put back before every call (a lock keeps sessions sharing one cached Placer from interleaving), and
    the answer shifted back by the centre: the points come out in ``emb.coords``' frame.
    PCA maps: the same principal axes, refitted on the map's means (deterministic, so they are the
    map's own axes). Raises EmbeddingError for a UMAP map (no model kept to place with).
    """

    def __init__(self, emb: Embedding, threads: int = 1):
        if emb.method not in ("tsne", "pca"):
            raise EmbeddingError(f"new points are placed on t-SNE and PCA maps, not on a {METHODS[emb.method]} map")
        self.method = emb.method
        mu = emb.mu.double().numpy()
        if emb.method == "tsne":
            from openTSNE import TSNEEmbedding, affinity
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=threads):
                aff = affinity.PerplexityBasedNN(mu, perplexity=min(emb.perplexity, (len(mu) - 1) / 3),
                                                 method="exact", random_state=emb.seed, n_jobs=threads, verbose=False)
            coords = emb.coords.astype(np.float64)
            self._centre = (coords.max(axis=0) + coords.min(axis=0)) / 2  # what transform would subtract
            self._centred = coords - self._centre
            self._map = TSNEEmbedding(self._centred.copy(), aff, random_state=emb.seed, n_jobs=threads)
            self._lock = threading.Lock()
        else:
            from sklearn.decomposition import PCA

            self._map = PCA(n_components=2).fit(mu.astype(np.float32))

    def place(self, new_mu: torch.Tensor | np.ndarray, n_iter: int = PLACE_ITERATIONS) -> np.ndarray:
        """Map positions of new means float (M, latent_dim) (or one (latent_dim,)): float32 (M, 2), in the
        frame of the map's ``coords``. n_iter: t-SNE gradient steps (openTSNE's transform runs no early
        exaggeration by default), ignored for PCA."""
        x = np.asarray(new_mu, dtype=np.float64)
        x = x.reshape(1, -1) if x.ndim == 1 else x
        if self.method == "tsne":
            with self._lock:
                self._map[:] = self._centred  # undo what an earlier transform did to the shared map
                placed = np.asarray(self._map.transform(x, n_iter=n_iter))
            return (placed + self._centre).astype(np.float32)
        return self._map.transform(x.astype(np.float32)).astype(np.float32)


def compute_embedding(
    model, images, labels, indices, n: int, method: str = "tsne", perplexity: float = 30.0, seed: int = 0,
    first: torch.Tensor | None = None, mu: torch.Tensor | None = None,
) -> Embedding:
    """Encode the first n images of ``image_order(indices, first)`` and project their means.

    images float (M, 1, 28, 28) in [0, 1], labels int64 (M,), indices int64 (M,) into the test split.
    mu: float (M, latent_dim), the images' encodings if already computed (then the model is not
    called). method: "tsne", "umap" or "pca" (the perplexity is t-SNE's alone). Raises EmbeddingError for
    an unknown method, n outside 2..M, or a perplexity t-SNE cannot use.
    """
    if method not in METHODS:
        raise EmbeddingError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not 2 <= n <= len(indices):
        raise EmbeddingError(f"N must be between 2 and the {len(indices):,} test images at hand, got {n:,}")
    t0 = time.perf_counter()
    pos = image_order(indices, first)[:n]
    mu = encode_images(model, images[pos], labels[pos])[0] if mu is None else mu[pos]
    coords, info = project(mu, method, perplexity, seed)
    return Embedding(coords, indices[pos].clone(), labels[pos].clone(), mu, method, float(perplexity), int(seed),
                     round(time.perf_counter() - t0, 2), version("scikit-learn") if method == "pca" else "", info=info)


def embedding_csv(emb: Embedding, positions: list[int] | None = None, extra: dict | None = None) -> bytes:
    """The map (or the given positions of it, in that order) as UTF-8 CSV bytes: test index, label, x,
    y, method, perplexity (t-SNE only) and seed (t-SNE and UMAP), and any per-image columns in ``extra`` (name -> (N,)
    values, e.g. each image's -ELBO). One row per point, a header first."""
    buf = io.StringIO()
    out = csv.writer(buf)
    extra = extra or {}
    out.writerow(["test_index", "label", "x", "y", "method", "perplexity", "seed", *extra])
    for p in range(emb.n) if positions is None else positions:
        out.writerow([int(emb.indices[p]), int(emb.labels[p]), f"{emb.coords[p, 0]:.5g}", f"{emb.coords[p, 1]:.5g}",
                      emb.method, f"{emb.perplexity:g}" if emb.method == "tsne" else "", emb.seed if emb.method != "pca" else "",
                      *(f"{float(v[p]):.4g}" for v in extra.values())])
    return buf.getvalue().encode()


def save_embedding(emb: Embedding, folder: str | os.PathLike) -> Path:
    """Write ``emb`` to ``folder/embedding_file(emb.method)`` atomically; returns the path."""
    path = Path(folder) / embedding_file(emb.method)
    tensors = {"coords": torch.from_numpy(np.ascontiguousarray(emb.coords, dtype=np.float32)),
               "indices": emb.indices.to(torch.int64).contiguous(), "labels": emb.labels.to(torch.int64).contiguous(),
               "mu": emb.mu.to(torch.float32).contiguous()}
    meta = {"method": emb.method, "perplexity": repr(emb.perplexity), "seed": str(emb.seed), "n": str(emb.n),
            "sklearn": emb.sklearn_version, "seconds": repr(emb.seconds), "weights_sha256": emb.weights_sha256,
            "info": json.dumps(emb.info)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return path


def load_embedding(folder: str | os.PathLike, method: str = "tsne") -> Embedding | None:
    """Read a folder's stored map for ``method`` (``embedding_file``); None when there is none.

    Raises EmbeddingError, naming the file, when it is truncated, not safetensors, or its tensors or
    metadata do not fit together.
    """
    from safetensors import safe_open

    path = Path(folder) / embedding_file(method)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        t = load_file(str(path))
        n = int(meta["n"])
        emb = Embedding(t["coords"].numpy(), t["indices"], t["labels"], t["mu"], meta["method"],
                        float(meta["perplexity"]), int(meta["seed"]), float(meta["seconds"]),
                        "" if meta["method"] == "umap" else meta["sklearn"],
                        meta.get("weights_sha256", ""), json.loads(meta.get("info", "{}")))
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise EmbeddingError(f"{path} is not a readable embedding file ({err!r})") from err
    if emb.coords.shape != (n, 2) or emb.indices.shape != (n,) or emb.labels.shape != (n,) or len(emb.mu) != n:
        raise EmbeddingError(f"{path}: its tensors do not all hold N = {n} rows")
    if emb.method != method:
        raise EmbeddingError(f"{path}: holds a {emb.method!r} map, not {method!r}")
    return emb


def match_positions(emb: Embedding, indices: torch.Tensor) -> torch.Tensor | None:
    """Positions into ``indices`` (int64 (M,), test indices at hand) of the map's N images, in its order.

    None when any of the map's images is not at hand (say, offline with only the bundled sample).
    """
    where = {int(i): p for p, i in enumerate(indices.tolist())}
    try:
        return torch.tensor([where[i] for i in emb.indices.tolist()], dtype=torch.int64)
    except KeyError:
        return None


def restrict(emb: Embedding, indices: torch.Tensor) -> Embedding | None:
    """The part of a map whose images are at hand: its points whose test index is in ``indices``
    (int64 (M,)), in the map's order, at their places on the whole map (nothing is recomputed). The
    map itself when all are at hand; None when fewer than two are. The part's ``info["of"]`` is the
    whole map's N. Offline, a stored map of the whole test split shows the bundled sample's part."""
    keep = torch.isin(emb.indices, indices)
    if bool(keep.all()):
        return emb
    if int(keep.sum()) < 2:
        return None
    pos = keep.nonzero().flatten()
    return Embedding(emb.coords[pos.numpy()], emb.indices[pos], emb.labels[pos], emb.mu[pos], emb.method,
                     emb.perplexity, emb.seed, emb.seconds, emb.sklearn_version, emb.weights_sha256,
                     {**emb.info, "of": emb.n})


DEFAULT_N = 2000  # the images of a map no folder stores (openTSNE on a busy 2-core CPU: 22 s, 63 s for 10,000)


def default_n(stored: Embedding | None, at_hand: int) -> int:
    """The N a map opens with: every image of the model's stored map that is at hand (``stored``, its
    part from ``restrict``), else ``DEFAULT_N`` (or all ``at_hand`` images when there are fewer)."""
    return stored.n if stored is not None else min(DEFAULT_N, at_hand)


PERPLEXITY = (5, 30, 100)  # t-SNE's perplexity in the app: lowest, default (scikit-learn's and openTSNE's), highest


def perplexity_bounds(n: int) -> tuple[float, float, float]:
    """(lowest, default, highest) t-SNE perplexity for a map of n points: ``PERPLEXITY``, each lowered to
    the largest whole number at most ``largest_perplexity(n)`` where n is too small for it (below 301
    points; 29 points: (5, 9, 9), 11: (3, 3, 3)), and to (n - 1) / 3 itself below 4 points (1/3 for 2)."""
    top = largest_perplexity(n)
    top = float(int(top)) if top >= 1 else top
    lo, default, hi = (min(float(v), top) for v in PERPLEXITY)
    return lo, default, hi


@dataclass(frozen=True)
class MapChoice:
    """Which map to show for a method's settings. ``stored``: the stored map, or its part whose images are
    at hand, when it was made with these settings and holds N of them; else None, and a map must be
    computed, with ``meanwhile`` (the method's stored map at hand, if any) to show until it is."""

    stored: Embedding | None
    meanwhile: Embedding | None


def choose_map(stored: Embedding | None, indices: torch.Tensor, method: str, n: int, perplexity: float,
               seed: int) -> MapChoice:
    """Resolve settings to a stored, restricted or computed map. stored: the model folder's map for
    ``method`` (``load_embedding``; None when there is none, or it is from other weights); indices
    int64 (M,): the test indices at hand. The stored map is used when its seed, its perplexity (t-SNE
    only: UMAP and PCA have none) and the N of its images at hand (``restrict``) match. PCA maps are
    never stored (milliseconds to compute): ``stored`` is None for them."""
    part = None if stored is None else restrict(stored, indices)
    if (part is not None and part.method == method and part.seed == seed and part.n == n
            and (method != "tsne" or part.perplexity == perplexity)):
        return MapChoice(part, None)
    return MapChoice(None, part if part is not None and part.method == method else None)


def positions_of(emb: Embedding, test_indices) -> list[int]:
    """Map positions of the test images ``test_indices`` (ints, in their order, repeats dropped); those
    the map does not hold are left out."""
    where = {int(i): p for p, i in enumerate(emb.indices.tolist())}
    return list(dict.fromkeys(where[int(i)] for i in test_indices if int(i) in where))


def points_in_rect(xy, rect) -> list[int]:
    """Positions (in order) of the points of ``xy`` (N, 2) inside ``rect`` = (x0, x1, y0, y1), edges
    included; the corners may come in either order."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    (x0, x1), (y0, y1) = sorted(map(float, rect[:2])), sorted(map(float, rect[2:]))
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    return np.flatnonzero(inside).tolist()


def sample_path(folder: str | os.PathLike, dataset: str) -> Path | None:
    """Where the bundled offline sample of ``dataset`` lies for a model folder under pretrained/; None
    for a folder or zip of images (``vae.data.is_builtin``), which has no sample."""
    return sample_file(Path(folder).resolve().parent / "samples", dataset) if is_builtin(dataset) else None


def sample_indices(path: str | os.PathLike | None) -> torch.Tensor | None:
    """The test indices int64 (K,) held by a bundled sample file, or None when there is no such file."""
    return load_file(str(path))["indices"] if path is not None and Path(path).is_file() else None


def precompute(
    folder: str | os.PathLike, n: int | None = None, perplexity: float = 30.0, seed: int = 0, data_root=None,
    device: str | torch.device = "cpu", method: str = "tsne",
) -> tuple[Embedding, str]:
    """Compute a model's t-SNE (or UMAP) map and store it in its folder; returns (the map, where the
    images came from).

    Reads the test split from the data root (else the bundled sample, as the app does). The images
    are the first n (None: all) of ``image_order`` with the bundled sample first. Raises CheckpointError for a
    bad folder, DatasetNotFoundError without images, EmbeddingError for impossible settings.
    """
    model, config, _ = load_checkpoint(folder, device)
    sample = sample_path(folder, config["dataset"])
    images, labels, indices, source = load_test_images(config["dataset"], data_root, sample, config.get("image_shape"))
    if method not in STORED:
        raise EmbeddingError(f"only {' and '.join(METHODS[m] for m in STORED)} maps are stored, not {method!r}")
    emb = compute_embedding(model, images, labels, indices, len(indices) if n is None else n, method, perplexity, seed, sample_indices(sample))
    emb.weights_sha256 = weights_sha256(folder)
    save_embedding(emb, folder)
    return emb, source


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vae.embeddings", description="Precompute a model's t-SNE "
                                f"(or UMAP) map of test-image encodings into FOLDER/{EMBEDDING} (or "
                                f"{embedding_file('umap')}).")
    p.add_argument("folder")
    p.add_argument("--method", choices=STORED, default="tsne")
    p.add_argument("--n", type=int, default=None, help="number of test images (default: all at hand)")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None, help="default: $VAE_DATA_DIR, else ./data")
    a = p.parse_args(argv)
    try:
        emb, source = precompute(a.folder, a.n, a.perplexity, a.seed, a.data_root, method=a.method)
    except (CheckpointError, DatasetNotFoundError, EmbeddingError) as err:
        p.exit(1, f"{p.prog}: {err}\n")
    how = (f"perplexity {emb.perplexity:g}, seed {emb.seed}, KL {emb.info['kl_divergence']:.3f}" if a.method == "tsne"
           else f"seed {emb.seed}, umap-learn {emb.info['umap_version']}")
    print(f"{Path(a.folder) / embedding_file(a.method)}: {METHODS[a.method]} of {emb.n:,} encodings from {source}, "
          f"{how}, {emb.seconds} s" + (f" (scikit-learn {emb.sklearn_version})" if emb.sklearn_version else ""))


if __name__ == "__main__":
    main()
