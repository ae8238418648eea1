"""The plain autoencoder, the VAE with a prior mean per class, and the pages that teach with them."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence as torch_kl

from conftest import ROOT, labelled, open_app, rerun, shown
from vae.checkpoint import load_checkpoint, save_checkpoint
from vae.conditional import class_codes, class_decode, confident_share, encode_style, sample_classes, style_transfer
from vae.evaluate import evaluate, model_card
from vae.latent import encode_images, grid_coordinates, kl_per_dimension, manifold_grid, plane_pixel
from vae.losses import elbo, iwae_log_weights, iwae_loss, kl_divergence, reconstruction_nll
from vae.models import AE, ClassPriorVAE, build_model
from vae.posterior import posterior
from vae.losses import Objective
from vae.train import TrainConfig, train

PRETRAINED = ROOT / "pretrained"


def test_kl_to_a_shifted_prior_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar, prior_mu = torch.randn(5, 3), torch.randn(5, 3), 3 * torch.randn(5, 3)
    expected = torch_kl(Normal(mu, (0.5 * logvar).exp()), Normal(prior_mu, torch.ones(5, 3)))
    assert torch.allclose(kl_divergence(mu, logvar, per_dim=True, prior_mu=prior_mu), expected, atol=1e-5)
    assert torch.allclose(kl_divergence(mu, logvar, prior_mu=prior_mu), expected.sum(1), atol=1e-5)
    # The standard prior is the shifted one at 0, and the KL is 0 only where q is the prior itself.
    assert torch.allclose(kl_divergence(mu, logvar, prior_mu=torch.zeros(5, 3)), kl_divergence(mu, logvar))
    assert kl_divergence(prior_mu, torch.zeros(5, 3), prior_mu=prior_mu).abs().max() < 1e-6


def test_class_prior_vae_elbo_and_iwae_use_the_class_mean():
    torch.manual_seed(0)
    model = ClassPriorVAE(latent_dim=2, hidden=(32,), n_classes=10)
    with torch.no_grad():
        model.class_means.copy_(torch.arange(20.0).view(10, 2))
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 3, 9])
    mu, logvar = model.encode(x, y)
    assert torch.equal(model.prior_mean(y), torch.tensor([[0.0, 1], [6, 7], [6, 7], [18, 19]]))
    # The training objective's KL is against N(mu_y, I): far larger here than against N(0, I).
    config = TrainConfig(model="cvae_class_prior", hidden=[32])
    parts = Objective(model, config.objective, config.likelihood, config.beta, config.sigma)(x, y)
    assert parts.kl.item() == pytest.approx(kl_divergence(mu, logvar, prior_mu=model.prior_mean(y)).mean().item(), rel=1e-4)
    assert parts.kl.item() > kl_divergence(mu, logvar).mean().item() + 20
    # IWAE log-weights: log p(x|z) + log N(z; mu_y, I) - log q(z|x), checked with torch.distributions.
    torch.manual_seed(1)
    log_w = iwae_log_weights(model, x, y, 3)
    torch.manual_seed(1)
    z = mu + (0.5 * logvar).exp() * torch.randn(3, *mu.shape)
    log_px = -reconstruction_nll(model.decode(z.reshape(12, 2)), x.repeat(3, 1, 1, 1)).view(3, 4)
    log_pz = Normal(model.prior_mean(y), 1.0).log_prob(z).sum(-1)
    log_q = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(log_w, log_px + log_pz - log_q, atol=1e-3)
    assert iwae_loss(model, x, y, k=3).kl.item() == pytest.approx(parts.kl.item(), rel=1e-4)
    with pytest.raises(ValueError, match="needs labels"):
        model.prior_mean(None)


def test_class_prior_sampling_and_style_tools_draw_around_the_class_mean():
    torch.manual_seed(0)
    model = ClassPriorVAE(latent_dim=2, hidden=(32,)).eval()
    eps = torch.randn(3, 2)
    codes = class_codes(model, eps, 4)
    assert torch.allclose(codes, eps + model.class_means[4].detach())
    assert torch.allclose(class_decode(model, eps, 4), torch.sigmoid(model.decode(codes)))
    images, labels = sample_classes(model, per_class=2)
    assert images.shape == (20, 1, 28, 28) and labels.tolist() == [c for c in range(10) for _ in range(2)]
    # A style is the offset from the class mean; style_transfer's image of the given class reconstructs mu.
    x = torch.rand(1, 1, 28, 28)
    mu, _ = model.encode(x)
    assert torch.allclose(encode_style(model, x, 7)[0], (mu - model.class_means[7]).detach()[0], atol=1e-6)
    style, row = style_transfer(model, x, 7)
    assert torch.allclose(row[7], torch.sigmoid(model.decode(mu)).detach()[0], atol=1e-6)
    assert model.sample(5, 2).shape == (5, 1, 28, 28) and model.sample(5).shape == (5, 1, 28, 28)


def test_autoencoder_is_deterministic_and_trains_on_reconstruction_alone():
    torch.manual_seed(0)
    model = AE(latent_dim=2, hidden=(32,))
    assert not hasattr(model, "fc_logvar") and not model.variational
    x = torch.rand(6, 1, 28, 28)
    z, logvar = model.encode(x)
    assert logvar is None and z.shape == (6, 2)
    logits, z2, none = model(x)
    assert none is None and torch.equal(z, z2)  # no noise: the same image, the same code
    parts = Objective(model)(x)
    assert parts.kl.item() == 0 and parts.loss.item() == pytest.approx(reconstruction_nll(logits, x).mean().item())
    with pytest.raises(NotImplementedError, match="no prior"):
        model.sample(3)
    for bad in ({"objective": "iwae"}, {"beta": 4.0}, {"warmup": 5}):
        with pytest.raises(ValueError, match="reconstruction term alone"):
            TrainConfig(model="ae", **bad)
    mu, lv = encode_images(model, x)
    assert lv is None and torch.allclose(mu, z.detach())
    with pytest.raises(ValueError, match="no KL"):
        kl_per_dimension(model, x)


def test_autoencoder_and_class_prior_train_save_load_and_evaluate(tmp_path):
    torch.manual_seed(0)
    images, labels = torch.rand(300, 1, 28, 28), torch.randint(10, (300,))
    for kind in ("ae", "cvae_class_prior"):
        config = TrainConfig(model=kind, latent_dim=2, hidden=[32], epochs=2, device="cpu")
        result = train(config, data=(images, labels))
        folder = save_checkpoint(result.model, config.__dict__, {"train": {}, "history": result.history},
                                 tmp_path / kind)
        model, saved_config, _ = load_checkpoint(folder, "cpu")
        assert type(model) is type(result.model)
        for a, b in zip(model.state_dict().values(), result.model.state_dict().values()):
            assert torch.equal(a, b)
        m = evaluate(model, images[:50], labels[:50], k=5)
        if kind == "ae":
            assert set(m) == {"recon", "n_images"}
            card = model_card("ae", saved_config, {"test": {**m, "dataset": "mnist", "split": "test", "n_images": 50}})
            assert "no likelihood p(x)" in card and "reconstruction term alone" in card
            post = posterior(model, images[:1], k=10)
            assert not post.variational and math.isnan(post.neg_elbo) and post.sigma.abs().sum() == 0
        else:
            assert m["iwae_nll"] <= m["neg_elbo"] + 1 and m["kl"] > 0
            post = posterior(model, images[:1], int(labels[0]), k=10)
            prior_mu = model.prior_mean(labels[:1])
            expected = kl_divergence(*model.encode(images[:1]), prior_mu=prior_mu).item()
            assert post.kl == pytest.approx(expected, rel=1e-4)


def test_elbo_with_prior_mu_none_is_the_standard_elbo():
    torch.manual_seed(0)
    logits, x, mu, logvar = torch.randn(3, 1, 28, 28), torch.rand(3, 1, 28, 28), torch.randn(3, 2), torch.randn(3, 2)
    assert torch.equal(torch.stack(elbo(logits, x, mu, logvar)), torch.stack(elbo(logits, x, mu, logvar, prior_mu=None)))


@pytest.mark.parametrize("spacing", ["linear", "quantile"])
def test_plane_pixel_inverts_the_grid_coordinates(spacing):
    n, cell, span = 9, 28, 2.5
    for k, value in enumerate(grid_coordinates(n, span, spacing).tolist()):
        assert plane_pixel(value, n, cell, span, spacing) == pytest.approx((k + 0.5) * cell, abs=1e-3)


def test_manifold_grid_is_centred_on_base():
    model = build_model({"model": "vae", "latent_dim": 2, "hidden": [16]}).eval()
    centre = torch.tensor([5.0, -3.0])
    moved = manifold_grid(model, 3, 1.0, "linear", base=centre)
    z = torch.tensor([[4.0, -2], [5, -2], [6, -2], [4, -3], [5, -3], [6, -3], [4, -4], [5, -4], [6, -4]])
    assert torch.allclose(moved, torch.sigmoid(model.decode(z)), atol=1e-6)


def test_confident_share_counts_the_top_probability():
    class Fixed:
        def predict_proba(self, x):
            return np.array([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])[: len(x)]

    r = confident_share(Fixed(), torch.zeros(4, 1, 28, 28), threshold=0.9)
    assert r["share"] == 0.5 and r["predicted"] == [0, 0, 1, 0] and r["mean_confidence"] == pytest.approx(0.7375)
    with pytest.raises(ValueError):
        confident_share(Fixed(), torch.zeros(4, 1, 28, 28), threshold=0)


# ---------------------------------------------------------------- pages, with the shipped models


def shipped(name):
    if not (PRETRAINED / name / "model.safetensors").is_file():
        pytest.skip(f"{name} is not shipped")


def test_ae_vs_vae_page_sets_the_shipped_pair_side_by_side():
    shipped("mnist-ae-2d")
    at = open_app("ae_vs_vae")
    assert labelled(at.selectbox, "Autoencoder").value == "mnist-ae-2d"
    assert labelled(at.selectbox, "VAE").value == "mnist-vae-2d"
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the two code planes
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["VAE: classes its draws reach"] == "10 of 10" and "AE: test reconstruction" in metrics
    before = shown(at)
    at.button(key="aevae_new").click()
    rerun(at)
    after = shown(at)
    assert len(set(before) - set(after)) == 2  # new draws: the two sample grids change, nothing else
    labelled(at.slider, "Span of the grid (± z)").set_value(4.0)
    rerun(at)
    assert len(set(after) - set(shown(at))) == 2  # the two decoded grids, nothing else


def test_theory_page_moves_with_its_sliders_and_splits_the_elbo():
    at = open_app("theory")
    assert len(at.latex) >= 3
    kl = labelled(at.metric, "KL")
    assert kl.value == f"{-math.log(0.5) + (0.25 + 1) / 2 - 0.5:.3f} nats"
    labelled(at.slider, "μ").set_value(0.0)
    labelled(at.slider, "σ").set_value(1.0)
    rerun(at)
    assert labelled(at.metric, "KL").value == "0.000 nats"
    captions = " ".join(c.value for c in at.caption)
    assert "−ELBO = reconstruction" in captions


def test_theory_page_says_an_autoencoder_has_no_elbo():
    shipped("mnist-ae-2d")
    at = open_app("theory", "mnist-ae-2d")
    assert any("plain autoencoder" in i.value for i in at.info)


def test_class_prior_model_on_the_cvae_and_manifold_pages():
    shipped("mnist-cvae-class-prior")
    at = open_app("cvae", "mnist-cvae-class-prior")
    assert "learned mean" in " ".join(m.value for m in at.markdown)
    before = shown(at)
    at.get("button_group")[0].set_value(7)
    rerun(at)
    assert len(set(before) - set(shown(at))) >= 2  # the one style and the 36 samples at least
    at = open_app("manifold", "mnist-cvae-class-prior")
    assert "crosses mark each class's prior mean" in at.get("image")[0].proto.imgs[0].caption
    first = shown(at)
    labelled(at.selectbox, "Centre the plane on").select(3)
    rerun(at)
    assert shown(at) != first
