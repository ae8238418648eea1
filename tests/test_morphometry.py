"""vae.morphometry against known answers (Castro et al., 2019, Morpho-MNIST, Sec. 2.1).

Known shapes are drawn at 8x (a pixel is inside or outside the shape at its centre) and averaged
down to 28x28, the way an anti-aliased digit is; then their thickness, slant, width and height are
known. The tests measure a handful of images, never a whole split, and time nothing.
"""

import warnings

import numpy as np
import pytest
from skimage.morphology import dilation, disk, erosion

from vae.data import load_dataset
from vae.morphometry import (MEASUREMENTS, UNITS, MeasurementsNotFoundError, load_measurements,
                             load_measurements_metadata, measure)

SUPER = 8  # drawing resolution of the known shapes, per 28x28 pixel


def render(inside, size: int = 28) -> np.ndarray:
    """(size, size) float in [0, 1]: the fraction of each pixel's SUPER x SUPER sub-pixels whose centre
    (x right, y down, in pixels of the small image) satisfies ``inside(x, y)``."""
    c = (np.arange(size * SUPER) + 0.5) / SUPER
    y, x = np.meshgrid(c, c, indexing="ij")
    return inside(x, y).astype(float).reshape(size, SUPER, size, SUPER).mean(axis=(1, 3))


def capsule(x0, y0, x1, y1, width):
    """A stroke of this width (px) along the segment (x0, y0)-(x1, y1), with round ends."""
    def inside(x, y):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        return np.hypot(x - x0 - t * dx, y - y0 - t * dy) <= width / 2
    return inside


def ring(radius, width):
    def inside(x, y):
        return np.abs(np.hypot(x - 14, y - 14) - radius) <= width / 2
    return inside


def sheared(inside, s, yc=14.0):
    """``inside`` under the horizontal shear x -> x + s (yc - y): the top leans right for s > 0."""
    return lambda x, y: inside(x - s * (yc - y), y)


@pytest.fixture(scope="module")
def mnist_test():
    images, labels = load_dataset("mnist", "test")
    return images[:200].numpy(), labels[:200].numpy()


STROKES = {
    "vertical": lambda w: capsule(14, 5, 14, 23, w),
    "horizontal": lambda w: capsule(5, 14, 23, 14, w),
    "slope 4/3": lambda w: capsule(8, 6, 20, 22, w),
    "steep": lambda w: capsule(11, 5, 17, 23, w),
    "off the pixel grid": lambda w: capsule(14.3, 5, 14.3, 23, w),
    "ring": lambda w: ring(8, w),
}


@pytest.mark.parametrize("width", [1.5, 2, 2.5, 3, 3.5, 4, 5, 6])
def test_thickness_of_a_stroke_of_known_width(width):
    shapes = dict(STROKES)
    if width >= 2:  # a 1.5 px stroke at 45 degrees reads 1.79 px (+20%): the 4x grid is too coarse there
        shapes["45 degrees"] = lambda w: capsule(7, 7, 21, 21, w)
    images = np.stack([render(make(width)) for make in shapes.values()])
    thickness = measure(images)["thickness"]
    errors = dict(zip(shapes, np.round((thickness - width) / width, 3)))
    assert np.all(np.abs(thickness - width) <= 0.10 * width), errors


@pytest.mark.parametrize("s", [-0.5, -0.2, 0.2, 0.4, 0.6])
def test_slant_of_a_sheared_shape_is_arctan_of_the_shear(s):
    bar = lambda x, y: (np.abs(x - 14) <= 2) & (np.abs(y - 14) <= 8)  # upright: slant 0
    ellipse = lambda x, y: ((x - 14) / 4) ** 2 + ((y - 14) / 9) ** 2 <= 1
    images = np.stack([render(sheared(shape, s)) for shape in (bar, ellipse)])
    m = measure(images)
    np.testing.assert_allclose(m["slant"], np.arctan(s), atol=0.03)
    # The slant-corrected bounding parallelogram gives the bar's upright size, 4 x 16 px; the width
    # to within 0.6 px, as the sheared edges are staircases of upsampled pixels.
    np.testing.assert_allclose(m["height"][0], 16.0, atol=0.26)
    np.testing.assert_allclose(m["width"][0], 4.0, atol=0.6)


def test_slant_sign_and_shear_of_real_digits(mnist_test):
    """Shearing a digit by s adds s to tan(slant) (the shear is exact on the moments)."""
    from scipy import ndimage

    images = mnist_test[0][:8, 0]
    s = 0.3
    # output (row r, column c) samples input (r, c - s (yc - r)): x -> x + s (yc - y), yc = 13.5
    matrix = np.array([[1.0, 0.0], [s, 1.0]])
    offset = np.array([0.0, -s * 13.5])
    out = np.stack([ndimage.affine_transform(im, matrix, offset=offset, order=1) for im in images])
    before, after = measure(images)["slant"], measure(out)["slant"]
    np.testing.assert_allclose(after, np.arctan(np.tan(before) + s), atol=0.03)


def test_thickening_raises_thickness_and_thinning_lowers_it(mnist_test):
    images = mnist_test[0][:10, 0]
    thick = np.stack([dilation(im, disk(1)) for im in images])
    thin = np.stack([erosion(im, disk(1)) for im in images])
    base = measure(images)["thickness"]
    assert np.all(measure(thick)["thickness"] > base)
    assert np.all(measure(thin)["thickness"] < base)


def test_a_shifted_digit_measures_the_same(mnist_test):
    images = mnist_test[0][:20, 0]
    room = (images[:, :, -3:].max(axis=(1, 2)) == 0) & (images[:, -3:, :].max(axis=(1, 2)) == 0)
    images = images[room]
    assert len(images) >= 10
    shifted = np.zeros_like(images)
    shifted[:, 3:, 3:] = images[:, :-3, :-3]  # 3 px right and 3 px down
    a, b = measure(images), measure(shifted)
    for name in MEASUREMENTS:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-9, atol=1e-9, err_msg=name)


def test_blank_images_give_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = measure(np.zeros((2, 1, 28, 28), np.float32))
    assert set(m) == set(MEASUREMENTS) == set(UNITS)
    for name in MEASUREMENTS:
        assert m[name].shape == (2,) and np.all(np.isnan(m[name])), name


def test_uint8_input_equals_float_input(mnist_test):
    images = mnist_test[0][:10]
    as_uint8 = np.round(images * 255).astype(np.uint8)
    a, b = measure(as_uint8), measure(images)
    for name in MEASUREMENTS:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, err_msg=name)


def test_shapes_and_errors():
    one = render(capsule(14, 5, 14, 23, 3))
    assert measure(one)["area"].shape == (1,)
    assert measure(one[None])["area"].shape == (1,)
    with pytest.raises(ValueError, match="shape"):
        measure(np.zeros((2, 3, 28, 28)))
    with pytest.raises(ValueError, match="dtype"):
        measure(np.zeros((1, 28, 28), np.int32))


def test_shipped_file_has_the_test_split_and_agrees_with_measuring_afresh(mnist_test):
    stored = load_measurements("mnist", "test")
    assert set(stored) == set(MEASUREMENTS)
    for name in MEASUREMENTS:
        assert stored[name].shape == (10_000,) and stored[name].dtype == np.float32
    meta = load_measurements_metadata("mnist", "test")
    assert meta["n_images"] == 10_000 and meta["upsampling"] == 4 and meta["threshold"] == 0.5
    index = [0, 1, 7, 42, 199]
    fresh = measure(mnist_test[0][index])
    for name in MEASUREMENTS:
        np.testing.assert_allclose(stored[name][index], fresh[name], rtol=1e-5, err_msg=name)


def test_missing_measurements_say_how_to_make_them():
    with pytest.raises(MeasurementsNotFoundError, match="python -m vae.morphometry --dataset fashion"):
        load_measurements("fashion", "test")
