"""Model quality: the shipped models' test metrics beside a baseline trained in this run, and beside
published numbers under the literature's protocol.

Table 1, protocol "grey" (as `python -m vae.evaluate`): the whole test split of each model's dataset,
grey levels as Bernoulli targets (no binarization), beta = 1, one z per image for the ELBO, k
importance samples, seeded; nats per image. Baseline, trained in this run: pytorch/examples' VAE
recipe (MLP 784-400-20, Adam 1e-3, batch 128, 50 epochs on every MNIST training image found, the
tutorial loop), evaluated the same way. Unconditional MNIST rows print their -ELBO and IWAE NLL as
ratios to the baseline's; a CVAE's -log p(x|y) and Fashion-MNIST rows get no ratio.

Table 2, protocol "binarized" (Burda et al., 2016): the shipped models trained on dynamically
binarized MNIST, scored on the test split binarized once (seed 0) with k = 5000, as stored in their
metrics.json by `python -m vae.evaluate FOLDER --protocol binarized --k 5000 --write` (pass
--recompute K to score them again here with K samples), beside published numbers, which are quoted,
not measured.

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/quality.py [--k 100] [--markdown] [--recompute K]
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
from vae.evaluate import evaluate, evaluate_checkpoint  # noqa: E402
from vae.train import TrainConfig, describe_device  # noqa: E402

# Test NLL on binarized MNIST, nats, as published (quoted, not measured here).
PUBLISHED = [
    ("VAE, 1 stochastic layer, 2x200 tanh, 50-d, 3,280 epochs (Burda et al., 2016, Table 1)", "dynamic", 5000, 86.76),
    ("IWAE k = 5, same network (Burda et al., 2016, Table 1)", "dynamic", 5000, 85.54),
    ("VAE (Rezende & Mohamed, 2015)", "the paper's", None, 89.9),
    ("VAE 784-400-40, pythae's reproduction (statically binarized)", "static", None, 89.78),
]


def table(header: list[str], lines: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " if i < 1 else " ---: " for i in range(len(header))) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    for line in [header, *lines]:
        print("  ".join(c.ljust(w) if i < 1 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, default=100, help="importance samples for table 1 (the model cards use 1000)")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--recompute", type=int, default=0, metavar="K", help="score table 2's models again with K samples")
    p.add_argument("--only", choices=("grey", "binarized"), help="print one table only")
    a = p.parse_args()
    if a.only != "binarized":
        grey_table(a)
    if a.only != "grey":
        binarized_table(a)


def grey_table(a) -> None:
    test = {name: load_dataset(name, "test") for name in ("mnist", "fashion")}

    t0 = time.perf_counter()
    recipe = TrainConfig(dataset="mnist", model="vae", latent_dim=20, hidden=[400], epochs=50, device="cpu")
    baseline, _ = standard_loop(recipe)
    n_train = len(load_dataset("mnist", "train")[1])
    rows = [("baseline: pytorch/examples recipe", "mnist", False, evaluate(baseline, *test["mnist"], k=a.k),
             time.perf_counter() - t0)]
    for folder in sorted(ROOT.glob("pretrained/*/config.json")):
        folder = folder.parent
        model, config, metrics = load_checkpoint(folder)
        if config.get("binarize") == "dynamic" or config["likelihood"] != "bernoulli" or not model.variational:
            continue  # binarized models have table 2; an autoencoder has no ELBO
        t0 = time.perf_counter()
        m = evaluate(model, *test[config["dataset"]], config["likelihood"], config.get("sigma", 0.1), k=a.k)
        rows.append((folder.name, config["dataset"], model.conditional, m, time.perf_counter() - t0))

    base = rows[0][3]
    print(f"Table 1, protocol grey: test split, all images, nats per image, IWAE with k = {a.k}; "
          f"{describe_device('cpu')}; baseline trained 50 epochs on {n_train:,} MNIST images in this run")
    lines = []
    for name, dataset, conditional, m, seconds in rows:
        comparable = dataset == "mnist" and not conditional
        lines.append([name, dataset, "-log p(x given y)" if conditional else "-log p(x)", f"{m['neg_elbo']:.2f}",
                      f"{m['recon']:.2f}", f"{m['kl']:.2f}", f"{m['iwae_nll']:.2f}",
                      f"{m['neg_elbo'] / base['neg_elbo']:.3f}" if comparable else "-",
                      f"{m['iwae_nll'] / base['iwae_nll']:.3f}" if comparable else "-", f"{seconds:.0f}"])
    table(["model", "dataset", "NLL of", "-ELBO", "recon", "KL", f"IWAE NLL (k={a.k})", "-ELBO / baseline",
           "NLL / baseline", "s"], lines, a.markdown)


def binarized_table(a) -> None:
    print("\nTable 2, protocol binarized: MNIST test split binarized once, nats per image")
    lines = []
    for config_file in sorted(ROOT.glob("pretrained/*/config.json")):
        folder = config_file.parent
        _, config, metrics = load_checkpoint(folder)
        if config.get("binarize") != "dynamic":
            continue
        m = metrics.get("test_binarized")
        how = "metrics.json"
        if a.recompute:
            m, how = evaluate_checkpoint(folder, k=a.recompute, device="cpu", protocol="binarized"), "this run"
        if m is None:
            lines.append([folder.name, "-", "-", "-", "not evaluated: run vae.evaluate --protocol binarized"])
            continue
        train = metrics["train"]
        lines.append([f"{folder.name} ({train.get('objective', 'elbo')}, {train['epochs']} epochs)",
                      f"{m['neg_elbo']:.2f}", f"{m['iwae_nll']:.2f}", str(m["k"]),
                      f"measured ({how}, {m['seconds']:.0f} s on {m['device']})"])
    for name, binarization, k, nll in PUBLISHED:
        lines.append([name, "-", f"{nll:.2f}", str(k or "-"), f"quoted; {binarization} binarization"])
    table(["model", "-ELBO", "NLL", "k", "source"], lines, a.markdown)


if __name__ == "__main__":
    main()
