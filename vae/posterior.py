"""One image through the model: its posterior q(z|x), reconstruction, samples, ELBO parts and IWAE NLL.

    q(z|x) = N(mu(x), diag(sigma^2(x)))                     the encoder (Kingma & Welling, 2014, Sec. 2.4)
    -ELBO(x) = -E_q[log p(x|z)] + KL(q(z|x) || p(z))        (ibid., Eq. 3), in nats
    -log p(x) ~= -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) (Burda et al., 2016, Eq. 8)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .evaluate import score
from .latent import decode_images


@dataclass(frozen=True)
class Posterior:
    """What the model makes of one image x; tensors on the CPU, numbers in nats.

    mu, sigma, kl_per_dim: float (latent_dim,): q(z|x)'s mean, standard deviation exp(logvar / 2),
      and each dimension's KL to the prior, N(0, 1), or N(mu_y, 1) for the class-prior VAE (they sum
      to ``kl``).
    recon_image: float (1, C, H, W) in [0, 1], the reconstruction: the decoder's mean image at z = mu.
    samples: float (n, C, H, W) in [0, 1], decoder means at n draws z ~ q(z|x); ``z``: those draws (n, latent_dim).
    recon_nll: -E_q[log p(x|z)] in nats, averaged over k draws; kl: KL(q(z|x) || p(z[|y])), closed form;
    neg_elbo: -ELBO = recon_nll + kl (the loss at beta = 1, as in metrics.json); iwae_nll: the k-sample
    IWAE estimate of -log p(x) (of -log p(x|y) for a CVAE); k: the number of draws behind recon_nll and iwae_nll.
    A plain autoencoder (``variational`` False) has a point code: sigma and kl_per_dim are 0, the
    samples are its one reconstruction, recon_nll is at z = f(x), and kl, neg_elbo, iwae_nll are NaN.
    """

    mu: torch.Tensor
    sigma: torch.Tensor
    kl_per_dim: torch.Tensor
    recon_image: torch.Tensor
    samples: torch.Tensor
    z: torch.Tensor
    recon_nll: float
    kl: float
    neg_elbo: float
    iwae_nll: float
    k: int
    variational: bool = True


@torch.no_grad()
def posterior(
    model,
    x: torch.Tensor,
    y: int | None = None,
    likelihood: str = "bernoulli",
    sigma: float = 0.1,
    k: int = 100,
    n_samples: int = 8,
    seed: int = 0,
) -> Posterior:
    """Encode one image and measure it.

    x: float (1, C, H, W) in [0, 1], (C, H, W) the model's ``image_shape`` ((1, 28, 28) for MNIST); y: its
    class, required by a CVAE (ValueError without it),
    ignored otherwise; likelihood and sigma: the decoder's, as in the model's config.json. k >= 1
    draws estimate recon_nll, k more the IWAE bound (``vae.losses.iwae_nll``); the first n_samples
    (at most k) of the former are the images for display. Cost: 2k decodes. Seeded with
    ``seed`` without touching the global random state, so the same image always gives the same
    numbers. Returns a Posterior.
    """
    if tuple(x.shape) != (1, *model.image_shape):
        raise ValueError(f"x must be one image of shape {(1, *model.image_shape)}, got {tuple(x.shape)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    model.eval()
    device = next(model.parameters()).device
    x = x.to(device, torch.float32)
    yt = None if y is None else torch.tensor([int(y)], device=device)
    keep = min(n_samples, k)
    s = score(model, x, yt, likelihood, sigma, draws=k if model.variational else 1,
              iwae_k=k, generator=torch.Generator(device).manual_seed(seed), keep=keep if model.variational else 1)
    mu = s["mu"]
    if not model.variational:
        image = s["samples"][0].cpu()
        nan = float("nan")
        return Posterior(mu=mu[0].cpu(), sigma=torch.zeros(model.latent_dim), kl_per_dim=torch.zeros(model.latent_dim),
                         recon_image=image, samples=image.expand(keep, -1, -1, -1).clone(),
                         z=mu.cpu().expand(keep, -1).clone(), recon_nll=s["recon"][0].item(), kl=nan,
                         neg_elbo=nan, iwae_nll=nan, k=1, variational=False)
    kl = s["kl_per_dim"][0]
    recon = s["recon"][0]
    return Posterior(
        mu=mu[0].cpu(), sigma=s["logvar"][0].mul(0.5).exp().cpu(),
        kl_per_dim=kl.cpu(), recon_image=decode_images(model, mu, yt).cpu(),
        samples=s["samples"][0].cpu(), z=s["z"][0].cpu(), recon_nll=recon.item(), kl=kl.sum().item(),
        neg_elbo=(recon + kl.sum()).item(), iwae_nll=s["iwae_nll"][0].item(), k=k,
    )
