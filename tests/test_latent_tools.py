"""Unit tests of the latent tools behind the sliders and interpolation pages: numbers, not just shapes."""

import math
from pathlib import Path

import pytest
import torch

from vae.checkpoint import load_checkpoint
from vae.data import load_test_images
from vae.latent import (ACTIVE_KL_THRESHOLD, decode_images, encode_images, grid_coordinates, interpolate,
                        kl_per_dimension, lerp, rank_dimensions, slerp, traversal_grid)
from vae.losses import elbo, kl_divergence
from vae.models import CVAE, VAE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_vae():
    torch.manual_seed(0)
    return VAE(latent_dim=5, hidden=(32,)).eval()


@pytest.fixture(scope="module")
def shipped_20d():
    """The shipped 20-d ConvVAE and 1,000 MNIST test images (data root, else the bundled sample)."""
    model, _, _ = load_checkpoint(ROOT / "pretrained" / "mnist-vae-20d", "cpu")
    images, labels, _, _ = load_test_images("mnist", sample=ROOT / "pretrained/samples/mnist-test-sample.safetensors")
    return model.eval(), images[:1000], labels[:1000]


# ---------------------------------------------------------------- interpolation


def test_slerp_and_lerp_hit_both_endpoints_exactly():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        z0, z1 = torch.randn(20, generator=g) * 3, torch.randn(20, generator=g)
        for method in ("linear", "slerp"):
            path = interpolate(z0, z1, 7, method)
            assert path.shape == (7, 20)
            assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)


def test_slerp_follows_the_great_circle():
    # A quarter circle of radius 2: the midpoint is at 45 degrees, on the circle.
    z0, z1 = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    path = interpolate(z0, z1, 3, "slerp")
    torch.testing.assert_close(path[1], torch.tensor([math.sqrt(2), math.sqrt(2)]))
    torch.testing.assert_close(interpolate(z0, z1, 3, "linear")[1], torch.tensor([1.0, 1.0]))
    # Equal norms stay equal along the arc, and consecutive points are equal angles apart.
    g = torch.Generator().manual_seed(1)
    a = torch.randn(16, generator=g, dtype=torch.float64)
    b = torch.randn(16, generator=g, dtype=torch.float64)
    b = b * a.norm() / b.norm()
    path = slerp(a, b, torch.linspace(0, 1, 9, dtype=torch.float64))
    torch.testing.assert_close(path.norm(dim=1), a.norm().expand(9))
    cos = torch.nn.functional.cosine_similarity(path[:-1], path[1:], dim=1)
    total = torch.arccos(torch.dot(a, b) / (a.norm() * b.norm()))
    torch.testing.assert_close(torch.arccos(cos.clamp(-1, 1)), (total / 8).expand(8))
    # The straight line between the same two points dips inside the sphere; the arc does not.
    assert interpolate(a, b, 9, "linear").norm(dim=1).min() < 0.8 * a.norm()


def test_slerp_norm_goes_linearly_between_unequal_norms():
    # Nearly opposite directions, norms 3 and 1: the norm still goes 3 -> 1 in equal steps.
    z0 = torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)
    z1 = torch.tensor([-0.999, 0.0447, 0.0], dtype=torch.float64)
    z1 = z1 / z1.norm()
    path = slerp(z0, z1, torch.linspace(0, 1, 5, dtype=torch.float64))
    torch.testing.assert_close(path.norm(dim=1), torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0], dtype=torch.float64))
    # Its direction turns through Omega at constant angular speed.
    cos = torch.nn.functional.cosine_similarity(path[:-1], path[1:], dim=1)
    total = torch.arccos(torch.dot(z0, z1) / 3.0)
    torch.testing.assert_close(torch.arccos(cos.clamp(-1, 1)), (total / 4).expand(4))


def test_slerp_falls_back_to_lerp_where_the_angle_is_undefined():
    t = torch.linspace(0, 1, 5)
    z = torch.tensor([1.0, -2.0, 0.5])
    torch.testing.assert_close(slerp(torch.zeros(3), z, t), lerp(torch.zeros(3), z, t))  # zero vector
    torch.testing.assert_close(slerp(z, 3 * z, t), lerp(z, 3 * z, t))  # parallel
    assert torch.isfinite(slerp(z, -z, t)).all()  # opposite: any great circle would do


def test_interpolate_rejects_bad_arguments():
    z = torch.zeros(4)
    with pytest.raises(ValueError, match="n >= 2"):
        interpolate(z, z, 1)
    with pytest.raises(ValueError, match="unknown interpolation"):
        interpolate(z, z, 5, "cubic")
    with pytest.raises(ValueError, match="one length"):
        interpolate(z, torch.zeros(3), 5)


# ---------------------------------------------------------------- per-dimension KL and active units


def test_kl_per_dimension_sums_to_the_total_kl(small_vae):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(37, 1, 28, 28, generator=g)
    kl = kl_per_dimension(small_vae, x, batch_size=10)  # batches of 10, 10, 10, 7
    assert kl.shape == (5,) and kl.dtype == torch.float64 and (kl >= 0).all()
    with torch.no_grad():
        mu, logvar = small_vae.encode(x)
        total = elbo(small_vae.decode(mu), x, mu, logvar).kl  # the ELBO's KL term, nats per image
    torch.testing.assert_close(kl.sum(), total.double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(kl, kl_divergence(mu, logvar, per_dim=True).double().mean(0))
    torch.testing.assert_close(kl, kl_per_dimension(small_vae, x, batch_size=1000))
    with pytest.raises(ValueError, match="at least one image"):
        kl_per_dimension(small_vae, x[:0])


def test_encode_images_needs_labels_for_a_cvae():
    torch.manual_seed(3)
    model = CVAE(latent_dim=2, hidden=(16,)).eval()
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    mu, logvar = encode_images(model, x, y, batch_size=4)
    torch.testing.assert_close(mu, model.encode(x, y)[0].detach())
    with pytest.raises(ValueError, match="labels"):
        encode_images(model, x)


def test_rank_dimensions_orders_by_kl_and_splits_at_the_threshold():
    kl = [0.5, 0.001, 2.0, 0.0099, 0.01, 0.5]
    active, inactive = rank_dimensions(kl)
    assert active == [2, 0, 5, 4] and inactive == [3, 1]
    assert ACTIVE_KL_THRESHOLD == 0.01
    assert rank_dimensions(torch.tensor(kl), threshold=1.0) == ([2], [0, 5, 4, 3, 1])


def test_shipped_20d_model_has_inactive_dimensions_whose_traversals_change_nothing(shipped_20d):
    model, images, _ = shipped_20d
    kl = kl_per_dimension(model, images)
    active, inactive = rank_dimensions(kl)
    assert len(active) + len(inactive) == 20 and 1 <= len(inactive) <= 10
    assert kl[inactive].max() < ACTIVE_KL_THRESHOLD < 0.1 < kl[active].min()
    z = encode_images(model, images[:1])[0][0]
    grid = traversal_grid(model, z, active + inactive, n=9, span=3.0).view(20, 9, -1)
    change = (grid - grid[:, 4:5]).abs().amax(dim=(1, 2))  # largest pixel change along each row
    assert change[: len(active)].min() > 0.2  # an active dimension redraws the digit
    assert change[len(active) :].max() < 0.1  # an inactive one leaves it as it is


# ---------------------------------------------------------------- traversals


def test_traversal_rows_vary_one_dimension_each(small_vae):
    z = torch.tensor([0.3, -0.2, 1.0, 0.0, 0.7])
    grid = traversal_grid(small_vae, z, [2, 0], n=5, span=2.0)
    assert grid.shape == (10, 1, 28, 28)
    values = grid_coordinates(5, 2.0, "linear")  # -2, -1, 0, 1, 2
    # Row 1 (dimension 0), column 3: z with z[0] = 1.
    expected = decode_images(small_vae, torch.tensor([[1.0, -0.2, 1.0, 0.0, 0.7]]))
    torch.testing.assert_close(grid[5 + 3], expected[0])
    # Row 0 (dimension 2), column 0: z with z[2] = -2.
    torch.testing.assert_close(grid[0], decode_images(small_vae, torch.tensor([[0.3, -0.2, -2.0, 0.0, 0.7]]))[0])
    assert values[3] == 1.0
    assert traversal_grid(small_vae, z, [], n=5).shape == (0, 1, 28, 28)
    with pytest.raises(ValueError, match="latent_dim=5"):
        traversal_grid(small_vae, z, [5])
