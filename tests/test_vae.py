"""Unit tests of the `vae` engine: numbers, not just shapes."""

import ast
import dataclasses
import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence as torch_kl

from vae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vae.data import (CLASS_NAMES, DatasetNotFoundError, binarized_test_split, load_dataset,
                      load_test_images, stochastic_binarize, write_sample)
from vae.evaluate import evaluate, evaluate_checkpoint, main as evaluate_main
from vae.latent import decode_images, grid_coordinates, manifold_grid, tile
from vae.losses import elbo, iwae_log_weights, iwae_loss, iwae_nll, kl_divergence, reconstruction_nll
from vae.models import CVAE, VAE, ConvVAE, build_model
from vae.posterior import posterior
from vae.train import TrainConfig, TrainingDiverged, evaluate_loss, train


# ---------------------------------------------------------------- losses


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 7, generator=g) * 2, torch.randn(64, 7, generator=g)
    ours = kl_divergence(mu, logvar)
    ref = torch_kl(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl_divergence(mu, logvar, per_dim=True).sum(1), ours)
    assert torch.all(kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)) == 0)


def test_bernoulli_and_gaussian_nll_match_distributions():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 1, 28, 28, generator=g) * 3
    x = (torch.rand(5, 1, 28, 28, generator=g) > 0.5).float()
    ref = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, x, "bernoulli"), ref)
    x = torch.rand(5, 1, 28, 28, generator=g)
    ref = -Normal(torch.sigmoid(logits), 0.2).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, x, "gaussian", sigma=0.2), ref)
    with pytest.raises(ValueError, match="likelihood"):
        reconstruction_nll(logits, x, "poisson")


def test_elbo_parts_and_beta():
    g = torch.Generator().manual_seed(2)
    logits, x = torch.randn(4, 1, 28, 28, generator=g), torch.rand(4, 1, 28, 28, generator=g)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    parts = elbo(logits, x, mu, logvar, beta=4.0)
    torch.testing.assert_close(parts.recon, reconstruction_nll(logits, x).mean())
    torch.testing.assert_close(parts.kl, kl_divergence(mu, logvar).mean())
    torch.testing.assert_close(parts.loss, parts.recon + 4.0 * parts.kl)


def test_reparameterize_has_the_posterior_moments():
    torch.manual_seed(3)
    model = VAE(latent_dim=2)
    mu, logvar = torch.tensor([[1.5, -2.0]]).repeat(200_000, 1), torch.tensor([[0.0, math.log(0.25)]]).repeat(200_000, 1)
    z = model.reparameterize(mu, logvar)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.5, -2.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01, rtol=0)


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset("mnist", "test")


@pytest.fixture(scope="module")
def trained_vae(mnist_test):
    """A small VAE trained briefly on real MNIST (seconds on a CPU)."""
    result = train(TrainConfig(latent_dim=8, hidden=[200], epochs=3, seed=0, device="cpu"))
    return result


def test_iwae_nll_tightens_with_k_and_beats_the_elbo(trained_vae, mnist_test):
    model = trained_vae.model
    x = mnist_test[0][:200]
    torch.manual_seed(0)
    minus_elbo = torch.stack([_neg_elbo(model, x) for _ in range(20)]).mean()
    nll = {k: iwae_nll(model, x, k=k).mean() for k in (1, 10, 100, 1000)}
    # k = 1 is the ELBO in expectation (Monte Carlo reconstruction, same KL): within a nat.
    assert abs(nll[1] - minus_elbo) < 1.0
    # The bound is non-increasing in k, and tighter than the ELBO by a clear margin for a trained model.
    assert nll[1] > nll[10] > nll[100] > nll[1000]
    assert nll[1000] < minus_elbo - 1.0
    # The chunk size is a memory knob only: one image at a time gives the same estimate.
    one_at_a_time = iwae_nll(model, x, k=1000, chunk=1000).mean()
    assert abs(one_at_a_time - nll[1000]) < 0.3
    in_pieces = iwae_nll(model, x, k=1000, chunk=300).mean()  # k > chunk: 300 + 300 + 300 + 100 draws per image
    assert abs(in_pieces - nll[1000]) < 0.3


def test_iwae_nll_with_the_gaussian_likelihood():
    torch.manual_seed(0)
    model = VAE(latent_dim=3, hidden=(32,))
    x = torch.rand(16, 1, 28, 28)
    minus_elbo = torch.stack([_neg_elbo(model, x, "gaussian") for _ in range(200)]).mean()
    nll = {k: iwae_nll(model, x, k=k, likelihood="gaussian").mean() for k in (1, 100)}
    assert abs(nll[1] - minus_elbo) < 0.02 * abs(minus_elbo)  # k = 1 is -ELBO in expectation
    assert nll[100] < nll[1] - 1.0


def test_iwae_weights_of_a_cvae_batch_pair_each_image_with_its_label():
    """b > 1 images with different labels: each image's k log-weights equal the ones computed image by image
    with torch.distributions from the same draws, so the repeats of images and labels line up."""
    cvae = load_checkpoint(Path(__file__).resolve().parents[1] / "pretrained" / "mnist-cvae")[0]
    images, labels = load_dataset("mnist", "test")
    x, y, k = binarized_test_split(images[:6]), labels[:6], 7  # bits: in the support of Bernoulli
    assert len(set(y.tolist())) > 3
    torch.manual_seed(0)
    log_w = iwae_log_weights(cvae, x, y, k)  # (k, b)
    torch.manual_seed(0)
    eps = torch.randn(k, 6, cvae.latent_dim)  # the draws iwae_log_weights made
    mu, logvar = cvae.encode(x, y)
    std = torch.exp(0.5 * logvar)
    for i in range(6):
        z = mu[i] + std[i] * eps[:, i]  # (k, D)
        logits = cvae.decode(z, y[i].repeat(k)).flatten(1)
        manual = (Bernoulli(logits=logits).log_prob(x[i].flatten().expand(k, -1)).sum(1)
                  + Normal(0.0, 1.0).log_prob(z).sum(1) - Normal(mu[i], std[i]).log_prob(z).sum(1))
        torch.testing.assert_close(log_w[:, i], manual, atol=1e-3, rtol=1e-5)
    torch.manual_seed(0)
    right = iwae_nll(cvae, x, y, k=200)
    wrong = iwae_nll(cvae, x, (y + 1) % 10, k=200)
    assert (wrong > right + 5).all()  # the label matters, so the pairing above is what makes the numbers


def test_iwae_objective_trains_and_is_at_most_the_elbo(trained_vae, mnist_test):
    model = trained_vae.model
    x = mnist_test[0][:256]
    torch.manual_seed(0)
    minus_elbo = torch.stack([_neg_elbo(model, x) for _ in range(10)]).mean()
    model.train()
    parts = iwae_loss(model, x, k=5)
    parts.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad()
    model.eval()
    assert parts.loss.item() < minus_elbo.item()  # -L_5 <= -L_1 = -ELBO
    assert parts.recon.item() > 0 and parts.kl.item() > 0
    with pytest.raises(ValueError):
        iwae_loss(model, x, k=0)


def test_dynamic_binarization_draws_bits_with_the_grey_level_as_mean():
    grey = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).view(1, 1, 1, 5).expand(20_000, 1, 1, 5)
    bits = stochastic_binarize(grey)
    assert set(bits.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(bits.mean(0).flatten(), grey[0].flatten(), atol=0.01, rtol=0)
    assert not torch.equal(stochastic_binarize(grey), bits)  # redrawn at every use


def test_the_two_binarizations_have_two_names():
    """Issue 37, item 6: ``binarize`` was a Bernoulli draw in vae.data and a fixed threshold in vae.ood.
    Now each has its own name, and no module of vae defines a plain ``binarize`` (the command line's
    ``--binarize`` and the stored config's "binarize" are as they were)."""
    from vae.ood import threshold_binarize

    grey = torch.tensor([0.0, 0.3, 0.5, 0.51, 0.9, 1.0]).view(1, 1, 1, 6).expand(4000, 1, 1, 6)
    drawn = stochastic_binarize(grey, torch.Generator().manual_seed(0))
    assert 0.2 < drawn[:, 0, 0, 1].mean().item() < 0.4  # a 0.3 pixel is 1 about 30% of the time
    cut = threshold_binarize(grey)
    assert cut[0].flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0] and (cut == cut[:1]).all()  # [x > 1/2]
    defined = [f"{p.name}:{n.lineno}" for p in sorted((Path(__file__).parents[1] / "vae").glob("*.py"))
               for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.FunctionDef) and n.name == "binarize"]
    assert not defined, defined
    assert TrainConfig(binarize="dynamic", likelihood="bernoulli").binarize == "dynamic"


def test_the_binarized_test_split_is_fixed_by_its_seed(mnist_test):
    images = mnist_test[0][:300]
    a, b, c = binarized_test_split(images, 0), binarized_test_split(images, 0), binarized_test_split(images, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(a.mean().item() - images.mean().item()) < 0.005


def test_dynamic_binarization_and_the_iwae_objective_train(mnist_test):
    config = TrainConfig(latent_dim=4, hidden=[64], epochs=2, device="cpu", binarize="dynamic", objective="iwae",
                         iwae_k=3, schedule="cosine")
    result = train(config, data=(mnist_test[0][:600], mnist_test[1][:600]))
    first, last = result.history[0], result.history[-1]
    assert last["val_loss"] < first["val_loss"]
    assert all(math.isfinite(v) for v in (*(v for k, v in last.items() if k != "val_kl_per_dim"), *last["val_kl_per_dim"]))
    assert len(last["val_kl_per_dim"]) == 4 and sum(last["val_kl_per_dim"]) == pytest.approx(last["val_kl"], abs=1e-3)
    # Validation is on one fixed binarization: the same run again gives the same numbers.
    again = train(config, data=(mnist_test[0][:600], mnist_test[1][:600]))
    assert again.history == [{**h, "seconds": a["seconds"]} for h, a in zip(result.history, again.history)]
    with pytest.raises(ValueError, match="bernoulli"):
        TrainConfig(binarize="dynamic", likelihood="gaussian")
    with pytest.raises(ValueError, match="no KL weight"):
        TrainConfig(objective="iwae", warmup=5)


def test_training_sees_bits_warm_up_and_the_cosine_schedule(monkeypatch, mnist_test):
    """What the loss receives, step by step: binary targets, beta rising over the warm-up, and a
    learning rate annealed per epoch (SGDR's cosine from lr to 0)."""
    import vae.train as vt
    from vae.losses import Objective

    seen = []
    real = Objective.forward

    def spy(self, x, y=None):  # the training steps; validation scores through vae.evaluate.score
        seen.append((set(x.unique().tolist()) <= {0.0, 1.0}, self.beta.item()))
        return real(self, x, y)

    monkeypatch.setattr(Objective, "forward", spy)
    lrs = []
    monkeypatch.setattr(vt.torch.optim.lr_scheduler.CosineAnnealingLR, "step",
                        lambda self, *a: (lrs.append(self.optimizer.param_groups[0]["lr"]),
                                          torch.optim.lr_scheduler.LRScheduler.step(self)))
    config = TrainConfig(latent_dim=4, hidden=[32], epochs=4, batch_size=100, device="cpu", binarize="dynamic",
                         warmup=2, schedule="cosine", beta=1.0)
    train(config, data=(mnist_test[0][:1000], mnist_test[1][:1000]))  # 900 training images: 9 steps per epoch
    assert all(bits for bits, _ in seen) and len(seen) == 4 * 9  # 9 steps per epoch
    betas = [beta for _, beta in seen]
    assert betas[:9] == pytest.approx([s / 18 for s in range(1, 10)])  # epoch 1: 1/18 ... 1/2
    assert betas[9:18] == pytest.approx([0.5 + s / 18 for s in range(1, 10)]) and betas[18:] == [1.0] * 18
    # The rate in force during each epoch (the scheduler's first step() is its constructor's).
    assert lrs[1:] == pytest.approx([1e-3 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])


def test_model_card_and_write_without_training_metrics(tmp_path, trained_vae, capsys):
    folder = save_checkpoint(trained_vae.model, vars(TrainConfig(latent_dim=8, hidden=[200])), {}, tmp_path / "m")
    evaluate_main([str(folder), "--k", "2", "--n-images", "20", "--device", "cpu", "--write"])
    card = (folder / "README.md").read_text()
    assert "### Protocol `grey`" in card and "| -ELBO |" in card and "0 training images" in card
    stored = json.loads((folder / "metrics.json").read_text())["test"]
    assert stored["n_images"] == 20 and stored["k"] == 2 and "neg_elbo" in stored


def test_binarized_protocol_on_a_tiny_model(tmp_path, trained_vae):
    folder = save_checkpoint(trained_vae.model, vars(TrainConfig(latent_dim=8, hidden=[200])), {}, tmp_path / "m")
    out = evaluate_checkpoint(folder, k=20, n_images=100, protocol="binarized", binarization_seed=3, device="cpu")
    assert out["protocol"] == "binarized" and out["binarization_seed"] == 3 and out["k"] == 20
    assert out["n_images"] == 100 and out["nll_of"] == "-log p(x)" and "seed 3" in out["binarization"]
    assert out["iwae_nll"] < out["neg_elbo"] and out["neg_elbo"] == pytest.approx(out["recon"] + out["kl"], abs=0.01)
    again = evaluate_checkpoint(folder, k=20, n_images=100, protocol="binarized", binarization_seed=3, device="cpu")
    grey = evaluate_checkpoint(folder, k=20, n_images=100, device="cpu")
    assert again["iwae_nll"] == out["iwae_nll"] and grey["binarization"] == "none" and grey["protocol"] == "grey"
    assert grey["neg_elbo"] != out["neg_elbo"]
    gaussian = save_checkpoint(trained_vae.model, vars(TrainConfig(latent_dim=8, hidden=[200], likelihood="gaussian")),
                               {}, tmp_path / "g")
    with pytest.raises(ValueError, match="bernoulli"):
        evaluate_checkpoint(gaussian, k=2, n_images=10, protocol="binarized", device="cpu")


def test_posterior_numbers_for_a_model_whose_q_is_the_prior():
    """Encoder weights 0: q(z|x) = N(0, I) = p(z), so KL = 0 and every importance weight is p(x|z). Decoder
    weights 0 too: p(x|z) is one Bernoulli per pixel for any z, so -ELBO = IWAE NLL = that one BCE, exactly."""
    model = VAE(latent_dim=3, hidden=(16,))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.decoder[-1].bias.copy_(torch.linspace(-2, 2, 784))
    x = torch.rand(1, 1, 28, 28)
    post = posterior(model, x, k=50, n_samples=4)
    exact = torch.nn.functional.binary_cross_entropy_with_logits(torch.linspace(-2, 2, 784), x.flatten(),
                                                                  reduction="sum").item()
    assert post.kl == 0 and post.kl_per_dim.tolist() == [0.0, 0.0, 0.0]
    assert post.mu.tolist() == [0.0] * 3 and post.sigma.tolist() == [1.0] * 3
    assert post.recon_nll == pytest.approx(exact, rel=1e-5) and post.neg_elbo == pytest.approx(exact, rel=1e-5)
    assert post.iwae_nll == pytest.approx(exact, rel=1e-5)
    torch.testing.assert_close(post.recon_image.flatten(), torch.sigmoid(torch.linspace(-2, 2, 784)))
    assert post.samples.shape == (4, 1, 28, 28) and post.z.shape == (4, 3) and post.k == 50


def test_posterior_is_seeded_and_consistent(trained_vae, mnist_test):
    x = mnist_test[0][:1]
    a, b = posterior(trained_vae.model, x, k=200), posterior(trained_vae.model, x, k=200)
    assert (a.neg_elbo, a.iwae_nll) == (b.neg_elbo, b.iwae_nll)
    mu, logvar = trained_vae.model.encode(x)
    assert a.kl == pytest.approx(kl_divergence(mu, logvar).item(), rel=1e-5)
    assert a.neg_elbo == pytest.approx(a.recon_nll + a.kl, rel=1e-6) and a.iwae_nll < a.neg_elbo
    with pytest.raises(ValueError):
        posterior(trained_vae.model, mnist_test[0][:2])


def test_conv_vae_refuses_widths_it_cannot_use():
    with pytest.raises(ValueError, match="one hidden width"):
        build_model({"model": "conv", "latent_dim": 4, "hidden": [256, 128]})
    model = build_model({"model": "conv", "latent_dim": 4, "hidden": [64], "channels": [8, 16]})
    assert model.encoder[0].out_channels == 8 and model.decoder[0].out_features == 64


def _neg_elbo(model, x, likelihood="bernoulli"):
    logits, mu, logvar = model(x)
    return elbo(logits, x, mu, logvar, likelihood).loss


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("model", [VAE(20), ConvVAE(16), CVAE(2)], ids=["vae", "conv", "cvae"])
def test_model_shapes_and_ranges(model):
    x, y = torch.rand(6, 1, 28, 28), torch.arange(6)
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (6, model.latent_dim)
    logits, mu2, _ = model(x, y)
    assert logits.shape == (6, 1, 28, 28) and torch.equal(mu, mu2)
    s = model.sample(5, 3 if model.conditional else None)
    assert s.shape == (5, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert decode_images(model, torch.zeros(4, model.latent_dim), 1).shape == (4, 1, 28, 28)


def test_classic_mlp_has_pytorch_examples_size():
    # 784-400-20-400-784, as in pytorch/examples' vae/main.py.
    n = sum(p.numel() for p in VAE(20, (400,)).parameters())
    assert n == (784 * 400 + 400) + 2 * (400 * 20 + 20) + (20 * 400 + 400) + (400 * 784 + 784)


def test_cvae_decoder_uses_the_label():
    model = CVAE(2)
    with pytest.raises(ValueError, match="labels"):
        model.decode(torch.zeros(1, 2))
    z = torch.zeros(2, 2)
    a, b = model.decode(z, torch.tensor([0, 0])), model.decode(z, torch.tensor([0, 7]))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


def test_build_model_rejects_unknown_type():
    with pytest.raises(ValueError, match="unknown model type"):
        build_model({"model": "gan", "latent_dim": 2, "hidden": [10]})


# ---------------------------------------------------------------- data


def test_load_dataset_reads_sizes_from_files(mnist_test):
    images, labels = mnist_test
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (10_000,) and labels.dtype == torch.int64
    assert images.min() == 0 and images.max() == 1 and set(labels.tolist()) == set(range(10))
    train_images, _ = load_dataset("mnist", "train")
    assert 1000 <= train_images.shape[0] <= 60_000
    assert len(CLASS_NAMES["fashion"]) == 10


def test_missing_dataset_names_files_and_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion", "test", root=tmp_path)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte" in msg and str(tmp_path) in msg and "VAE_DATA_DIR" in msg
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar", "test", root=tmp_path)


def test_data_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        load_dataset("mnist", "test")


def test_bundled_sample_stands_in_for_a_missing_dataset(tmp_path, mnist_test):
    path = write_sample("mnist", tmp_path / "s.safetensors", per_class=7)
    images, labels, indices, source = load_test_images("mnist", root=tmp_path / "empty", sample=path)
    assert images.shape == (70, 1, 28, 28) and torch.bincount(labels).tolist() == [7] * 10
    assert "bundled sample" in source
    # uint8 round trip: the sample is the test split's pixels at those indices, to 1/255.
    torch.testing.assert_close(images, mnist_test[0][indices], atol=0.5 / 255, rtol=0)
    assert torch.equal(labels, mnist_test[1][indices])
    _, _, all_indices, source = load_test_images("mnist", sample=path)  # on disk: the whole split
    assert len(all_indices) == 10_000 and "test split" in source
    with pytest.raises(DatasetNotFoundError):
        load_test_images("mnist", root=tmp_path / "empty", sample=tmp_path / "nope.safetensors")


def test_shipped_samples_are_balanced():
    for name in ("mnist", "fashion"):
        sample = Path(__file__).parents[1] / f"pretrained/samples/{name}-test-sample.safetensors"
        _, labels, _, source = load_test_images(name, root="/nonexistent", sample=sample)
        assert torch.bincount(labels).tolist() == [200] * 10 and "bundled" in source


# ---------------------------------------------------------------- training


def test_short_training_lowers_the_test_loss(trained_vae, mnist_test):
    config = TrainConfig(latent_dim=8, hidden=[200])
    x, y = mnist_test[0][:2000], mnist_test[1][:2000]
    torch.manual_seed(0)
    untrained = evaluate_loss(build_model(vars(config)), x, y, config)["loss"]
    trained = evaluate_loss(trained_vae.model, x, y, config)["loss"]
    assert trained < untrained - 200  # about 545 -> 170 nats
    assert trained_vae.n_train + trained_vae.n_val == load_dataset("mnist", "train")[0].shape[0]
    assert [h["epoch"] for h in trained_vae.history] == [1, 2, 3]


def test_training_is_reproducible_and_reports_progress():
    data = load_dataset("mnist", "test")
    data = (data[0][:600], data[1][:600])
    events = []
    config = TrainConfig(model="cvae", latent_dim=2, hidden=[64], epochs=2, batch_size=100, device="cpu")
    a = train(config, events.append, data=data)
    b = train(config, data=data)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    per_step = [e for e in events if e.train is None]
    per_epoch = [e for e in events if e.train is not None]
    assert len(per_step) == 2 * 6 and len(per_epoch) == 2
    assert set(per_epoch[-1].val) == {"recon", "kl", "loss", "kl_per_dim"}  # each dimension's KL: the panel's heat map
    assert len(per_epoch[-1].val["kl_per_dim"]) == 2


def test_bfloat16_autocast_trains_as_well_as_float32():
    """--amp changes the arithmetic of the training steps only: the loss falls as in float32, and the
    saved model holds float32 weights."""
    images, labels = load_dataset("mnist", "train")
    data = (images[:2000], labels[:2000])
    config = TrainConfig(latent_dim=8, hidden=[200], epochs=3, device="cpu")
    fp32, bf16 = train(config, data=data), train(dataclasses.replace(config, amp=True), data=data)
    losses = [h["val_loss"] for h in bf16.history]
    assert losses[-1] < losses[0] - 10
    assert abs(losses[-1] - fp32.history[-1]["val_loss"]) < 3.0
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())


def test_stop_event_ends_early_with_a_usable_model():
    data = load_dataset("mnist", "test")
    stop = threading.Event()

    def stop_at_third_step(p):
        if p.step == 3:
            stop.set()

    result = train(TrainConfig(epochs=50, device="cpu"), stop_at_third_step, stop, data=data)
    assert result.stopped and len(result.history) == 1 and result.best_epoch == 1
    assert torch.isfinite(result.model.sample(2)).all()


def test_nan_loss_raises_training_diverged():
    images, labels = load_dataset("mnist", "test")
    images = images[:300].clone()
    images[5, 0, 3, 3] = float("nan")
    with pytest.raises(TrainingDiverged, match="learning rate"):
        train(TrainConfig(epochs=1, device="cpu"), data=(images, labels[:300]))


# ---------------------------------------------------------------- checkpoints and evaluation


def _saved(tmp_path, model="vae"):
    config = vars(TrainConfig(model=model, latent_dim=3, hidden=[32]))
    net = build_model(config)
    return save_checkpoint(net, config, {"train": {"epochs": 1}}, tmp_path / "ckpt"), net


def test_checkpoint_round_trip(tmp_path):
    for kind in ("vae", "conv", "cvae"):
        folder, net = _saved(tmp_path / kind, kind)
        model, config, metrics = load_checkpoint(folder)
        assert config["model"] == kind and metrics == {"train": {"epochs": 1}}
        for k, v in net.state_dict().items():
            assert torch.equal(v, model.state_dict()[k])
        assert not list(folder.glob("*.tmp"))


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_folder", "no checkpoint folder"),
        ("no_weights", "model.safetensors is missing"),
        ("no_config", "config.json is missing"),
        ("truncated", "truncated or not a safetensors"),
        ("garbage", "truncated or not a safetensors"),
        ("bad_json", "not valid JSON"),
        ("json_list", "JSON object"),
        ("unknown_model", "does not describe a model"),
        ("wrong_shape", "has shape"),
        ("missing_tensor", "missing tensors"),
    ],
)
def test_broken_checkpoints_raise_clear_errors(tmp_path, breakage, message):
    folder, net = _saved(tmp_path)
    weights, config = folder / "model.safetensors", folder / "config.json"
    cfg = json.loads(config.read_text())
    if breakage == "no_folder":
        folder = tmp_path / "nowhere"
    elif breakage == "no_weights":
        weights.unlink()
    elif breakage == "no_config":
        config.unlink()
    elif breakage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif breakage == "garbage":
        weights.write_bytes(b"\x80\x04 this is a pickle, not safetensors")
    elif breakage == "bad_json":
        config.write_text("{latent_dim: 3")
    elif breakage == "json_list":
        config.write_text("[1, 2]")
    elif breakage == "unknown_model":
        config.write_text(json.dumps({**cfg, "model": "gan"}))
    elif breakage == "wrong_shape":
        config.write_text(json.dumps({**cfg, "latent_dim": 4}))
    elif breakage == "missing_tensor":
        from safetensors.torch import save_file
        state = {k: v for k, v in net.state_dict().items() if k != "fc_mu.bias"}
        save_file(state, str(weights))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


def test_evaluate_cli_prints_json(tmp_path, capsys, trained_vae):
    folder = save_checkpoint(trained_vae.model, vars(TrainConfig(latent_dim=8, hidden=[200])), {}, tmp_path / "m")
    evaluate_main([str(folder), "--k", "5", "--n-images", "300", "--json", "--device", "cpu"])
    out = json.loads(capsys.readouterr().out)
    for key in ("dataset", "split", "n_images", "likelihood", "neg_elbo", "recon", "kl", "iwae_nll", "k"):
        assert key in out
    assert out["n_images"] == 300 and out["k"] == 5 and out["split"] == "test"
    assert out["neg_elbo"] == pytest.approx(out["recon"] + out["kl"], abs=0.01)
    assert out["iwae_nll"] < out["neg_elbo"]


def test_evaluate_is_seeded(trained_vae, mnist_test):
    x, y = mnist_test[0][:100], mnist_test[1][:100]
    assert evaluate(trained_vae.model, x, y, k=10) == evaluate(trained_vae.model, x, y, k=10)


# ---------------------------------------------------------------- latent tools


def test_grid_coordinates():
    lin = grid_coordinates(5, 2.0, "linear")
    torch.testing.assert_close(lin, torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]))
    q = grid_coordinates(5, 2.0, "quantile")
    torch.testing.assert_close(q[[0, -1]], torch.tensor([-2.0, 2.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(q, -q.flip(0), atol=1e-5, rtol=0)
    mass = torch.diff(Normal(0.0, 1.0).cdf(q))  # equal prior mass between neighbours
    torch.testing.assert_close(mass, mass.mean().expand(4), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        grid_coordinates(1)
    with pytest.raises(ValueError):
        grid_coordinates(5, spacing="log")


def test_manifold_grid_orientation_and_base():
    torch.manual_seed(0)
    model = VAE(latent_dim=4, hidden=(16,))
    base = torch.tensor([0.0, 0.0, 0.7, -0.3])
    grid = manifold_grid(model, n=3, span=1.0, spacing="linear", dims=(2, 0), base=base)
    assert grid.shape == (9, 1, 28, 28)
    # Top-left cell: smallest horizontal (dim 2) and largest vertical (dim 0) value around the plane's
    # centre base[2], base[0]; dims 1 and 3 from base.
    expected = decode_images(model, torch.tensor([[1.0, 0.0, 0.7 - 1.0, -0.3]]))
    torch.testing.assert_close(grid[0], expected[0])
    with pytest.raises(ValueError, match="dims"):
        manifold_grid(model, dims=(1, 1))
    img = tile(grid, nrow=3, padding=0, scale=2)
    assert img.shape == (168, 168) and img.dtype.name == "uint8"
    assert (img[::2, ::2] == img[1::2, 1::2]).all()  # nearest-neighbour: each pixel a 2x2 block


def test_vae_never_imports_streamlit_or_plotly():
    """Every module of the package, found by walking it, imported in a fresh interpreter."""
    code = ("import importlib, pkgutil, sys, vae\n"
            "names = [m.name for m in pkgutil.iter_modules(vae.__path__, 'vae.')]\n"
            "assert len(names) >= 12, names\n"
            "for name in names: importlib.import_module(name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_command_line_is_built_from_the_config_fields():
    """Issue 24, item 2: one table. Every TrainConfig field has its option (or is marked cli=False),
    the parsed defaults are TrainConfig's, and a changed option reaches its field."""
    import argparse
    import dataclasses

    from vae.train import add_config_arguments, config_from_arguments

    p = argparse.ArgumentParser()
    add_config_arguments(p)
    dests = {a.dest for a in p._actions}
    for f in dataclasses.fields(TrainConfig):
        assert (f.name in dests) == f.metadata.get("cli", True), f.name
    assert config_from_arguments(p.parse_args([])) == TrainConfig()
    a = p.parse_args(["--model", "cvae_class_prior", "--k", "7", "--objective", "iwae", "--amp", "--hidden", "64",
                      "32", "--conv-channels", "8", "16", "--beta", "1"])
    c = config_from_arguments(a)
    assert (c.model, c.iwae_k, c.objective, c.amp, c.hidden, c.channels) == ("cvae_class_prior", 7, "iwae", True,
                                                                              [64, 32], [8, 16])


def test_compiling_covers_the_whole_objective_iwae_included(monkeypatch, mnist_test):
    """Issue 24, item 2: the loss lived outside forward, so `--compile --objective iwae` compiled nothing
    (iwae_loss called encode and decode on the compiled wrapper, which fell through to the eager
    module). Now the Objective is compiled: its forward is a captured graph. (The eager backend, to
    check what Dynamo captures without waiting for Inductor.)"""
    import torch._dynamo
    from torch._dynamo.utils import counters

    import vae.train as vt

    real = torch.compile
    monkeypatch.setattr(vt.torch, "compile", lambda module: real(module, backend="eager"))
    torch._dynamo.reset()
    counters.clear()
    config = TrainConfig(latent_dim=2, hidden=[16], epochs=1, batch_size=100, device="cpu", objective="iwae",
                         iwae_k=3, compile=True)
    train(config, data=(mnist_test[0][:300], mnist_test[1][:300]))
    assert counters["stats"]["unique_graphs"] >= 1
    torch._dynamo.reset()
