"""Why a plain autoencoder cannot generate: decode the same draws z ~ N(0, I) with an AE and a VAE,
and count which classes a classifier that never saw either model reads in them (and how confidently).

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/ae_vs_vae.py [AE_FOLDER VAE_FOLDER] [--write]

Defaults: pretrained/mnist-ae-2d and pretrained/mnist-vae-2d. The classifier is
``bench/cvae_accuracy.py``'s (PCA 50 + RBF SVM on 10,000 training images), with Platt-scaled
probabilities; "confident" means its largest class probability is at least ``--threshold``, and a
class is "drawn" when at least 1% of the draws are read as it. The same classifier reads the real test
images in the same run, as the baseline. Both models also reconstruct
the whole test split from their codes (the VAE from z = mu, the AE from z = f(x)): the AE, trained on
that term alone, should win there. ``--write`` stores each model's figures in its metrics.json
("prior_samples"), which the AE vs VAE page shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae.checkpoint import METRICS, load_checkpoint, write_json  # noqa: E402
from vae.conditional import confident_share, fit_pixel_classifier, prior_styles  # noqa: E402
from vae.data import DATASET_NAMES, load_dataset  # noqa: E402
from vae.latent import decode_images, encode_images  # noqa: E402
from vae.losses import reconstruction_nll  # noqa: E402


@torch.no_grad()
def reconstruction_at_code(model, config: dict, images: torch.Tensor) -> dict:
    """Mean -log p(x|z) (nats per image) and squared error (per pixel) of the decoder's mean at each
    test image's code: z = mu(x) for a VAE, z = f(x) for an AE."""
    codes, _ = encode_images(model, images)
    nll = sq = 0.0
    for s in range(0, len(images), 1000):
        x, z = images[s : s + 1000], codes[s : s + 1000]
        logits = model.decode(z)
        nll += reconstruction_nll(logits, x, config["likelihood"], config.get("sigma", 0.1)).double().sum().item()
        sq += (torch.sigmoid(logits) - x).pow(2).double().sum().item()
    return {"recon_at_code": nll / len(images), "mse_per_pixel": sq / (len(images) * 784), "n_test": len(images)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="*", type=Path,
                   default=[ROOT / "pretrained" / "mnist-ae-2d", ROOT / "pretrained" / "mnist-vae-2d"])
    p.add_argument("--n", type=int, default=1000, help="prior draws z ~ N(0, I) decoded by each model")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--write", action="store_true", help="store the figures in each folder's metrics.json")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    loaded = [(f, *load_checkpoint(f, "cpu")) for f in a.folders]
    datasets = {c["dataset"] for _, _, c, _ in loaded}
    if len(datasets) != 1:
        sys.exit(f"the models must share a dataset, got {sorted(datasets)}")
    dataset = datasets.pop()
    train_x, train_y = load_dataset(dataset, "train")
    test_x, _ = load_dataset(dataset, "test")
    t_fit = time.perf_counter()
    classifier = fit_pixel_classifier(train_x, train_y, seed=a.seed, probability=True)
    fit_s = time.perf_counter() - t_fit
    real = confident_share(classifier, test_x, a.threshold)
    z = prior_styles(a.n, loaded[0][1].latent_dim, a.seed)  # the same draws for every model
    about = (f"PCA 50 + RBF SVM with Platt probabilities, fitted on 10,000 {DATASET_NAMES[dataset]} training images "
             f"(seed {a.seed}, {fit_s:.0f} s); on the real test split it is confident for {real['share']:.1%}")
    results = []
    for folder, model, config, metrics in loaded:
        if model.latent_dim != z.shape[1]:
            sys.exit(f"{folder.name}: latent_dim {model.latent_dim}, the first model's is {z.shape[1]}")
        samples = confident_share(classifier, decode_images(model, z).cpu(), a.threshold)
        predicted = torch.tensor(samples.pop("predicted"))
        counts = torch.bincount(predicted, minlength=10).tolist()
        # Which classes the draws reach: a class counts when at least 1% of the draws are read as it.
        classes_drawn = sum(c >= 0.01 * a.n for c in counts)
        row = {"model": folder.name, "kind": config["model"], "n": a.n, "seed": a.seed, "threshold": a.threshold,
               "confident_share": round(samples["share"], 4), "mean_confidence": round(samples["mean_confidence"], 4),
               "predicted_counts": counts, "classes_drawn": classes_drawn,
               "real_test_confident_share": round(real["share"], 4),
               "classifier": about, **{k: round(v, 4) if isinstance(v, float) else v
                                      for k, v in reconstruction_at_code(model, config, test_x).items()}}
        results.append(row)
        if a.write:
            metrics["prior_samples"] = row
            write_json(Path(folder) / METRICS, metrics)
    if a.json:
        print(json.dumps(results))
        return
    print(f"{a.n} draws z ~ N(0, I) (seed {a.seed}) decoded by each model; classifier: {about}.")
    print(f"{'model':<22} {'confident (>= %.2f)' % a.threshold:>20} {'mean conf.':>11} {'classes drawn':>14} "
          f"{'recon at code':>14} {'MSE/pixel':>10}   draws read as 0..9")
    for r in results:
        print(f"{r['model']:<22} {r['confident_share']:>20.1%} {r['mean_confidence']:>11.3f} {r['classes_drawn']:>14} "
              f"{r['recon_at_code']:>14.2f} {r['mse_per_pixel']:>10.4f}   {r['predicted_counts']}")
    if len(results) == 2:
        print(f"classes reached, {results[1]['model']} / {results[0]['model']}: "
              f"{results[1]['classes_drawn'] / max(1, results[0]['classes_drawn']):.2f}x")
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
