"""Latent-space tools: decoding and encoding batches, the 2-D manifold grid of the VAE paper's figures,
per-dimension KL and active units, traversals, and linear or spherical interpolation."""

from __future__ import annotations

import numpy as np
import torch

from .losses import kl_divergence
from .models import label_tensor

GRID_SPACINGS = ("quantile", "linear")


@torch.no_grad()
def decode_images(model, z: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
    """Decoder means for a batch of latent vectors.

    z: float (B, latent_dim); y: a class index or int64 (B,), needed by a CVAE, ignored otherwise.
    Returns float (B, C, H, W) in [0, 1], on z's device moved to the model's device.
    """
    device = next(model.parameters()).device
    z = z.to(device)
    return torch.sigmoid(model.decode(z, label_tensor(y, z.shape[0], device)))


def grid_coordinates(n: int, span: float = 2.0, spacing: str = "quantile") -> torch.Tensor:
    """n coordinates, increasing, from -span to +span standard deviations of the prior.

    "linear": evenly spaced values. "quantile": evenly spaced probabilities between Phi(-span) and
    Phi(span), mapped through the standard normal's inverse CDF Phi^-1, so each cell holds equal
    prior mass (Kingma & Welling, 2014, Fig. 4). Returns float32 (n,). Raises ValueError for n < 2,
    span <= 0 or an unknown spacing.
    """
    if n < 2 or span <= 0:
        raise ValueError(f"need n >= 2 and span > 0, got n={n}, span={span}")
    normal = torch.distributions.Normal(0.0, 1.0)
    if spacing == "linear":
        return torch.linspace(-span, span, n)
    if spacing == "quantile":
        lo = normal.cdf(torch.tensor(-span))
        return normal.icdf(torch.linspace(float(lo), float(1 - lo), n))
    raise ValueError(f"unknown spacing {spacing!r}; expected one of {', '.join(GRID_SPACINGS)}")


def manifold_grid(
    model,
    n: int = 15,
    span: float = 2.0,
    spacing: str = "quantile",
    dims: tuple[int, int] = (0, 1),
    base: torch.Tensor | None = None,
    y: int | None = None,
) -> torch.Tensor:
    """Decode an n x n grid spanning two latent dimensions; the others stay at ``base``.

    dims: (horizontal, vertical) dimension indices; base: float (latent_dim,), default zeros (the
    prior's mean): the plane's centre, so dims[0] runs from base[dims[0]] - span to base[dims[0]] + span;
    y: the class for a CVAE. Row-major order for ``tile``: the top row has the largest
    value of dims[1], the left column the smallest of dims[0], as in a plot of the plane.
    Returns float (n * n, C, H, W) in [0, 1]. Raises ValueError for equal or out-of-range dims.
    """
    d = model.latent_dim
    i, j = dims
    if i == j or not (0 <= i < d and 0 <= j < d):
        raise ValueError(f"dims must be two different indices below latent_dim={d}, got {dims}")
    coords = grid_coordinates(n, span, spacing)
    z = (torch.zeros(d) if base is None else base.detach().float().cpu()).repeat(n * n, 1)
    rows, cols = torch.meshgrid(coords.flip(0), coords, indexing="ij")
    z[:, i] += cols.reshape(-1)
    z[:, j] += rows.reshape(-1)
    return decode_images(model, z, y)


def plane_pixel(value, n: int, cell: float, span: float = 2.0, spacing: str = "quantile"):
    """Where coordinates (relative to the plane's centre) fall on a tiled ``manifold_grid`` axis of n
    cells of ``cell`` pixels: the pixel offset from the axis's start (left, or top for the vertical
    axis when given -value), inverting ``grid_coordinates`` (the normal CDF for "quantile").

    value: a float, or a float tensor of any shape (then a tensor of offsets, computed at once).
    With "linear" spacing a value outside the span gives an offset outside [0, n * cell]; with
    "quantile" it does not (the CDF is bounded): leave such values out before drawing them.
    """
    v = torch.as_tensor(value, dtype=torch.float64)
    if spacing == "quantile":
        lo = float(torch.special.ndtr(torch.tensor(-span, dtype=torch.float64)))
        frac = (torch.special.ndtr(v) - lo) / (1 - 2 * lo)
    else:
        frac = (v + span) / (2 * span)
    out = (frac * (n - 1) + 0.5) * cell
    return float(out) if out.ndim == 0 else out


def tile(images: torch.Tensor, nrow: int, padding: int = 0, scale: int = 1) -> np.ndarray:
    """Tile (B, C, H, W) images in [0, 1] into one uint8 array, ``nrow`` per row, white between them:
    (H', W') for grey images (C = 1), (H', W', 3) for colour ones (C = 3).

    ``scale`` enlarges by pixel repetition (nearest neighbour), so the result stays crisp.
    """
    from torchvision.utils import make_grid  # here, not with the module: torchvision takes 1.7 s to import

    grid = make_grid(images.detach().cpu(), nrow=nrow, padding=padding, pad_value=1.0)
    grid = grid[0] if images.shape[1] == 1 else grid.permute(1, 2, 0)
    pixels = (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if scale > 1:  # after the conversion, in NumPy: scale^2 times less work than on the float grid
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    return pixels


# ---------------------------------------------------------------- encodings and active units

# A latent dimension whose mean KL(q(z_j|x) || p(z_j)) over test images is below this many nats is
# inactive: the encoder leaves it at the prior for every x, so the decoder ignores it ("posterior
# collapse"). 0.01 mirrors the 10^-2 cut-off of Burda, Grosse & Salakhutdinov (2016, "Importance
# Weighted Autoencoders", Sec. 5.2) on their activity statistic Cov_x(E_q[z_j]); a collapsed dimension
# has mu ~ 0 and logvar ~ 0, so both statistics are near 0 for it and well above 0.01 otherwise.
ACTIVE_KL_THRESHOLD = 0.01


@torch.no_grad()
def encode_images(
    model, images: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's q(z|x) = N(mu, diag(exp(logvar))) for every image, in batches.

    images: float (N, C, H, W) in [0, 1]; y: int64 (N,), needed by a CVAE, ignored otherwise.
    Returns (mu, logvar), float32 (N, latent_dim) each, on the CPU; for a plain autoencoder (no
    q(z|x)) mu is its code z = f(x) and logvar is None. ``batch_size`` bounds memory and does not
    change the result. Raises ValueError for a CVAE without labels (from the model).
    """
    device = next(model.parameters()).device
    mus, logvars = [], []
    for s in range(0, images.shape[0], batch_size):
        yb = None if y is None else y[s : s + batch_size].to(device)
        mu, logvar = model.encode(images[s : s + batch_size].to(device), yb)
        mus.append(mu.float().cpu())
        if logvar is not None:
            logvars.append(logvar.float().cpu())
    d = model.latent_dim
    if not mus:
        return torch.empty(0, d), (torch.empty(0, d) if model.variational else None)
    return torch.cat(mus), (torch.cat(logvars) if model.variational else None)


def kl_per_dimension(
    model, images: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> torch.Tensor:
    """Mean KL(q(z_j|x) || p(z_j)) of each latent dimension j over ``images``, in nats; p(z_j) is
    N(0, 1), or N(mu_y,j, 1) for a class-prior model (then y is needed).

    Per image and dimension, -1/2 (1 + logvar_j - (mu_j - prior_mu_j)^2 - exp(logvar_j)) (Kingma & Welling, 2014,
    Appendix B), averaged over the N images. Returns float64 (latent_dim,), each entry >= 0; the
    entries sum to the mean total KL term of the ELBO over the same images. images: float
    (N, C, H, W) in [0, 1]; y: int64 (N,) for a CVAE. Raises ValueError when N = 0 or for a plain
    autoencoder, which has no KL term.
    """
    if images.shape[0] == 0:
        raise ValueError("need at least one image to average the KL over")
    if not model.variational:
        raise ValueError("a plain autoencoder has no q(z|x) and no KL term")
    mu, logvar = encode_images(model, images, y, batch_size)
    return kl_divergence(mu.double(), logvar.double(), per_dim=True, prior_mu=prior_means(model, y)).mean(0)


def prior_means(model, y: torch.Tensor | None) -> torch.Tensor | None:
    """The prior's mean for labels y (N,) as float64 (N, latent_dim) on the CPU, or None for N(0, I).
    Raises ValueError (from the model) for a class-prior model without labels."""
    if y is None:
        return model.prior_mean(None)
    with torch.no_grad():
        mean = model.prior_mean(y.to(next(model.parameters()).device))
    return None if mean is None else mean.double().cpu()


def rank_dimensions(
    kl_per_dim, threshold: float = ACTIVE_KL_THRESHOLD
) -> tuple[list[int], list[int]]:
    """Split latent dimensions into (active, inactive) index lists, each by decreasing mean KL.

    kl_per_dim: D mean KL values in nats (a tensor or a list, e.g. metrics.json's "kl_per_dim");
    a dimension is active when its KL is at least ``threshold`` (ACTIVE_KL_THRESHOLD by default).
    Ties keep index order.
    """
    kl = [float(v) for v in kl_per_dim]
    order = sorted(range(len(kl)), key=lambda j: (-kl[j], j))
    return [j for j in order if kl[j] >= threshold], [j for j in order if kl[j] < threshold]


# ---------------------------------------------------------------- traversals


def traversal_grid(
    model,
    z: torch.Tensor,
    dims,
    n: int = 11,
    span: float = 3.0,
    y: int | None = None,
    spacing: str = "linear",
) -> torch.Tensor:
    """Latent traversals around ``z``: row i varies dimension dims[i] across [-span, span], the
    other dimensions fixed at z (as in the beta-VAE paper's figures, Higgins et al., 2017).

    z: float (latent_dim,); dims: dimension indices, one row each, in the order given; n: images per
    row, at ``grid_coordinates(n, span, spacing)`` (increasing left to right); y: the class for a
    CVAE. Returns float (len(dims) * n, C, H, W) in [0, 1] (the model's ``image_shape``), row-major for
    ``tile(..., nrow=n)``; (0, C, H, W) when dims is empty. Raises ValueError for a dimension out of range, or bad n/span.
    """
    d = model.latent_dim
    dims = [int(j) for j in dims]
    if any(not 0 <= j < d for j in dims):
        raise ValueError(f"traversal dimensions must be below latent_dim={d}, got {dims}")
    values = grid_coordinates(n, span, spacing)
    if not dims:
        return torch.empty(0, *model.image_shape)
    zs = z.detach().float().cpu().reshape(1, 1, d).repeat(len(dims), n, 1)  # (rows, n, d)
    for row, j in enumerate(dims):
        zs[row, :, j] = values
    return decode_images(model, zs.reshape(-1, d), y).cpu()


# ---------------------------------------------------------------- interpolation

INTERPOLATIONS = ("linear", "slerp")


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation (1 - t) z0 + t z1. z0, z1: float (D,); t: float (T,). Returns (T, D).

    Rows with t = 0 and t = 1 are z0 and z1 exactly (the other term is multiplied by 0).
    """
    t = t.to(z0.dtype).reshape(-1, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Spherical linear interpolation: along the great circle from z0's direction to z1's at constant
    angular speed, with the norm going linearly from |z0| to |z1|.

        u(t) = sin((1 - t) Omega) / sin Omega * u0 + sin(t Omega) / sin Omega * u1,
        u0 = z0 / |z0|, u1 = z1 / |z1|, cos Omega = u0 . u1,
        slerp(z0, z1; t) = ((1 - t) |z0| + t |z1|) * u(t)

    u(t) is Shoemake's slerp (1985, "Animating Rotation with Quaternion Curves") of unit vectors.
    White (2016, "Sampling Generative Networks", Sec. 2.1) proposed it for latent spaces: under a
    Gaussian prior, high-dimensional samples lie near a sphere, and the straight line between two of
    them passes through the improbable region near the origin. White applies the formula to z0 and z1
    themselves, which is the same path when |z0| = |z1|; for unequal norms at nearly opposite
    directions its 1 / sin Omega weights carry that path far beyond both norms, hence the norm here
    is interpolated on its own. z0, z1: float (D,); t: float (T,), usually in [0, 1]. Returns (T, D);
    rows with t = 0 and t = 1 are z0 and z1 exactly. Where the direction is undefined or the arc
    ill-conditioned (a zero vector, or sin Omega < eps: parallel or opposite directions) it falls
    back to ``lerp``.
    """
    n0, n1 = z0.norm(), z1.norm()
    if n0 == 0 or n1 == 0:
        return lerp(z0, z1, t)
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.arccos(torch.clamp(torch.dot(u0, u1), -1.0, 1.0))
    so = torch.sin(omega)
    if so < eps:
        return lerp(z0, z1, t)
    t = t.to(z0.dtype).reshape(-1, 1)
    u = torch.sin((1 - t) * omega) / so * u0 + torch.sin(t * omega) / so * u1
    path = ((1 - t) * n0 + t * n1) * u
    # Exact arithmetic gives z0 and z1 at t = 0 and 1; make the ends the endpoints bit for bit.
    return torch.where(t == 0, z0, torch.where(t == 1, z1, path))


def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int = 10, method: str = "linear") -> torch.Tensor:
    """n latent points from z0 to z1 inclusive, at t = 0, 1/(n-1), ..., 1, by ``lerp`` or ``slerp``.

    z0, z1: float (D,). Returns float (n, D) with row 0 = z0 and row n-1 = z1 exactly. Raises
    ValueError for n < 2, shapes that differ, or a method not in INTERPOLATIONS.
    """
    if n < 2:
        raise ValueError(f"need n >= 2 points, got {n}")
    if z0.shape != z1.shape or z0.dim() != 1:
        raise ValueError(f"endpoints must be two vectors of one length, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {method!r}; expected one of {', '.join(INTERPOLATIONS)}")
    t = torch.linspace(0, 1, n, dtype=z0.dtype)
    return (lerp if method == "linear" else slerp)(z0, z1, t)
