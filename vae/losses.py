"""The ELBO, its parts, and the importance-weighted bound, in nats per image.

    log p(x) >= ELBO = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))     (Kingma & Welling, 2014, Eq. 3)

The loss minimized is recon + beta * KL (Higgins et al., 2017, beta-VAE, Eq. 4), where recon is
-log p(x|z) summed over the 784 pixels for one z ~ q(z|x), and KL is the closed form for a diagonal
Gaussian against N(0, I) summed over latent dimensions; both are averaged over the batch.
With beta = 1 the loss is the negative ELBO.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


class ELBO(NamedTuple):
    """Batch means in nats per image: ``recon`` = -E_q[log p(x|z)], ``kl``, ``loss`` = recon + beta * kl."""

    recon: torch.Tensor
    kl: torch.Tensor
    loss: torch.Tensor


def reconstruction_nll(
    logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli", sigma: float = 0.1
) -> torch.Tensor:
    """-log p(x|z) per image, in nats, summed over pixels. Returns float (B,).

    logits: decoder output (B, 1, 28, 28); x: targets (B, 1, 28, 28) in [0, 1].
    - "bernoulli": binary cross-entropy on logits, p(x|z) = prod Bern(x; sigmoid(logits)). Grey
      levels in (0, 1) are used as soft targets, as pytorch/examples' VAE does.
    - "gaussian": N(x; sigmoid(logits), sigma^2) with fixed sigma, i.e. squared error / (2 sigma^2)
      plus the normalizer 0.5 * log(2 pi sigma^2) per pixel (a density: the value can be negative).
    Raises ValueError for another likelihood.
    """
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif likelihood == "gaussian":
        nll = 0.5 * (x - torch.sigmoid(logits)) ** 2 / sigma**2 + 0.5 * (LOG_2PI + 2 * math.log(sigma))
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {', '.join(LIKELIHOODS)}")
    return nll.flatten(1).sum(1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, per_dim: bool = False) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in nats.

    = -1/2 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))   (Kingma & Welling, 2014, Appendix B)

    mu, logvar: (B, D). Returns (B,) summed over dimensions, or (B, D) with ``per_dim=True``.
    """
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    return kl if per_dim else kl.sum(1)


def elbo(
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: str = "bernoulli",
    beta: float = 1.0,
    sigma: float = 0.1,
) -> ELBO:
    """The ELBO's parts as batch means in nats per image, from one forward pass.

    logits (B, 1, 28, 28) decoded from one z ~ q(z|x); x (B, 1, 28, 28) in [0, 1]; mu, logvar (B, D).
    ``loss`` = recon + beta * kl is what training minimizes; for beta = 1 it is -ELBO.
    """
    recon = reconstruction_nll(logits, x, likelihood, sigma).mean()
    kl = kl_divergence(mu, logvar).mean()
    return ELBO(recon, kl, recon + beta * kl)


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


@torch.no_grad()
def iwae_bound(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    k: int = 1000,
    likelihood: str = "bernoulli",
    sigma: float = 0.1,
    chunk: int = 20_000,
) -> torch.Tensor:
    """Importance-weighted estimate of -log p(x) per image, in nats. Returns float (B,).

    -log p(x) ~= -log (1/k) sum_i w_i,  w_i = p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)
    (Burda, Grosse & Salakhutdinov, 2016, "Importance Weighted Autoencoders", Eq. 8), computed with
    logsumexp. It is an upper bound on -log p(x) in expectation, equal to -ELBO in expectation for
    k = 1, and non-increasing in k. x: (B, 1, 28, 28) in [0, 1]; y: (B,) for a CVAE. ``chunk``
    bounds the number of images decoded at once (memory); it does not change the result.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    mu, logvar = model.encode(x, y)
    out = torch.empty(x.shape[0], device=x.device)
    per = max(1, chunk // k)  # images per chunk
    for s in range(0, x.shape[0], per):
        xb, mub, lvb = x[s : s + per], mu[s : s + per], logvar[s : s + per]
        b = xb.shape[0]
        z = mub + torch.exp(0.5 * lvb) * torch.randn(k, b, mub.shape[1], device=x.device)  # (k, b, D)
        yb = None if y is None else y[s : s + per].repeat(k)
        logits = model.decode(z.reshape(k * b, -1), yb)
        log_px_z = -reconstruction_nll(logits, xb.repeat(k, 1, 1, 1), likelihood, sigma).view(k, b)
        log_pz = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
        log_w = log_px_z + log_pz - _log_normal(z, mub, lvb)
        out[s : s + b] = math.log(k) - torch.logsumexp(log_w, dim=0)
    return out
