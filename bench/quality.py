"""Model quality: every shipped model's test ELBO parts and IWAE NLL in one table, with a baseline.

Protocol (as `python -m vae.evaluate`): the whole test split of each model's dataset, grey levels as
Bernoulli targets (no binarization), beta = 1, one z per image for the ELBO, k importance samples,
seeded; nats per image. Baseline, trained in this run: pytorch/examples' VAE recipe (MLP 784-400-20,
Adam 1e-3, batch 128, 50 epochs on every MNIST training image found, the tutorial loop), evaluated
with the same protocol; MNIST rows print their IWAE NLL as a ratio to the baseline's.

    .venv/bin/python bench/quality.py [--k 100] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from standard_loop import standard_loop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vae.checkpoint import load_checkpoint  # noqa: E402
from vae.data import load_dataset  # noqa: E402
from vae.evaluate import evaluate  # noqa: E402
from vae.train import TrainConfig, describe_device  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, default=100, help="importance samples (the model cards use 1000)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    a = p.parse_args()
    test = {name: load_dataset(name, "test") for name in ("mnist", "fashion")}

    t0 = time.perf_counter()
    recipe = TrainConfig(dataset="mnist", model="vae", latent_dim=20, hidden=[400], epochs=50, device="cpu")
    baseline, _ = standard_loop(recipe)
    n_train = len(load_dataset("mnist", "train")[1])
    rows = [("baseline: pytorch/examples recipe", "mnist", evaluate(baseline, *test["mnist"], k=a.k),
             time.perf_counter() - t0)]
    for folder in sorted(ROOT.glob("pretrained/*/config.json")):
        t0 = time.perf_counter()
        model, config, _ = load_checkpoint(folder.parent)
        m = evaluate(model, *test[config["dataset"]], config["likelihood"], config.get("sigma", 0.1), k=a.k)
        rows.append((folder.parent.name, config["dataset"], m, time.perf_counter() - t0))

    base_nll = rows[0][2]["iwae_nll"]
    print(f"Test split, all images, nats per image, IWAE with k = {a.k}; {describe_device('cpu')}; "
          f"baseline trained 50 epochs on {n_train:,} MNIST images in this run")
    header = ["model", "dataset", "images", "-ELBO", "recon", "KL", f"IWAE NLL (k={a.k})", "NLL / baseline", "s"]
    lines = []
    for name, dataset, m, seconds in rows:
        ratio = f"{m['iwae_nll'] / base_nll:.3f}" if dataset == "mnist" else "-"
        lines.append([name, dataset, f"{m['n_images']:,}", f"{m['elbo']:.2f}", f"{m['recon']:.2f}",
                      f"{m['kl']:.2f}", f"{m['iwae_nll']:.2f}", ratio, f"{seconds:.0f}"])
    if a.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " if i < 2 else " ---: " for i in range(len(header))) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        for line in [header, *lines]:
            print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))


if __name__ == "__main__":
    main()
