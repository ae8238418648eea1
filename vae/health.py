"""Is the latent space healthy? The aggregate posterior against the prior, its holes, the ELBO's
surgery and active units, from the encoder's q(z|x_n) over a set of N images (the test split).

    q(z) = (1/N) sum_n q(z|x_n)                            the aggregate posterior (Hoffman & Johnson, 2016)
    (1/N) sum_n KL(q(z|x_n) || p(z)) = I_q(n; z) + KL(q(z) || p(z))          (ibid., Eq. 3 and after)
    A_u = Cov_x(E_{q(u|x)}[u]) > 10^-2                     an active unit (Burda et al., 2016, Sec. 5.2)

p(z) = N(0, I) throughout: the prior of the plain VAE, the IWAE and the CVAE (whose q(z|x, y) the
index n then includes the label of). The class-prior VAE's p(z|y) is not N(0, I): its split differs
and is not computed here.

    python -m vae.health pretrained/mnist-vae-20d [--draws 4] [--write]

``--write`` stores "elbo_surgery", "active_units" and "holes" in the folder's metrics.json (and rewrites its card).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .losses import LOG_2PI, kl_divergence

HOLE_THRESHOLD = 0.1  # q(z) / p(z) below this, inside the prior's central region: a hole
PRIOR_LEVEL = 0.95  # the prior's central region: |z|^2 below the chi-square quantile at this level
ACTIVE_UNIT_THRESHOLD = 1e-2  # Burda et al. (2016, Sec. 5.2)


# ---------------------------------------------------------------- densities


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) of each row of z (M, D), float64 (M,), in nats."""
    z = z.double()
    return -0.5 * (z.pow(2).sum(1) + z.shape[1] * LOG_2PI)


def log_aggregate_posterior(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                            dims: list[int] | None = None, chunk: int = 512) -> torch.Tensor:
    """log q(z) for each row of z, q(z) = (1/N) sum_n N(z; mu_n, diag(exp(logvar_n))), in nats.

    z: (M, D') points; mu, logvar: (N, D) posteriors (float, CPU); dims: the D' columns of mu and logvar
    that z's columns are (None: all): with two of D dimensions this is the aggregate posterior's
    two-dimensional marginal, the mixture of the posteriors' marginals. Returns float64 (M,).
    Each Gaussian's log density is one matrix product (z^2 @ 1/sigma^2 - 2 z @ mu/sigma^2 + c_n), in
    float64, ``chunk`` rows of z at a time (memory: chunk x N doubles). Raises ValueError when the
    shapes disagree or N = 0.
    """
    if dims is not None:
        mu, logvar = mu[:, dims], logvar[:, dims]
    if mu.shape != logvar.shape or mu.shape[0] == 0 or z.shape[1] != mu.shape[1]:
        raise ValueError(f"z {tuple(z.shape)} against mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)}")
    mu, logvar, z = mu.double(), logvar.double(), z.double()
    precision = torch.exp(-logvar)  # (N, D')
    const = -0.5 * ((mu.pow(2) * precision).sum(1) + logvar.sum(1) + mu.shape[1] * LOG_2PI)  # (N,)
    out = []
    for s in range(0, z.shape[0], chunk):
        zc = z[s : s + chunk]
        log_n = -0.5 * (zc.pow(2) @ precision.T) + zc @ (mu * precision).T + const  # (chunk, N)
        out.append(torch.logsumexp(log_n, 1) - math.log(mu.shape[0]))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def log_density_ratio(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dims: list[int] | None = None) -> torch.Tensor:
    """log q(z) - log p(z) at each row of z (M, D'), float64 (M,): positive where the encoder puts more
    mass than the prior, very negative in a hole. Arguments as ``log_aggregate_posterior``; p is N(0, I)
    on the same D' dimensions (a marginal of N(0, I) is N(0, I))."""
    return log_aggregate_posterior(z, mu, logvar, dims) - log_standard_normal(z)


def prior_radius(n_dims: int, level: float = PRIOR_LEVEL) -> float:
    """Radius of N(0, I_n)'s central region holding ``level`` of its mass: sqrt of the chi-square
    quantile with n_dims degrees of freedom (for 2: sqrt(-2 ln(1 - level)), 2.448 at 0.95)."""
    from scipy.stats import chi2

    return float(math.sqrt(chi2.ppf(level, n_dims)))


# ---------------------------------------------------------------- holes


@dataclass(frozen=True)
class HoleShare:
    """The share of the prior's mass in holes: P_{z ~ p}(|z| <= r and q(z)/p(z) < threshold), r the
    radius of the prior's central ``level`` region, estimated by Monte Carlo from ``n_draws`` prior
    draws; ``se`` its binomial standard error sqrt(s (1 - s) / n_draws). ``dims``: the dimensions
    the plane is made of (all of them for a 2-d model; else a two-dimensional marginal, said so)."""

    share: float
    se: float
    threshold: float
    level: float
    n_draws: int
    dims: list[int]
    latent_dim: int
    n_posteriors: int
    seed: int


def hole_share(mu: torch.Tensor, logvar: torch.Tensor, dims: list[int] | None = None, threshold: float = HOLE_THRESHOLD,
               level: float = PRIOR_LEVEL, n_draws: int = 20_000, seed: int = 0) -> HoleShare:
    """How much of the prior falls in holes of q(z), on the dimensions ``dims`` (None: all).

    mu, logvar: (N, D) posteriors of the N images; draws z ~ N(0, I_{D'}) from a seeded generator.
    Cost: n_draws x N Gaussian densities. Raises ValueError for threshold <= 0 or level outside (0, 1).
    """
    if threshold <= 0 or not 0 < level < 1:
        raise ValueError(f"threshold must be > 0 and level in (0, 1), got {threshold}, {level}")
    dims = list(range(mu.shape[1])) if dims is None else list(dims)
    z = torch.randn(n_draws, len(dims), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    share = hole_mask(z, mu, logvar, dims, threshold, level).double().mean().item()
    return HoleShare(share, math.sqrt(share * (1 - share) / n_draws), threshold, level, n_draws, dims,
                     mu.shape[1], mu.shape[0], seed)


def is_hole(z: torch.Tensor, log_ratio: torch.Tensor, threshold: float = HOLE_THRESHOLD,
            level: float = PRIOR_LEVEL) -> torch.Tensor:
    """The definition of a hole: z (M, D') inside the prior's central ``level`` region with
    log q(z) - log p(z) (``log_ratio`` (M,), e.g. from ``log_density_ratio``) below log ``threshold``.
    bool (M,)."""
    inside = z.double().pow(2).sum(1) <= prior_radius(z.shape[1], level) ** 2
    return inside & (torch.as_tensor(log_ratio) < math.log(threshold))


def hole_mask(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dims: list[int] | None = None,
              threshold: float = HOLE_THRESHOLD, level: float = PRIOR_LEVEL) -> torch.Tensor:
    """Which rows of z (M, D') are holes of the aggregate posterior of (mu, logvar) (``is_hole``). bool (M,)."""
    return is_hole(z, log_density_ratio(z, mu, logvar, dims), threshold, level)


# ---------------------------------------------------------------- the ELBO's surgery


@dataclass(frozen=True)
class ElboSurgery:
    """Hoffman & Johnson's (2016) split of the ELBO's average KL term over N images, in nats.

    avg_kl: (1/N) sum_n KL(q(z|x_n) || p(z)), closed form; avg_kl_mc: its Monte Carlo estimate, the
    sum of the two parts below (they should agree within a few ``avg_kl_mc_se``);
    mutual_information: I_q(n; z) = E_{q(n, z)}[log q(z|n) - log q(z)], at most log N (``log_n``);
    marginal_kl: KL(q(z) || p(z)) = E_{q(z)}[log q(z) - log p(z)], the prior's mismatch;
    ``*_se``: their Monte Carlo standard errors: the N images are fixed, so only the ``draws`` draws
    from each posterior vary, sqrt(sum_n Var_s(term_ns) / draws) / N.
    """

    avg_kl: float
    avg_kl_mc: float
    avg_kl_mc_se: float
    mutual_information: float
    mutual_information_se: float
    marginal_kl: float
    marginal_kl_se: float
    log_n: float
    n: int
    draws: int
    seed: int


def elbo_surgery(mu: torch.Tensor, logvar: torch.Tensor, draws: int = 4, seed: int = 0) -> ElboSurgery:
    """Estimate I_q(n; z) and KL(q(z) || p(z)) from N posteriors q(z|x_n) = N(mu_n, diag(exp(logvar_n))).

    mu, logvar: float (N, D) on the CPU, p(z) = N(0, I). For each n, ``draws`` z ~ q(z|x_n) (seeded);
    at each, log q(z|x_n) in closed form, log q(z) as the log-mean-exp over all N posteriors
    (``log_aggregate_posterior``), and log p(z). Every term log q(z|n) - log q(z) is at most log N, so the
    estimate of the mutual information is too. Cost: N * draws * N Gaussian densities (N = 10,000,
    D = 20, 4 draws: a few seconds on 2 cores). Raises ValueError for N < 2 or draws < 2.
    """
    n, d = mu.shape
    if n < 2 or draws < 2:
        raise ValueError(f"need at least 2 posteriors and 2 draws each, got N={n}, draws={draws}")
    mu, logvar = mu.double(), logvar.double()
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(draws, n, d, generator=gen, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * eps  # (draws, N, D)
    log_q_cond = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(2)  # log q(z|x_n), (draws, N)
    flat = z.reshape(draws * n, d)
    log_q = log_aggregate_posterior(flat, mu, logvar).view(draws, n)
    log_p = log_standard_normal(flat).view(draws, n)
    mi, mk = log_q_cond - log_q, log_q - log_p  # (draws, N) terms

    def se(t):  # the Monte Carlo error of the mean over n of each image's draws: only the draws vary
        return math.sqrt(t.var(0).sum().item() / draws) / n

    avg_kl = kl_divergence(mu, logvar).mean().item()
    return ElboSurgery(avg_kl, (mi + mk).mean().item(), se(mi + mk), mi.mean().item(), se(mi),
                       mk.mean().item(), se(mk), math.log(n), n, draws, seed)


# ---------------------------------------------------------------- active units


@dataclass(frozen=True)
class ActiveUnits:
    """Burda et al.'s (2016, Sec. 5.2) activity A_u = Cov_x(E_{q(u|x)}[u]) = Var_n(mu_n,u) of each
    latent dimension u over N images, and the units above ``threshold`` (10^-2); beside it, the count
    by mean KL(q(z_u|x) || p(z_u)) >= 0.01 nats that the app's other pages use, and the dimensions where
    the two disagree."""

    activity: list[float]
    active: list[int]
    kl_active: list[int]
    disagree: list[int]
    threshold: float


def active_units(mu: torch.Tensor, kl_per_dim: torch.Tensor | list[float], threshold: float = ACTIVE_UNIT_THRESHOLD,
                 kl_threshold: float = 0.01) -> ActiveUnits:
    """mu: float (N, D) encoder means; kl_per_dim: (D,) mean KL of each dimension in nats. Raises
    ValueError for N < 2."""
    if mu.shape[0] < 2:
        raise ValueError("need at least 2 encodings for a covariance")
    activity = mu.double().var(0).tolist()  # unbiased, over the N images
    kl = torch.as_tensor(kl_per_dim, dtype=torch.float64).tolist()
    active = [u for u, a in enumerate(activity) if a > threshold]
    kl_active = [u for u, k in enumerate(kl) if k >= kl_threshold]
    return ActiveUnits([round(a, 6) for a in activity], active, kl_active,
                       sorted(set(active) ^ set(kl_active)), threshold)


# ---------------------------------------------------------------- the command


def card_section(metrics: dict) -> list[str]:
    """The model card's lines on the ELBO's surgery, active units and holes, from metrics.json; []
    when none was measured. Called by ``vae.evaluate.model_card``."""
    s, a, h = metrics.get("elbo_surgery"), metrics.get("active_units"), metrics.get("holes")
    if not s:
        return []
    lines = ["", "## The latent space's health (`python -m vae.health`)", "",
             f"{s['data']}; nats; ± one Monte Carlo standard error ({s['draws']} draws z ~ q(z|x) per image, "
             f"{s['seconds']} s). ELBO surgery (Hoffman & Johnson, 2016): the average KL term {s['avg_kl']:.2f} = index-code "
             f"mutual information I_q(n; z) {s['mutual_information']:.2f} ± {s['mutual_information_se']:.3f} (at most "
             f"log N = {s['log_n']:.2f}) + marginal KL(q(z) || p(z)) {s['marginal_kl']:.2f} ± {s['marginal_kl_se']:.3f} "
             f"(their Monte Carlo sum: {s['avg_kl_mc']:.2f} ± {s['avg_kl_mc_se']:.3f})."]
    if a:
        agree = "the same dimensions" if not a["disagree"] else f"they disagree on {a['disagree']}"
        lines += ["", f"Active units (Burda et al., 2016, Sec. 5.2: Var_x of E_q[z_u] above 0.01): {a['count']} of "
                      f"{len(a['activity'])}; by mean KL >= 0.01 nats: {a['kl_count']} ({agree})."]
    if h:
        plane = "the latent plane" if h["latent_dim"] == 2 else f"the two-dimensional marginal of z[{h['dims'][0]}], z[{h['dims'][1]}]"
        share = (f"{h['share']:.1%} ± {h['se']:.1%}" if h["share"] else
                 f"none of {h['n_draws']:,} prior draws (below {3 / h['n_draws']:.2%} at 95% confidence)")
        lines += ["", f"Holes, on {plane}: {share} of the prior's mass lies where q(z)/p(z) < "
                      f"{h['threshold']:g} inside its central {h['level']:.0%} region ({h['n_draws']:,} prior draws)."]
    return lines




def measure(folder: str | Path, data_root: str | None = None, draws: int = 4, seed: int = 0) -> dict:
    """"elbo_surgery", "active_units" and "holes" of a shipped model over its whole test split, as
    stored in metrics.json. Raises ValueError for an autoencoder or a class-prior model."""
    from .checkpoint import load_checkpoint
    from .data import load_split
    from .latent import encode_images, rank_dimensions

    model, config, _ = load_checkpoint(folder)
    if not model.variational or hasattr(model, "class_means"):
        raise ValueError(f"{folder}: the surgery needs q(z|x) and the prior N(0, I)")
    images, labels = load_split(config["dataset"], "test", data_root, config.get("image_shape"))  # MNIST's, or a folder's
    t0 = time.perf_counter()
    mu, logvar = encode_images(model, images, labels if model.conditional else None)
    surgery = elbo_surgery(mu, logvar, draws, seed)
    t_surgery = time.perf_counter() - t0
    kl = kl_divergence(mu.double(), logvar.double(), per_dim=True).mean(0)
    units = active_units(mu, kl)
    # the manifold's default plane: the two highest-KL dimensions (repeats removed before cutting to two)
    dims = sorted(list(dict.fromkeys(rank_dimensions(kl.tolist())[0] + list(range(mu.shape[1]))))[:2])
    t1 = time.perf_counter()
    holes = hole_share(mu, logvar, dims, seed=seed)
    source = f"{config['dataset']} test split, all {mu.shape[0]:,} images"
    return {
        "elbo_surgery": {**asdict(surgery), "seconds": round(t_surgery, 2), "data": source, "units": "nats",
                         "source": "Hoffman & Johnson (2016), ELBO surgery; log q(z) as the log-mean-exp over all N posteriors"},
        "active_units": {**asdict(units), "count": len(units.active), "kl_count": len(units.kl_active), "data": source,
                         "source": "Burda et al. (2016), Sec. 5.2: Var_x of E_q[z_u] above 0.01; kl_active: mean KL >= 0.01 nats"},
        "holes": {**asdict(holes), "seconds": round(time.perf_counter() - t1, 2), "data": source,
                  "what": ("the prior's mass where q(z)/p(z) < threshold inside its central region"
                           + ("" if mu.shape[1] == 2 else f"; on the two-dimensional marginal of dimensions {dims}, not the whole space"))},
    }


def main(argv: list[str] | None = None) -> None:
    from .evaluate import update_metrics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--write", action="store_true", help="store the result in each folder's metrics.json")
    args = parser.parse_args(argv)
    for folder in args.folders:
        t0 = time.perf_counter()
        result = measure(folder, args.data_root, args.draws)
        s = result["elbo_surgery"]
        print(f"{folder}: avg KL {s['avg_kl']:.3f} = I {s['mutual_information']:.3f} ± {s['mutual_information_se']:.3f}"
              f" + marginal KL {s['marginal_kl']:.3f} ± {s['marginal_kl_se']:.3f} (MC sum {s['avg_kl_mc']:.3f}"
              f" ± {s['avg_kl_mc_se']:.3f}; log N {s['log_n']:.3f}); active units {result['active_units']['count']}"
              f" (KL count {result['active_units']['kl_count']}); holes {result['holes']['share']:.4f}"
              f" ± {result['holes']['se']:.4f} on {result['holes']['dims']}; {time.perf_counter() - t0:.1f} s")
        if args.write:
            update_metrics(folder, result)


if __name__ == "__main__":
    main()
