"""Attribute directions and what each dimension tracks (vae.attributes), on known answers and shipped models.

The synthetic case: codes mu = E + a u (m - mean m) / std m, with E Gaussian noise orthogonal to a unit
vector u. Along u the code moves a / std m z units per unit of m and nothing else in the code knows m,
so every estimator should return d = u and scale = a / std m:
- regression: (m - mean) / std = (mu . u) / a exactly, so w = u / a and 1 / (|w| std) = a / std;
- decile: the deciles' mean codes differ by a u (their mean standardized m difference), and their mean m
  by std times the same, so |delta mu| / delta m = a / std;
- partial: the code's regression on the standardized m (and independent others) has coefficient a u.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vae import attributes as A
from vae.morphometry import MEASUREMENTS, load_measurements, measure

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_20D = ROOT / "pretrained/mnist-vae-20d"
SAMPLE = ROOT / "pretrained/samples/mnist-test-sample.safetensors"


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    n, d, a = 4000, 6, 1.5
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    noise = rng.normal(size=(n, d))
    noise -= np.outer(noise @ u, u)  # orthogonal to u
    values = {name: rng.normal(5.0, 2.0, n) for name in MEASUREMENTS}
    values["thickness"] = rng.normal(2.5, 0.6, n)
    mu = noise + a * np.outer((values["thickness"] - values["thickness"].mean()) / values["thickness"].std(), u)
    labels = rng.integers(0, 10, n)
    return mu, values, labels, u, a / values["thickness"].std()


@pytest.mark.parametrize("method", A.METHODS)
def test_direction_recovers_a_known_thickness_axis(synthetic, method):
    mu, values, labels, u, scale = synthetic
    attrs = A.compute_attributes(mu, values, method, labels=labels)
    d = attrs.directions["thickness"].double().numpy()
    assert abs(np.linalg.norm(d) - 1) < 1e-5
    assert d @ u > 0.95  # cosine, and pointing where thickness grows
    assert attrs.scale["thickness"] == pytest.approx(scale, rel=0.05)
    assert attrs.std["thickness"] == pytest.approx(values["thickness"].std(), rel=1e-6)


def test_direction_errors():
    with pytest.raises(ValueError, match="method"):
        A.fit_direction(np.zeros((50, 2)), np.arange(50.0), "nope")
    with pytest.raises(ValueError, match="constant"):
        A.fit_direction(np.random.default_rng(0).normal(size=(50, 2)), np.ones(50))


def test_dimension_label_names_the_tracked_measurement():
    rng = np.random.default_rng(1)
    n = 2000
    values = {name: rng.normal(size=n) for name in MEASUREMENTS}
    mu = np.stack([rng.normal(size=n), values["slant"] + 0.3 * rng.normal(size=n), -values["width"]], axis=1)
    labels = rng.integers(0, 10, n)
    report = A.dimension_report(mu, labels, values)
    assert np.asarray(report["spearman_abs"]).shape == (3, 6)
    assert len(report["class_mi_nats"]) == 3
    assert A.dimension_label(report, 0) is None  # noise tracks nothing
    assert A.dimension_label(report, 1).startswith("slant, rho = 0.9")
    assert A.dimension_label(report, 2) == "width, rho = -1.00"


def test_move():
    z = torch.zeros(3, 4)
    d = torch.tensor([0.0, 1.0, 0.0, 0.0])
    assert torch.equal(A.move(z, d, 2.0)[:, 1], torch.full((3,), 2.0))
    line = A.move(torch.zeros(4), d, torch.linspace(-1, 1, 5))
    assert line.shape == (5, 4) and torch.allclose(line[:, 1], torch.linspace(-1, 1, 5))


def test_fashion_models_are_refused():
    with pytest.raises(A.AttributesError, match="digits"):
        A.analyse(ROOT / "pretrained/fashion-vae-2d", disentanglement=False, classifier=object())


@pytest.fixture(scope="module")
def shipped():
    attrs = A.load_attributes(SHIPPED_20D)
    if attrs is None:
        pytest.skip("mnist-vae-20d has no attributes.safetensors yet (python -m vae.attributes --all --write)")
    return attrs


def test_shipped_attributes_load_unit_norm_and_fresh(shipped):
    assert shipped.names == list(MEASUREMENTS)
    for name, d in shipped.directions.items():
        assert d.dtype == torch.float32 and d.shape == (20,)
        assert abs(float(d.norm()) - 1) < 1e-5
        assert shipped.scale[name] > 0 and shipped.std[name] > 0
    assert shipped.method == A.DEFAULT_METHOD
    assert not shipped.is_stale(SHIPPED_20D)
    assert shipped.weights_sha256 == A.weights_sha256(SHIPPED_20D)


def test_shipped_thickness_direction_thickens(shipped):
    from safetensors.torch import load_file

    from vae.checkpoint import load_checkpoint
    from vae.latent import encode_images

    model, _, _ = load_checkpoint(SHIPPED_20D)
    t = load_file(str(SAMPLE))
    keep = slice(0, 40)
    images = t["images"][keep].unsqueeze(1).float() / 255
    labels, indices = t["labels"][keep], t["indices"][keep]
    mu, _ = encode_images(model, images)
    measured = load_measurements("mnist", "test")
    eligible = np.all([np.isfinite(measured[n][indices.numpy()]) for n in MEASUREMENTS], axis=0)
    score = A.traversal_score(model, shipped, mu, labels, measure, None, n_codes=6, n_steps=5,
                              names=("thickness",), eligible=eligible)
    e = score["per_attribute"]["thickness"]
    assert e["rho"] > 0.5
    assert e["calibration"] > 0  # the measured thickness grows with t
    assert e["class_kept"] is None  # no classifier given
