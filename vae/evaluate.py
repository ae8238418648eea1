"""Test-split metrics of a checkpoint: the ELBO's parts and the IWAE estimate of -log p(x).

    python -m vae.evaluate pretrained/mnist-vae-20d --k 1000 [--json] [--write]

``--write`` stores the result in the folder's ``metrics.json`` under "test" and rewrites its
``README.md`` card from config and metrics. Protocol: the whole test split, grey levels in [0, 1]
used as they are (no binarization), beta = 1, one z per image for the ELBO, k importance samples.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .checkpoint import METRICS, load_checkpoint, write_json
from .data import load_dataset
from .losses import iwae_bound, kl_divergence, reconstruction_nll
from .train import best_device, describe_device


@torch.no_grad()
def evaluate(model, images, labels, likelihood="bernoulli", sigma=0.1, k=1000, batch_size=500, seed=0) -> dict:
    """Mean test metrics in nats per image over ``images`` float (N, 1, 28, 28), ``labels`` int64 (N,).

    Returns {"elbo": -ELBO (the loss, beta = 1), "recon", "kl", "iwae_nll", "k", "n_images",
    "kl_per_dim"}: the last is the mean KL of each latent dimension (a list of latent_dim floats that
    sums to "kl"); a dimension near 0 nats is inactive, collapsed to the prior.
    Tensors must be on the model's device. Seeded, so repeated calls agree.
    """
    model.eval()
    torch.manual_seed(seed)
    recon = nll = torch.zeros((), dtype=torch.float64, device=images.device)
    kl_dims = torch.zeros(model.latent_dim, dtype=torch.float64, device=images.device)
    for s in range(0, images.shape[0], batch_size):
        x, y = images[s : s + batch_size], labels[s : s + batch_size]
        logits, mu, logvar = model(x, y)
        recon = recon + reconstruction_nll(logits, x, likelihood, sigma).double().sum()
        kl_dims += kl_divergence(mu, logvar, per_dim=True).double().sum(0)
        nll = nll + iwae_bound(model, x, y, k, likelihood, sigma).double().sum()
    n = images.shape[0]
    kl_per_dim = (kl_dims / n).tolist()
    recon, nll, kl = recon.item() / n, nll.item() / n, sum(kl_per_dim)
    return {"elbo": recon + kl, "recon": recon, "kl": kl, "iwae_nll": nll, "k": k, "n_images": n,
            "kl_per_dim": kl_per_dim}


def evaluate_checkpoint(folder, k=1000, data_root=None, device=None, n_images=None) -> dict:
    """Load ``folder`` and evaluate it on its dataset's test split; returns the JSON-ready dict."""
    device = torch.device(device) if device else best_device()
    model, config, _ = load_checkpoint(folder, device)
    images, labels = load_dataset(config["dataset"], "test", data_root)
    if n_images:
        images, labels = images[:n_images], labels[:n_images]
    t0 = time.perf_counter()
    m = evaluate(model, images.to(device), labels.to(device), config["likelihood"], config.get("sigma", 0.1), k)
    return {"dataset": config["dataset"], "split": "test", "n_images": m["n_images"],
            "likelihood": config["likelihood"], "binarization": "none",
            "elbo": round(m["elbo"], 3), "recon": round(m["recon"], 3), "kl": round(m["kl"], 3),
            "iwae_nll": round(m["iwae_nll"], 3), "k": k, "units": "nats per image",
            "kl_per_dim": [round(v, 4) for v in m["kl_per_dim"]],
            "seconds": round(time.perf_counter() - t0, 2), "device": describe_device(device)}


def model_card(name: str, config: dict, metrics: dict) -> str:
    """The README.md card of a checkpoint folder, written from its config and metrics."""
    tr, te = metrics.get("train", {}), metrics.get("test")
    arch = {"vae": "MLP VAE", "conv": "convolutional VAE", "cvae": "conditional VAE (MLP)"}[config["model"]]
    lines = [
        f"# {name}",
        "",
        f"A {arch} with a {config['latent_dim']}-dimensional latent space, hidden sizes "
        f"{config['hidden']}, {config['likelihood']} likelihood, beta = {config['beta']}, trained by "
        f"`python -m vae.train` on {config['dataset']}.",
        "",
        "## Training",
        "",
        f"- Data: {tr.get('n_train')} training images, {tr.get('n_val')} held out for validation "
        f"(the {config['dataset']} training split as found on the training machine).",
        f"- {tr.get('epochs')} epochs, batch {config['batch_size']}, Adam lr {config['lr']}, seed "
        f"{config['seed']}; the saved weights are from epoch {tr.get('best_epoch')}, the best on validation.",
        f"- Wall time {tr.get('seconds')} s ({tr.get('seconds_per_epoch')} s per epoch) on {tr.get('device')}, "
        f"torch {tr.get('torch')}.",
        "",
        "## Test metrics (`python -m vae.evaluate`)",
        "",
    ]
    if te:
        lines += [
            f"{te['dataset']} {te['split']} split, {te['n_images']} images, grey levels as "
            f"{te['likelihood']} targets (binarization: {te['binarization']}), nats per image:",
            "",
            "| -ELBO | reconstruction | KL | IWAE NLL (k = %d) |" % te["k"],
            "| ---: | ---: | ---: | ---: |",
            f"| {te['elbo']:.2f} | {te['recon']:.2f} | {te['kl']:.2f} | {te['iwae_nll']:.2f} |",
        ]
    else:
        lines.append("Not evaluated yet: run `python -m vae.evaluate FOLDER --write`.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vae.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("folder")
    p.add_argument("--k", type=int, default=1000, help="importance samples for the IWAE bound")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--write", action="store_true", help="store in metrics.json and rewrite README.md")
    p.add_argument("--n-images", type=int, default=None, help="only the first N test images")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    result = evaluate_checkpoint(a.folder, a.k, a.data_root, a.device, a.n_images)
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{a.folder}: {result['dataset']} {result['split']}, {result['n_images']} images, "
              f"{result['likelihood']} likelihood, nats per image")
        print(f"  -ELBO {result['elbo']:.2f} = reconstruction {result['recon']:.2f} + KL {result['kl']:.2f}")
        print(f"  IWAE NLL (k={result['k']}) {result['iwae_nll']:.2f}   [{result['seconds']} s, {result['device']}]")
    if a.write:
        folder = Path(a.folder)
        _, config, metrics = load_checkpoint(folder)
        metrics["test"] = result
        write_json(folder / METRICS, metrics)
        (folder / "README.md").write_text(model_card(folder.name, config, metrics))


if __name__ == "__main__":
    main()
