"""vae.health against answers known in advance: the aggregate posterior against torch's mixture, the
ELBO's surgery against numerical integration of a one-dimensional mixture, hole shares at their
limits, Burda et al.'s active units."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vae.health import active_units, elbo_surgery, hole_mask, hole_share, log_aggregate_posterior, log_density_ratio, prior_radius


def mixture(mu, logvar):
    n = mu.shape[0]
    return MixtureSameFamily(Categorical(torch.ones(n, dtype=torch.float64)),
                             Independent(Normal(mu.double(), (0.5 * logvar.double()).exp()), 1))


def test_the_aggregate_posterior_is_the_mixture_of_the_posteriors():
    g = torch.Generator().manual_seed(0)
    mu, logvar, z = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g) - 1, 2 * torch.randn(40, 3, generator=g)
    expected = mixture(mu, logvar).log_prob(z.double())
    assert torch.allclose(log_aggregate_posterior(z, mu, logvar, chunk=7), expected, atol=1e-9)
    # two of three dimensions: the mixture of the posteriors' marginals
    two = mixture(mu[:, [0, 2]], logvar[:, [0, 2]]).log_prob(z[:, :2].double())
    assert torch.allclose(log_aggregate_posterior(z[:, :2], mu, logvar, dims=[0, 2]), two, atol=1e-9)
    with pytest.raises(ValueError):
        log_aggregate_posterior(z, mu[:, :2], logvar[:, :2])


def quadrature_surgery(mu, sigma):
    """I(n; z) and KL(q(z) || p(z)) of 1-d Gaussians q(z|n) = N(mu_n, sigma_n^2) by the trapezoid rule."""
    z = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    comp = Normal(mu[:, None], sigma[:, None])
    q_n = comp.log_prob(z).exp()  # (N, Z)
    q = q_n.mean(0)
    p = Normal(0.0, 1.0).log_prob(z).exp()
    tiny = 1e-300
    mi = torch.trapezoid((q_n * (torch.log(q_n + tiny) - torch.log(q + tiny))).mean(0), z)
    marginal = torch.trapezoid(q * (torch.log(q + tiny) - torch.log(p)), z)
    return mi.item(), marginal.item()


def test_the_surgery_matches_numerical_integration_and_adds_up():
    mu = torch.tensor([-2.0, -0.5, 0.3, 1.5, 3.0], dtype=torch.float64)
    sigma = torch.tensor([0.3, 0.8, 0.5, 0.4, 1.2], dtype=torch.float64)
    mi, marginal = quadrature_surgery(mu, sigma)
    # 20,000 draws per posterior so that the Monte Carlo error is small against the answers
    s = elbo_surgery(mu[:, None], 2 * sigma.log()[:, None], draws=20_000, seed=1)
    assert abs(s.mutual_information - mi) < 4 * s.mutual_information_se + 1e-3
    assert abs(s.marginal_kl - marginal) < 4 * s.marginal_kl_se + 1e-3
    assert abs(s.avg_kl_mc - s.avg_kl) < 4 * s.avg_kl_mc_se + 1e-3
    assert abs(mi + marginal - s.avg_kl) < 1e-6  # the decomposition itself, exactly
    assert 0 < s.mutual_information <= math.log(5) and s.log_n == pytest.approx(math.log(5))
    assert s.mutual_information_se < 0.01 and s.marginal_kl_se < 0.01


def test_the_mutual_information_stays_below_log_n_even_for_separate_posteriors():
    # posteriors far apart and narrow: q(z|n) carries the whole index, I -> log N, never above
    mu = torch.arange(8, dtype=torch.float64)[:, None] * 50
    s = elbo_surgery(mu, torch.full_like(mu, -6.0), draws=10)
    assert s.mutual_information <= math.log(8) + 1e-12
    assert s.mutual_information == pytest.approx(math.log(8), abs=1e-6)
    # identical posteriors: no information about the index, all of the KL is the marginal's
    same = elbo_surgery(torch.full((6, 2), 0.7), torch.full((6, 2), -0.4), draws=100)
    assert abs(same.mutual_information) < 1e-9
    assert abs(same.marginal_kl - same.avg_kl) < 4 * same.marginal_kl_se  # a Monte Carlo estimate of it
    with pytest.raises(ValueError):
        elbo_surgery(torch.zeros(1, 2), torch.zeros(1, 2))


def test_hole_shares_at_their_limits():
    # q(z) = p(z): no holes
    prior_like = hole_share(torch.zeros(30, 2), torch.zeros(30, 2), n_draws=4000)
    assert prior_like.share == 0.0
    # every posterior far away: the prior's whole central 95% region is a hole
    far = hole_share(torch.full((30, 2), 20.0), torch.full((30, 2), -4.0), n_draws=20_000, seed=3)
    assert abs(far.share - 0.95) < 4 * far.se and far.se == pytest.approx(math.sqrt(0.95 * 0.05 / 20_000), rel=0.05)
    # half the plane empty: posteriors only at z[0] > 0, so about half of the central region is a hole
    g = torch.Generator().manual_seed(0)
    mu = torch.stack([torch.rand(4000, generator=g) * 4 + 0.5, torch.randn(4000, generator=g)], 1)
    half = hole_share(mu, torch.full_like(mu, -3.0), n_draws=20_000)
    assert 0.35 < half.share < 0.6
    # a two-dimensional marginal of a 3-d model uses only those dimensions
    mu3 = torch.cat([torch.zeros(30, 2), torch.full((30, 1), 20.0)], 1)
    assert hole_share(mu3, torch.zeros(30, 3), dims=[0, 1], n_draws=2000).share == 0.0
    assert hole_share(mu3, torch.zeros(30, 3), dims=[0, 2], n_draws=2000).share > 0.4
    assert prior_radius(2) == pytest.approx(math.sqrt(-2 * math.log(0.05)))
    z = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    assert hole_mask(z, torch.full((3, 2), 20.0), torch.zeros(3, 2)).tolist() == [True, False]  # outside the region: not a hole
    assert log_density_ratio(z, torch.zeros(3, 2), torch.zeros(3, 2)).abs().max() < 1e-9


def test_active_units_by_the_covariance_of_the_means():
    g = torch.Generator().manual_seed(0)
    mu = torch.stack([torch.randn(1000, generator=g), 0.05 * torch.randn(1000, generator=g),
                      0.2 * torch.randn(1000, generator=g)], 1)  # variances about 1, 0.0025, 0.04
    units = active_units(mu, [1.0, 0.5, 0.001])
    assert units.active == [0, 2] and units.kl_active == [0, 1] and units.disagree == [1, 2]
    assert units.activity[1] == pytest.approx(0.0025, rel=0.2)
