"""The ELBO, its parts, and the importance-weighted bound, in nats per image.

    log p(x) >= ELBO = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))     (Kingma & Welling, 2014, Eq. 3)

The loss minimized is recon + beta * KL (Higgins et al., 2017, beta-VAE, Eq. 4), where recon is
-log p(x|z) summed over the C * H * W pixel values (784 for MNIST; a colour image's three channels
each count) for one z ~ q(z|x), and KL is the closed form for a diagonal Gaussian against N(0, I)
summed over latent dimensions; both are averaged over the batch. With beta = 1 the loss is the
negative ELBO.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOODS = ("bernoulli", "gaussian")
OBJECTIVES = ("elbo", "iwae")
LOG_2PI = math.log(2 * math.pi)


class LossParts(NamedTuple):
    """Batch means in nats per image: ``recon`` = -E_q[log p(x|z)], ``kl`` = KL(q(z|x) || p(z)), and
    ``loss``, what training minimizes: recon + beta * kl for the ELBO, -L_k for the IWAE objective."""

    recon: torch.Tensor
    kl: torch.Tensor
    loss: torch.Tensor


def reconstruction_nll(
    logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli", sigma: float = 0.1
) -> torch.Tensor:
    """-log p(x|z) per image, in nats, summed over pixels and channels. Returns float (B,).

    logits: decoder output (B, C, H, W); x: targets (B, C, H, W) in [0, 1]; C = 1 (grey) or 3 (RGB).
    - "bernoulli": binary cross-entropy on logits, p(x|z) = prod Bern(x; sigmoid(logits)), one
      independent Bernoulli per pixel and channel. Grey (or colour) levels in (0, 1) are used as soft
      targets, as pytorch/examples' VAE does.
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


def kl_divergence(
    mu: torch.Tensor, logvar: torch.Tensor, per_dim: bool = False, prior_mu: torch.Tensor | None = None
) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(prior_mu, I)) in nats; prior_mu None means N(0, I).

    = -1/2 * sum_j (1 + logvar_j - (mu_j - prior_mu_j)^2 - exp(logvar_j))   (Kingma & Welling, 2014,
    Appendix B, for prior_mu = 0; a unit-variance prior shifted by prior_mu shifts mu alike)

    mu, logvar, prior_mu: (B, D). Returns (B,) summed over dimensions, or (B, D) with ``per_dim=True``.
    """
    if prior_mu is not None:
        mu = mu - prior_mu
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
    prior_mu: torch.Tensor | None = None,
) -> LossParts:
    """The ELBO's parts as batch means in nats per image, from one forward pass.

    logits (B, C, H, W) decoded from one z ~ q(z|x); x (B, C, H, W) in [0, 1]; mu, logvar (B, D);
    prior_mu (B, D): the prior's mean for each image (a class-prior model), None for N(0, I).
    ``loss`` = recon + beta * kl is what training minimizes; for beta = 1 it is -ELBO.
    """
    recon = reconstruction_nll(logits, x, likelihood, sigma).mean()
    kl = kl_divergence(mu, logvar, prior_mu=prior_mu).mean()
    return LossParts(recon, kl, recon + beta * kl)


def autoencoder_loss(logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli",
                     sigma: float = 0.1) -> LossParts:
    """A plain autoencoder's loss: the reconstruction term alone, -log p(x|z) at its point code z = f(x),
    nats per image as a batch mean; ``kl`` is 0 (there is no q(z|x) and no prior). Shapes as ``elbo``."""
    recon = reconstruction_nll(logits, x, likelihood, sigma).mean()
    return LossParts(recon, torch.zeros_like(recon), recon)


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, k: int | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps, sigma = exp(logvar / 2), eps ~ N(0, I) (Kingma & Welling, 2014, Eq. 10).

    mu, logvar: (B, D). Returns (B, D), or (k, B, D) with k independent draws per row when k is given
    (k = 1 draws the same numbers as None). generator: a ``torch.Generator`` on mu's device to draw eps
    from, leaving the global random state alone; None draws from the global one. The one definition
    of the trick; the models, the IWAE bound and ``vae.evaluate.score`` call it.
    """
    shape = mu.shape if k is None else (k, *mu.shape)
    # generator=None spelled out trips torch.compile's symbolic shapes, so it is passed only when given.
    extra = {} if generator is None else {"generator": generator}
    return mu + torch.exp(0.5 * logvar) * torch.randn(shape, dtype=mu.dtype, device=mu.device, **extra)


def _iwae_terms(model, x, y, k, likelihood, sigma, mu=None, logvar=None, generator=None):
    """(log w (k, B), log p(x|z_i) (k, B), mu, logvar) for k reparameterized draws z_i ~ q(z|x)."""
    if mu is None or logvar is None:
        mu, logvar = model.encode(x, y)
    # The log-densities in float32 even under bfloat16 autocast: the weights are exponentials of them.
    mu, logvar, b = mu.float(), logvar.float(), x.shape[0]
    z = reparameterize(mu, logvar, k, generator)  # (k, B, D)
    # Sample-major: decoder row i * B + b is draw i of image b, so labels and targets repeat whole.
    logits = model.decode(z.reshape(k * b, -1), None if y is None else y.repeat(k)).float()
    log_px_z = -reconstruction_nll(logits, x.repeat(k, 1, 1, 1), likelihood, sigma).view(k, b)
    prior_mu = model.prior_mean(y)
    centred = z if prior_mu is None else z - prior_mu.float()  # p(z[|y]) = N(prior_mu, I)
    log_pz = -0.5 * (LOG_2PI + centred.pow(2)).sum(-1)
    return log_px_z + log_pz - _log_normal(z, mu, logvar), log_px_z, mu, logvar


def iwae_log_weights(
    model, x: torch.Tensor, y: torch.Tensor | None, k: int, likelihood: str = "bernoulli", sigma: float = 0.1,
    mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x), i = 1..k. Returns float (k, B).

    Differentiable (reparameterized draws). x: (B, C, H, W) in [0, 1]; y: int64 (B,) for a CVAE,
    else None; mu, logvar (B, D): the encoder's output if already computed; generator as in
    ``reparameterize``.
    """
    return _iwae_terms(model, x, y, k, likelihood, sigma, mu, logvar, generator)[0]


def iwae_loss(
    model, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 5,
    likelihood: str = "bernoulli", sigma: float = 0.1,
) -> LossParts:
    """The IWAE training objective: ``loss`` = -L_k as a differentiable batch mean, nats per image.

    L_k = E[log (1/k) sum_i w_i] (Burda, Grosse & Salakhutdinov, 2016, Eq. 8) is a lower bound on
    log p(x) that tightens as k grows; L_1 is the ELBO, so -L_k <= -ELBO in expectation. ``recon``
    is -log p(x|z_i) averaged over the k draws and ``kl`` the closed-form KL, both batch means, for
    display beside an ELBO run. Shapes as in ``iwae_log_weights``. Raises ValueError for k < 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    log_w, log_px_z, mu, logvar = _iwae_terms(model, x, y, k, likelihood, sigma)
    loss = (math.log(k) - torch.logsumexp(log_w, dim=0)).mean()
    prior_mu = model.prior_mean(y)
    return LossParts(-log_px_z.mean(), kl_divergence(mu, logvar, prior_mu=prior_mu).mean(), loss)


@torch.no_grad()
def iwae_nll(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    k: int = 1000,
    likelihood: str = "bernoulli",
    sigma: float = 0.1,
    chunk: int = 20_000,
    mu: torch.Tensor | None = None,
    logvar: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-weighted estimate of -log p(x) per image, in nats. Returns float (B,).

    -log p(x) ~= -log (1/k) sum_i w_i,  w_i = p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)
    (Burda, Grosse & Salakhutdinov, 2016, Eq. 8), computed with logsumexp. It is an upper bound on
    -log p(x) in expectation, equal to -ELBO in expectation for k = 1, and non-increasing in k.
    x: (B, C, H, W) in [0, 1]; y: (B,) for a CVAE (then it estimates -log p(x|y)). ``chunk``
    bounds the number of images decoded at once (memory: about chunk * C * H * W * 4 bytes per tensor);
    it changes which random draws go where, not the estimator. mu, logvar (B, D): the encoder's output
    if already computed; generator as in ``reparameterize``. Raises ValueError for k < 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if mu is None or logvar is None:
        mu, logvar = model.encode(x, y)
    out = torch.empty(x.shape[0], device=x.device)
    per = max(1, chunk // k)  # images per chunk
    draws = max(1, min(k, chunk))  # draws per decoder call, for one image when k > chunk
    for s in range(0, x.shape[0], per):
        sl = slice(s, s + per)
        yb = None if y is None else y[sl]
        parts = [iwae_log_weights(model, x[sl], yb, min(draws, k - i), likelihood, sigma, mu[sl], logvar[sl], generator)
                 for i in range(0, k, draws)]
        out[sl] = math.log(k) - torch.logsumexp(torch.cat(parts), dim=0)
    return out


class Objective(nn.Module):
    """The training loss as a module: ``forward(x, y=None) -> LossParts``, nats per image (batch means).

    Wraps a model and what it is trained by, so the whole loss runs inside one ``forward``: wrap the
    Objective, not the model, in DistributedDataParallel or ``torch.compile`` (as nanoGPT and pythae
    wrap the module whose forward returns the loss), and every parameter the loss touches, a
    class-prior model's ``class_means`` included, is seen by the wrapper.

    - "elbo": recon + beta * KL (the beta-VAE loss, Higgins et al., 2017, Eq. 4; the negative ELBO for
      beta = 1), one z ~ q(z|x) per image; a plain autoencoder (``model.variational`` False) gets the
      reconstruction term alone (``autoencoder_loss``).
    - "iwae": -L_k with ``k`` draws (Burda et al., 2016, Eq. 8; ``iwae_loss``).

    ``beta`` is a buffer, so a KL warm-up sets it in place (``objective.beta.fill_(b)``) without a
    recompilation or a host sync. x: float (B, C, H, W) in [0, 1]; y: int64 (B,) or None. Raises
    ValueError for another objective or likelihood, or k < 1.
    """

    def __init__(self, model: nn.Module, objective: str = "elbo", likelihood: str = "bernoulli",
                 beta: float = 1.0, sigma: float = 0.1, k: int = 5):
        super().__init__()
        if objective not in OBJECTIVES or likelihood not in LIKELIHOODS or k < 1:
            raise ValueError(f"objective must be one of {OBJECTIVES}, likelihood one of {LIKELIHOODS} and k >= 1, "
                             f"got {objective!r}, {likelihood!r}, {k}")
        self.model, self.objective, self.likelihood, self.sigma, self.k = model, objective, likelihood, sigma, k
        self.register_buffer("beta", torch.tensor(float(beta)), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LossParts:
        if self.objective == "iwae":
            return iwae_loss(self.model, x, y, self.k, self.likelihood, self.sigma)
        logits, mu, logvar = self.model(x, y)
        if not self.model.variational:
            return autoencoder_loss(logits, x, self.likelihood, self.sigma)
        return elbo(logits, x, mu, logvar, self.likelihood, self.beta, self.sigma, prior_mu=self.model.prior_mean(y))
