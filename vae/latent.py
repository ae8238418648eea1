"""Latent-space tools: decoding batches of z, and the 2-D manifold grid of the VAE paper's figures."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import make_grid

GRID_SPACINGS = ("quantile", "linear")


@torch.no_grad()
def decode_images(model, z: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
    """Decoder means for a batch of latent vectors.

    z: float (B, latent_dim); y: a class index or int64 (B,), needed by a CVAE, ignored otherwise.
    Returns float (B, 1, 28, 28) in [0, 1], on z's device moved to the model's device.
    """
    device = next(model.parameters()).device
    z = z.to(device)
    if isinstance(y, int):
        y = torch.full((z.shape[0],), y, dtype=torch.long, device=device)
    elif y is not None:
        y = y.to(device)
    return torch.sigmoid(model.decode(z, y))


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
    prior's mean); y: the class for a CVAE. Row-major order for ``tile``: the top row has the largest
    value of dims[1], the left column the smallest of dims[0], as in a plot of the plane.
    Returns float (n * n, 1, 28, 28) in [0, 1]. Raises ValueError for equal or out-of-range dims.
    """
    d = model.latent_dim
    i, j = dims
    if i == j or not (0 <= i < d and 0 <= j < d):
        raise ValueError(f"dims must be two different indices below latent_dim={d}, got {dims}")
    coords = grid_coordinates(n, span, spacing)
    z = (torch.zeros(d) if base is None else base.detach().float().cpu()).repeat(n * n, 1)
    rows, cols = torch.meshgrid(coords.flip(0), coords, indexing="ij")
    z[:, i], z[:, j] = cols.reshape(-1), rows.reshape(-1)
    return decode_images(model, z, y)


def tile(images: torch.Tensor, nrow: int, padding: int = 0, scale: int = 1) -> np.ndarray:
    """Tile (B, 1, H, W) images in [0, 1] into one uint8 (H', W') array, ``nrow`` per row.

    ``scale`` enlarges by pixel repetition (nearest neighbour), so the result stays crisp.
    """
    grid = make_grid(images.detach().cpu(), nrow=nrow, padding=padding, pad_value=1.0)[0]
    if scale > 1:
        grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
