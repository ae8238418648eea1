"""Conditional-VAE tools: styles from the prior, one style decoded with every label, style transfer,
and how readable the samples are to a classifier that never saw the CVAE.

In a CVAE (Sohn, Lee & Yan, 2015, "Learning Structured Output Representation using Deep Conditional
Generative Models") the decoder p(x|z, y) receives the label y beside z, so the label carries the
class and z is left to carry what the label does not: the style (slant, stroke width, size). Keep z
and change y to draw the same style as another class.

In the class-prior VAE (``vae.models.ClassPriorVAE``) the networks never see y; the prior
p(z|y) = N(mu_y, I) does. There a style is the offset eps from the class's mean, z = mu_y + eps, so
the same eps drawn at another class's mean is the same place in that class's cloud. Every function
here takes a style eps of shape (B, latent_dim) in the prior's standard units and decodes it with
``class_decode``, which does the right thing for either model.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .latent import decode_images
from .models import label_tensor


def prior_styles(n: int, latent_dim: int, seed: int = 0) -> torch.Tensor:
    """n seeded draws from the prior p(z) = N(0, I): float32 (n, latent_dim) on the CPU.

    The same (n, latent_dim, seed) always gives the same draws, and the first rows of a larger n are
    the draws of a smaller one, so a grid keeps its styles when it grows (NumPy's generator fills
    values one after another; torch.randn on the CPU does not keep prefixes). Raises ValueError for
    n < 1 or latent_dim < 1.
    """
    if n < 1 or latent_dim < 1:
        raise ValueError(f"need n >= 1 and latent_dim >= 1, got n={n}, latent_dim={latent_dim}")
    z = np.random.default_rng(int(seed)).standard_normal((n, latent_dim))
    return torch.from_numpy(z).float()


def _check_conditional(model) -> int:
    if not getattr(model, "conditional", False):
        raise ValueError("this needs a conditional model (a CVAE); the model given ignores labels")
    return int(model.n_classes)


def class_codes(model, style: torch.Tensor, y: torch.Tensor | int) -> torch.Tensor:
    """The latent codes that draw ``style`` as class y: z = mu_y + eps for a class-prior model, z = eps
    for a CVAE (its decoder takes y itself). style: float (B, latent_dim) on the CPU; y an int or
    int64 (B,). Returns float (B, latent_dim) on the CPU."""
    style = style.detach().float().cpu()
    y = label_tensor(y, style.shape[0], "cpu")
    with torch.no_grad():
        prior_mu = model.prior_mean(y.to(next(model.parameters()).device))
    return style if prior_mu is None else style + prior_mu.float().cpu()


def class_decode(model, style: torch.Tensor, y: torch.Tensor | int) -> torch.Tensor:
    """Decode ``style`` (B, latent_dim) as class y (an int or int64 (B,)): decoder means, float
    (B, 1, 28, 28) in [0, 1]. Raises ValueError for a model that is not conditional."""
    _check_conditional(model)
    y = label_tensor(y, style.shape[0], "cpu")
    return decode_images(model, class_codes(model, style, y), y)


def style_grid(model, z: torch.Tensor) -> torch.Tensor:
    """Every style decoded with every label: row r holds z[r] decoded as class 0, 1, ..., C - 1.

    z: float (R, latent_dim). Returns the decoder means, float (R * C, 1, 28, 28) in [0, 1], in
    row-major order (``tile(images, nrow=C)`` lays them out as R rows of C). Raises ValueError for a
    model that is not conditional.
    """
    n_classes = _check_conditional(model)
    z = z.detach().float().cpu()
    zs = z.repeat_interleave(n_classes, dim=0)  # (R * C, latent_dim): z[0] C times, then z[1], ...
    ys = torch.arange(n_classes).repeat(z.shape[0])  # 0..C-1, R times
    return class_decode(model, zs, ys)


@torch.no_grad()
def encode_style(model, x: torch.Tensor, y: torch.Tensor | int) -> torch.Tensor:
    """The style of images with known labels: the posterior mean mu of q(z|x, y) (of a class-prior
    model: mu of q(z|x) minus the class mean mu_y).

    x: float (B, 1, 28, 28) in [0, 1]; y: an int (every image that class) or int64 (B,). Returns
    float (B, latent_dim) on the CPU. The mean, not a draw, so the same image always gives the same
    style. Raises ValueError for a model that is not conditional or a label outside [0, C).
    """
    n_classes = _check_conditional(model)
    device = next(model.parameters()).device
    x = x.to(device)
    y = label_tensor(y, x.shape[0], device)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}, got {y.tolist()}")
    mu, _ = model.encode(x, y)
    prior_mu = model.prior_mean(y)
    return (mu if prior_mu is None else mu - prior_mu).cpu()


def style_transfer(model, x: torch.Tensor, y: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode one image with its label, then decode that style with every label.

    x: float (1, 1, 28, 28) in [0, 1]; y: its class (what the encoder is told). Returns (z float
    (latent_dim,), the posterior mean; images float (C, 1, 28, 28) in [0, 1], image c decoded with
    label c, so image y is the reconstruction). Raises ValueError for a model that is not
    conditional, a label outside [0, C), or more than one image.
    """
    if x.shape[0] != 1:
        raise ValueError(f"style_transfer takes one image (1, 1, 28, 28), got shape {tuple(x.shape)}")
    z = encode_style(model, x, int(y))
    return z[0], style_grid(model, z)


def sample_classes(model, per_class: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """per_class prior samples of every class: z ~ p(z|y) (seeded), decoded with each label.

    Returns (images float (C * per_class, 1, 28, 28) in [0, 1], the decoder means; labels int64
    (C * per_class,), the label each was decoded with, class 0's block first). Every class gets
    its own draws of z. Raises ValueError for a model that is not conditional or per_class < 1.
    """
    n_classes = _check_conditional(model)
    z = prior_styles(n_classes * per_class, model.latent_dim, seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return class_decode(model, z, labels).cpu(), labels


def fit_pixel_classifier(images: torch.Tensor, labels: torch.Tensor, max_train: int = 10_000, seed: int = 0,
                         probability: bool = False):
    """A classifier on raw pixels, independent of any VAE: PCA to 50 dimensions, then an RBF SVM.

    images: float (N, 1, 28, 28) in [0, 1]; labels int64 (N,). At most ``max_train`` images are used
    (a seeded random subset) to keep fitting to seconds on a CPU. Returns a fitted scikit-learn
    pipeline whose ``predict`` takes float arrays (M, 784); ``bench/cvae_accuracy.py`` reports its
    accuracy on the test split. ``probability``: also fit Platt-scaled class probabilities
    (``predict_proba``, through 5-fold ``CalibratedClassifierCV``: about 6x the time), for ``confident_share``.
    """
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    if images.shape[0] > max_train:
        keep = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:max_train]
        images, labels = images[keep], labels[keep]
    svm = SVC(C=10.0, gamma="scale")
    if probability:  # Platt scaling, cross-validated (scikit-learn's replacement for SVC(probability=True))
        from sklearn.calibration import CalibratedClassifierCV

        svm = CalibratedClassifierCV(svm, method="sigmoid", ensemble=False)
    classifier = make_pipeline(PCA(50, random_state=seed), svm)
    classifier.fit(images.flatten(1).numpy(), labels.numpy())
    return classifier


def class_accuracy(classifier, images: torch.Tensor, labels: torch.Tensor, n_classes: int = 10) -> dict:
    """How often ``classifier`` gives each image its label.

    images: float (N, 1, 28, 28); labels int64 (N,). Returns {"overall": fraction right,
    "per_class": list of n_classes fractions (NaN for a class with no images), "n": N,
    "seconds": prediction wall time}. Fractions are in [0, 1].
    """
    t0 = time.perf_counter()
    predicted = classifier.predict(images.flatten(1).numpy())
    seconds = time.perf_counter() - t0
    truth = labels.numpy()
    right = predicted == truth
    per_class = [float(right[truth == c].mean()) if (truth == c).any() else float("nan") for c in range(n_classes)]
    return {"overall": float(right.mean()), "per_class": per_class, "n": int(len(truth)), "seconds": seconds}



def confident_share(classifier, images: torch.Tensor, threshold: float = 0.9) -> dict:
    """How many images a probabilistic classifier reads as some class with confidence: the share whose
    largest class probability is at least ``threshold``. A decoded prior sample that looks like no
    digit gets no confident reading; a clean digit does.

    images: float (N, 1, 28, 28) in [0, 1]; classifier: fitted with ``predict_proba`` (for example
    ``fit_pixel_classifier(..., probability=True)``). Returns {"share": fraction in [0, 1], "n": N,
    "threshold", "mean_confidence": the mean largest probability, "predicted": int (N,) list of the
    most probable class}. Raises ValueError for a threshold outside (0, 1].
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    probs = classifier.predict_proba(images.flatten(1).numpy())
    top = probs.max(1)
    return {"share": float((top >= threshold).mean()), "n": int(len(top)), "threshold": threshold,
            "mean_confidence": float(top.mean()), "predicted": probs.argmax(1).tolist()}
