"""vae.ood against answers known in advance: AUROC as the Mann-Whitney statistic, thresholds at their
false-positive rate, PNG code lengths, the label-free bound of a conditional model."""

import math

import pytest
import torch

from vae.models import CVAE, VAE
from vae.ood import (auroc, complexity_bits, fit, is_out_of_distribution, model_nats, ood_scores, percentile,
                     threshold_binarize)


def test_auroc_known_answers():
    assert auroc([1, 2, 3], [4, 5]) == 1.0  # every out-score above every in-score
    assert auroc([4, 5], [1, 2, 3]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5  # ties count half
    # by hand, the 6 pairs (in, out): out = 2 beats 1, ties 2 (a half), loses to 3; out = 4 beats all 3: 4.5 of 6
    assert auroc([1, 2, 3], [2, 4]) == pytest.approx(4.5 / 6)
    with pytest.raises(ValueError):
        auroc([], [1.0])


def test_the_threshold_leaves_its_false_positive_rate_above_it():
    scores = torch.arange(1000, dtype=torch.float64)
    f = fit(scores, fpr=0.05)
    assert (scores > f["threshold"]).double().mean().item() == pytest.approx(0.05, abs=0.002)
    assert len(f["percentiles"]) == 101 and f["n"] == 1000
    assert percentile(499.5, f) == pytest.approx(50, abs=0.1) and percentile(-5, f) == 0 and percentile(5000, f) == 100
    assert is_out_of_distribution(990.0, f) and not is_out_of_distribution(500.0, f)
    with pytest.raises(ValueError):
        fit(scores, fpr=1.5)


def test_png_lengths_grow_with_the_content():
    blank = torch.zeros(1, 1, 28, 28)
    bar = blank.clone()
    bar[..., 4:24, 12:16] = 1
    noise = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    bits = complexity_bits(torch.cat([blank, bar, noise]))
    assert bits[0] < bits[1] < bits[2] and bits.dtype == torch.float64
    assert complexity_bits(noise).item() == complexity_bits(threshold_binarize(noise)).item()  # binarized first
    assert set(threshold_binarize(noise).unique().tolist()) == {0.0, 1.0}


def test_a_conditional_models_code_length_is_the_label_free_bound():
    torch.manual_seed(0)
    model = CVAE(latent_dim=2, hidden=(32,), n_classes=3).eval()
    x = torch.rand(5, 1, 28, 28)
    per_label = torch.stack([_neg_elbo_given(model, x, c) for c in range(3)])  # (C, N)
    bound = model_nats(model, x, draws=4, seed=1)
    # -logsumexp_y(ELBO(x|y) - log C): between the best label's -ELBO and that plus log C
    assert (bound >= per_label.min(0).values - 1e-6).all()
    assert (bound <= per_label.min(0).values + math.log(3) + 1e-6).all()
    assert torch.allclose(bound, -(torch.logsumexp(-per_label, 0) - math.log(3)), atol=1e-5)


def _neg_elbo_given(model, x, c):
    from vae.evaluate import score

    s = score(model, x, torch.full((x.shape[0],), c), draws=4, generator=torch.Generator().manual_seed(1))
    return (s["recon"] + s["kl_per_dim"].sum(1)).double()


def test_scores_of_an_unconditional_model_and_their_relation():
    torch.manual_seed(0)
    model = VAE(latent_dim=2, hidden=(32,)).eval()
    x = torch.rand(6, 1, 28, 28)
    s = ood_scores(model, x, draws=2)
    assert set(s) == {"neg_elbo", "complexity_corrected", "complexity"}
    nats_binary = model_nats(model, threshold_binarize(x), draws=2)
    assert torch.allclose(s["complexity_corrected"], nats_binary / math.log(2) - s["complexity"])
    assert torch.equal(ood_scores(model, x, draws=2)["neg_elbo"], s["neg_elbo"])  # seeded: the same again


def test_the_combined_score_is_calibrated_jointly_and_flags_either_kind():
    from vae.ood import COMBINED, combined, fit_all

    g = torch.Generator().manual_seed(0)
    inside = {"neg_elbo": torch.randn(4000, generator=g, dtype=torch.float64),
              "complexity_corrected": torch.randn(4000, generator=g, dtype=torch.float64)}
    fits = fit_all(inside)
    c = combined(inside, fits)
    assert (c > fits[COMBINED]["threshold"]).double().mean().item() == pytest.approx(0.05, abs=0.003)
    assert fits[COMBINED]["threshold"] > 0.95  # two chances to be unusual: each test is held to more than its 95%
    # unusual by one score only: flagged either way; usual by both: not
    for odd in ({"neg_elbo": 5.0, "complexity_corrected": 0.0}, {"neg_elbo": 0.0, "complexity_corrected": 5.0}):
        assert is_out_of_distribution(combined(odd, fits), fits[COMBINED])
    assert not is_out_of_distribution(combined({"neg_elbo": 0.0, "complexity_corrected": 0.0}, fits), fits[COMBINED])
