"""Known answers for MIG, SAP, DCI, the MI matrix and |Spearman rho| (vae.disentanglement).

Synthetic factors from a seeded Generator: a 10-class label and four independent U(0, 1) factors, the
shape of the test split's class, thickness, slant, width and height.

Why MIG > 0.9 for the factors themselves: a code dimension equal to its factor is binned exactly as the
factor is, so I(c_j(k); v_k) = H(v_k) (log 20 = 3.0 nats for a uniform factor, log 10 = 2.3 for the class).
The runner-up is an independent dimension whose plug-in MI is only its upward bias, about
(B_c - 1)(B_v - 1) / (2N) = 19 * 19 / 6000 = 0.06 nats at N = 3,000, so the gap / H is about 0.98;
0.9 leaves room for the sampling noise of that bias.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from vae import disentanglement as dis

N = 3000


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(size=(N, 4))
    factors = {
        "class": rng.integers(0, 10, N),
        "thickness": uniform[:, 0],
        "slant": uniform[:, 1],
        "width": uniform[:, 2],
        "height": uniform[:, 3],
    }
    return rng, factors, np.column_stack(list(factors.values())).astype(float)


@pytest.fixture(scope="module")
def self_scores(data):
    _, factors, matrix = data
    return dis.scores(matrix, factors, {"class"})


@pytest.fixture(scope="module")
def noise_scores(data):
    rng, factors, _ = data
    return dis.scores(rng.normal(size=(N, 5)), factors, {"class"})


def test_discretize_is_disentanglement_lib_histogram_partition():
    x = np.random.default_rng(1).normal(size=1000)
    dlib = np.digitize(x, np.histogram(x, 20)[1][:-1]) - 1  # _histogram_discretize, numbered from 0
    np.testing.assert_array_equal(dis.discretize(x, 20), dlib)
    assert dis.discretize(x, 20).min() == 0 and dis.discretize(x, 20).max() == 19
    counts = np.bincount(dis.discretize(x, 10, strategy="quantile"))
    assert counts.min() >= 99 and counts.max() <= 101
    np.testing.assert_array_equal(dis.discretize(np.full(5, 3.0)), 0)
    two = np.column_stack([x, -x])
    np.testing.assert_array_equal(dis.discretize(two)[:, 0], dis.discretize(x))


def test_factor_entropy_and_mi_with_the_class(data, self_scores):
    _, factors, _ = data
    h = dis.factor_entropy(factors, discrete={"class"})
    np.testing.assert_allclose(h, [np.log(10)] + [np.log(20)] * 4, atol=0.01)
    mi = np.array(self_scores["mutual_information"]["nats"])
    assert mi.shape == (5, 5)
    np.testing.assert_allclose(np.diag(mi), h, rtol=1e-12)  # a dimension equal to its factor: I = H
    assert mi[1:, 0].max() < 0.05  # the other dimensions know nothing of the class


def test_factors_themselves_score_near_one(self_scores):
    assert self_scores["mig"]["score"] > 0.9
    assert all(v > 0.9 for v in self_scores["mig"]["per_factor"].values())
    assert self_scores["sap"]["score"] > 0.9
    dci = self_scores["dci"]
    assert dci["disentanglement"] > 0.9
    assert dci["completeness"] > 0.9
    assert dci["informativeness"] > 0.95
    assert self_scores["mig"]["top_dims"]["slant"][0] == 2


def test_noise_scores_near_zero(noise_scores):
    assert noise_scores["mig"]["score"] < 0.05
    assert noise_scores["sap"]["score"] < 0.05
    dci = noise_scores["dci"]
    assert dci["disentanglement"] < 0.1
    assert abs(dci["informativeness"]) < 0.08
    assert all(abs(f["informativeness"]) < 0.12 for f in dci["per_factor"].values())


def test_rotation_lowers_mig_not_informativeness(data):
    _, _, matrix = data
    factors = matrix[:, 1:3]  # two independent U(0, 1) factors
    angle = np.pi / 4
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rotated = factors @ rotation.T
    plain_mig, rotated_mig = dis.mig(factors, factors)["score"], dis.mig(rotated, factors)["score"]
    plain_dci, rotated_dci = dis.dci(factors, factors), dis.dci(rotated, factors)
    assert plain_mig > 0.9 and rotated_mig < 0.1  # each factor is shared equally by the two dimensions
    assert abs(plain_dci["informativeness"] - rotated_dci["informativeness"]) < 0.05
    assert rotated_dci["disentanglement"] < plain_dci["disentanglement"] - 0.5


def test_duplicated_factor_lowers_mig_and_completeness(data):
    _, _, matrix = data
    factors = matrix[:, 1:4]
    duplicated = np.column_stack([factors[:, 0], factors[:, 0], factors[:, 1], factors[:, 2]])
    plain, twice = dis.mig(factors, factors), dis.mig(duplicated, factors)
    assert twice["per_factor"]["factor_0"] < 0.02  # two dimensions hold it equally: no gap
    assert twice["score"] < plain["score"] - 0.25
    plain_dci, twice_dci = dis.dci(factors, factors), dis.dci(duplicated, factors)
    # the importance of factor_0 splits about 50/50: C_0 = 1 - log 2 / log 4 = 0.5
    assert twice_dci["per_factor"]["factor_0"]["completeness"] < 0.65
    assert twice_dci["completeness"] < plain_dci["completeness"] - 0.1
    assert twice_dci["disentanglement"] > 0.9  # each dimension still serves one factor


def test_spearman_of_monotone_transforms_is_one(data):
    rng, _, matrix = data
    codes = matrix[:, 1:3]
    measurements = {"exp": np.exp(3 * codes[:, 0]), "neg_cube": -(codes[:, 1] ** 3), "noise": rng.normal(size=N)}
    rho = dis.spearman_matrix(codes, measurements)
    assert rho.shape == (2, 3)
    np.testing.assert_allclose([rho[0, 0], rho[1, 1]], 1.0, atol=1e-12)
    assert rho[0, 1] < 0.1 and rho[:, 2].max() < 0.1
    reference = spearmanr(codes[:, 0], measurements["noise"]).statistic
    np.testing.assert_allclose(rho[0, 2], abs(reference), rtol=1e-12)
    with_nan = dict(measurements, exp=np.where(np.arange(N) % 7 == 0, np.nan, measurements["exp"]))
    np.testing.assert_allclose(dis.spearman_matrix(codes, with_nan)[0, 0], 1.0, atol=1e-12)


def test_constant_dimension_is_excluded_cleanly(data):
    _, factors, matrix = data
    n = 1000  # a third of the images: enough here, and the forests are the slow part
    factors = {name: values[:n] for name, values in factors.items()}
    codes = np.column_stack([matrix[:n], np.zeros(n)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = dis.scores(codes, factors, {"class"})
        json.dumps(result, allow_nan=False)  # JSON-ready and NaN-free
    assert result["protocol"]["constant_dims"] == [5]
    assert np.array(result["mutual_information"]["nats"])[5].max() == 0
    assert np.array(result["dci"]["importance"])[5].max() == 0
    assert np.array(result["spearman_abs"]["matrix"])[5].max() == 0
    assert result["mig"]["score"] > 0.85 and result["dci"]["disentanglement"] > 0.9  # bias 19 * 19 / 2000 nats


def test_nan_factor_images_are_dropped(data):
    _, factors, matrix = data
    with_nan = dict(factors, slant=np.where(np.arange(N) < 100, np.nan, factors["slant"]))
    result = dis.mig(matrix, with_nan, {"class"})
    assert result["n_images"] == N - 100 and result["score"] > 0.9


def test_errors_say_what_is_wrong(data):
    _, factors, matrix = data
    with pytest.raises(ValueError, match="images but the factors"):
        dis.mig(matrix[:-1], factors, {"class"})
    with pytest.raises(ValueError, match="at least 2"):
        dis.mutual_information(matrix[:1], matrix[:1])
    bad = matrix.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dis.scores(bad, factors, {"class"})
    with pytest.raises(ValueError, match="one value"):
        dis.mig(matrix, dict(factors, width=np.ones(N)), {"class"})
    with pytest.raises(ValueError, match="not a factor"):
        dis.mig(matrix, factors, {"digit"})
    with pytest.raises(ValueError, match="different lengths"):
        dis.scores(matrix, dict(factors, width=factors["width"][:-1]), {"class"})
