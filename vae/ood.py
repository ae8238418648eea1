"""Is this input like the training data? Out-of-distribution scores for one image, their thresholds
and AUROC.

Likelihoods alone fail at this: a deep generative model can give images unlike its training data a
higher likelihood than its own test images, because simple images are cheap to code (Nalisnick et al.,
2019, "Do Deep Generative Models Know What They Don't Know?"). Serrà et al. (2020, "Input Complexity
and Out-of-Distribution Detection with Likelihood-Based Generative Models", Sec. 3) correct for it:
the model's code length of x in bits minus a lossless compressor's, a likelihood ratio against a
universal model of images. Two scores, larger meaning "less like the training data":

    neg_elbo(x) = -ELBO(x) >= -log p(x), x as it is                  nats (Kingma & Welling, 2014, Eq. 3)
    complexity_corrected(x) = -ELBO(b) / ln 2 - L(b),  b = [x > 1/2] bits; L(b): PNG's length of b in bits

The correction subtracts two code lengths of one discrete object, so it is taken on the binarized
image b: a Bernoulli decoder is a normalized likelihood of binary images, and a 1-bit PNG is a code
for them, whereas its score of grey levels is not a code length of the 8-bit image (measured: that
grey-level variant separated Fashion-MNIST from MNIST no better than chance for ``mnist-vae-20d``,
AUROC 0.53; README, "Out-of-distribution inputs"). For a Gaussian decoder -ELBO(b) is differential
nats, and the score is only a heuristic.

For a model that takes a label (CVAE, class-prior VAE) the label is not known for an input to be
judged, so its -log p(x) = -log sum_y p(y) p(x|y) is bounded with the ELBO of each label y and a
uniform p(y): -logsumexp_y(ELBO(x|y) - log C). A plain autoencoder has no likelihood; its
reconstruction term -log p(x|z = f(x)) stands in for -ELBO (said so in metrics.json).

A third score combines them: each image's larger percentile among the test images' scores,

    combined(x) = max(F_neg_elbo(neg_elbo(x)), F_corrected(complexity_corrected(x)))   in [0, 1]

F a score's empirical distribution on the test split (interpolated between its stored percentiles):
an image is flagged when either test finds it unusual, and the pair is calibrated jointly, its own
95th percentile on the test split leaving 5% above it. Neither score alone is enough: -ELBO lets
through simple shapes (Serrà's point; 5% of letters pass as 0s, 1s and 5s), the correction
over-penalizes the simplest digits (for ``mnist-vae-20d`` it puts 34% of the test 1s above its own
threshold); the README gives the AUROC of all three and the false-positive rate per class.

Thresholds: each score's 95th percentile over the test split, a 5% false-positive rate on it; fitted
twice, on the test images as they are (for a test image shown by the app) and on the same images
framed the way uploads are (``frame_like_uploads``: each written as a PNG and put through
``vae.preprocess.preprocess_image``), for uploads and drawings: the framing moves the scores a little
(told apart from the unframed test images with an AUROC of 0.52 to 0.60 for MNIST models), and an
upload should be judged against digits framed as it was.

    python -m vae.ood pretrained/mnist-vae-20d [--write]      # "ood" in metrics.json, and the card
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .evaluate import score

SCORES = ("neg_elbo", "complexity_corrected")
COMBINED = "combined"  # the larger of the two scores' percentiles among the test images, 0 to 1
CHOSEN = COMBINED  # the score the app warns by (README, "Out-of-distribution inputs": bench/ood.py's AUROC)
FPR = 0.05  # false-positive rate on the test split at the threshold
DRAWS = 16  # z ~ q(z|x) behind each -ELBO: its reconstruction term's noise is a few tenths of a nat


def threshold_binarize(images: torch.Tensor) -> torch.Tensor:
    """b = [x > 1/2], a fixed threshold (no draw: the same bits every time; not
    ``vae.data.stochastic_binarize``). images: float (N, 1, H, W) in [0, 1]; returns float (N, 1, H, W)
    of 0s and 1s."""
    return (images > 0.5).to(images.dtype)


def complexity_bits(images: torch.Tensor) -> torch.Tensor:
    """L(b): each binarized image's length in bits as a 1-bit PNG (Pillow, compression level 9): the
    lossless compressor of Serrà et al. (2020, Sec. 3, who also use PNG).

    images: float (N, 1, H, W) in [0, 1], binarized at 1/2 first. Returns float64 (N,). PNG's fixed
    overhead (signature and chunk headers, about 70 bytes) is included: it is the same for every image
    of a size, so it shifts the score and not its ranking."""
    pixels = threshold_binarize(images.detach().cpu()).to(torch.bool).numpy()
    out = []
    for a in pixels:
        buf = io.BytesIO()
        Image.fromarray(a[0]).save(buf, format="PNG", optimize=False, compress_level=9)  # bool -> mode "1"
        out.append(8 * buf.tell())
    return torch.tensor(out, dtype=torch.float64)


@torch.no_grad()
def model_nats(model, images: torch.Tensor, likelihood: str = "bernoulli", sigma: float = 0.1, draws: int = DRAWS,
               seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """The model's code length of each image in nats, float64 (N,): -ELBO with ``draws`` draws of z
    (``vae.evaluate.score``), label-free for a conditional model (module docstring), the
    reconstruction term for a plain autoencoder. images: float (N, 1, 28, 28) in [0, 1] on the model's
    device. Seeded by a generator of its own; N * draws decodes (times the classes for a conditional model)."""
    gen = lambda: torch.Generator(images.device).manual_seed(seed)  # noqa: E731

    def neg_elbo(labels):
        s = score(model, images, labels, likelihood, sigma, draws=draws, batch_size=batch_size, generator=gen())
        kl = s["kl_per_dim"].sum(1) if "kl_per_dim" in s else 0
        return (s["recon"] + kl).double().cpu()

    if not model.conditional:
        return neg_elbo(None)
    n_classes = model.n_classes
    per_class = torch.stack([neg_elbo(torch.full((images.shape[0],), c, dtype=torch.int64, device=images.device))
                             for c in range(n_classes)])  # (C, N)
    return -(torch.logsumexp(-per_class, 0) - math.log(n_classes))


def ood_scores(model, images: torch.Tensor, likelihood: str = "bernoulli", sigma: float = 0.1, draws: int = DRAWS,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Both scores (``SCORES``) of each image, float64 (N,) each, on the CPU: "neg_elbo" in nats,
    "complexity_corrected" in bits, and "complexity" (L(b), bits) beside them. Larger: less like the
    training data. images: float (N, 1, 28, 28) in [0, 1] on the model's device. Cost: twice
    ``model_nats`` (x and b)."""
    binary = threshold_binarize(images)
    bits = complexity_bits(images)
    corrected = model_nats(model, binary, likelihood, sigma, draws, seed) / math.log(2) - bits
    return {"neg_elbo": model_nats(model, images, likelihood, sigma, draws, seed),
            "complexity_corrected": corrected, "complexity": bits}


def frame_like_uploads(images: torch.Tensor, style: str = "mnist") -> tuple[torch.Tensor, int]:
    """Each image (N, 1, 28, 28) in [0, 1] written as an 8-bit PNG and framed as an upload is
    (``vae.preprocess.preprocess_image`` with ``style``). Returns (float32 (M, 1, 28, 28), N - M): the
    images the upload path refuses (ImageError: a faint Fashion-MNIST item "looks blank") are left out,
    as they never reach the model from an upload. About 1.3 ms an image."""
    from .preprocess import ImageError, preprocess_image

    out = []
    for a in images.detach().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).numpy():
        buf = io.BytesIO()
        Image.fromarray(a[0]).save(buf, format="PNG")
        try:
            out.append(preprocess_image(buf.getvalue(), style=style).image)
        except ImageError:
            continue
    return (torch.cat(out) if out else images.new_empty(0, 1, 28, 28)), images.shape[0] - len(out)


def auroc(in_scores, out_scores) -> float:
    """Area under the ROC curve of telling ``out_scores`` (positives) from ``in_scores`` by a larger
    score: the probability that a random out-of-distribution image scores above a random in-distribution
    one, ties counted half (Mann-Whitney U / (n_in n_out)); 1 separates perfectly, 0.5 is chance.
    scikit-learn's ``roc_auc_score`` computes it. Raises ValueError when either set is empty."""
    from sklearn.metrics import roc_auc_score

    a, b = np.asarray(in_scores, dtype=np.float64).ravel(), np.asarray(out_scores, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("AUROC needs at least one in- and one out-of-distribution score")
    return float(roc_auc_score(np.r_[np.zeros(a.size), np.ones(b.size)], np.r_[a, b]))


def fit(in_scores: torch.Tensor, fpr: float = FPR) -> dict:
    """A score's threshold on in-distribution scores (N,): its (1 - fpr) quantile, so that a share
    ``fpr`` of them lie above it; and its percentiles 0, 1, ..., 100 for placing one image among them
    (``percentile``). Raises ValueError for fpr outside (0, 1) or no scores."""
    if not 0 < fpr < 1 or in_scores.numel() == 0:
        raise ValueError(f"need scores and a false-positive rate in (0, 1), got {in_scores.numel()} and {fpr}")
    s = in_scores.double()
    q = torch.quantile(s, torch.linspace(0, 1, 101, dtype=torch.float64))
    return {"threshold": torch.quantile(s, 1 - fpr).item(), "fpr": fpr, "percentiles": [round(v, 3) for v in q.tolist()],
            "mean": s.mean().item(), "n": s.numel()}


def combined(scores: dict[str, float | torch.Tensor], fits: dict[str, dict]):
    """The combined score (module docstring) of values ``scores`` {name: float or (N,) tensor} given the
    fits of ``SCORES`` ({name: ``fit`` result}): a float, or float64 (N,), in [0, 1]."""
    ranks = []
    for name in SCORES:
        q = np.asarray(fits[name]["percentiles"])
        v = np.asarray(scores[name], dtype=np.float64)
        ranks.append(np.interp(v, q, np.linspace(0, 1, q.size), left=0.0, right=1.0))
    out = np.maximum(*ranks)
    return float(out) if out.ndim == 0 else torch.from_numpy(out)


def fit_all(s: dict[str, torch.Tensor], fpr: float = FPR) -> dict:
    """``fit`` of each of ``SCORES`` on in-distribution scores {name: (N,)}, and of the combined score."""
    fits = {name: fit(s[name], fpr) for name in SCORES}
    fits[COMBINED] = fit(combined(s, fits), fpr)
    return fits


def percentile(value: float, fitted: dict) -> float:
    """Where ``value`` falls among the fitted scores, 0 to 100 (interpolated between stored percentiles;
    0 below the least, 100 above the largest)."""
    q = np.asarray(fitted["percentiles"])
    return float(np.interp(value, q, np.linspace(0, 100, q.size), left=0.0, right=100.0))


def is_out_of_distribution(value: float, fitted: dict) -> bool:
    """True when ``value`` is above the fitted threshold (a share ``fpr`` of test images are too)."""
    return value > fitted["threshold"]


def measure(folder: str | Path, data_root: str | None = None, draws: int = DRAWS, seed: int = 0) -> dict:
    """The "ood" entry of a model's metrics.json: each score fitted on the whole test split as it is
    ("scores") and framed the way uploads are ("framed"). Raises ValueError for a model trained on a
    folder or zip of images: the complexity score and the uploads' framing are MNIST's (grey, one
    object on a dark background)."""
    from .checkpoint import load_checkpoint
    from .data import is_builtin, load_dataset

    model, config, _ = load_checkpoint(folder)
    if not is_builtin(config["dataset"]):
        raise ValueError(f"{folder} was trained on your own images; the out-of-distribution thresholds are fitted "
                         "for MNIST and Fashion-MNIST models only.")
    images, _ = load_dataset(config["dataset"], "test", data_root)
    t0 = time.perf_counter()
    s = ood_scores(model, images, config["likelihood"], config["sigma"], draws, seed)
    framed_images, refused = frame_like_uploads(images, "fashion" if config["dataset"] == "fashion" else "mnist")
    framed = ood_scores(model, framed_images, config["likelihood"], config["sigma"], draws, seed)
    return {
        "chosen": CHOSEN, "draws": draws, "seed": seed, "seconds": round(time.perf_counter() - t0, 2),
        "data": f"{config['dataset']} test split, all {images.shape[0]:,} images",
        "units": {"neg_elbo": "nats", "complexity_corrected": "bits", "complexity": "bits"},
        "code_length": ("-ELBO" if model.variational else "reconstruction term at z = f(x)")
                       + (", label-free: -logsumexp_y(ELBO(x|y) - log C)" if model.conditional else ""),
        "source": "Serrà et al. (2020), Sec. 3: the model's code length in bits minus the 1-bit PNG length in bits, "
                  "both of the image binarized at 1/2",
        "scores": fit_all(s),
        "framed": fit_all(framed),
        "framing": "each test image as an 8-bit PNG through vae.preprocess.preprocess_image, as uploads are",
        "framing_refused": refused,
        "complexity_mean_bits": s["complexity"].mean().item(),
    }


def card_section(metrics: dict) -> list[str]:
    """The model card's lines on the out-of-distribution thresholds, from metrics.json; [] when none were
    fitted. Called by ``vae.evaluate.model_card``."""
    o = metrics.get("ood")
    if not o:
        return []
    def row(fits):
        return (" | ".join(f"{fits[k]['threshold']:.1f}" for k in SCORES)
                + (f" | {fits[COMBINED]['threshold']:.3f}" if COMBINED in fits else " | -"))

    return ["", "## Out-of-distribution thresholds (`python -m vae.ood`)", "",
            f"Each score's 95th percentile on the {o['data']} (5% of them above it), as they are and framed the way "
            f"uploads are; code length: {o['code_length']}; {o['draws']} draws z ~ q(z|x); {o['seconds']} s. The app warns "
            f"by the {o['chosen']} score: the larger of the two scores' percentiles among the test images. The "
            f"complexity-corrected score: {o['source']}.", "",
            "| test images | -ELBO (nats) | complexity-corrected (bits) | combined (percentile) |", "| --- | ---: | ---: | ---: |",
            f"| as they are | {row(o['scores'])} |", f"| framed as uploads | {row(o['framed'])} |"]


def main(argv: list[str] | None = None) -> None:
    from .evaluate import update_metrics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--write", action="store_true", help="store the result in each folder's metrics.json")
    args = parser.parse_args(argv)
    for folder in args.folders:
        try:
            result = measure(folder, args.data_root)
        except ValueError as err:
            sys.exit(f"error: {err}")
        print(folder, {k: round(v["threshold"], 2) for k, v in result["scores"].items()},
              "framed:", {k: round(v["threshold"], 2) for k, v in result["framed"].items()}, f"{result['seconds']} s")
        if args.write:
            update_metrics(folder, {"ood": result})


if __name__ == "__main__":
    main()
