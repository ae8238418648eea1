"""Test-split metrics of a checkpoint: the ELBO's parts and the IWAE estimate of -log p(x).

    python -m vae.evaluate pretrained/mnist-vae-20d --k 1000 [--json] [--write]
    python -m vae.evaluate pretrained/mnist-vae-binarized --protocol binarized --k 5000 --json

Two protocols, never ranked against each other:
- "grey" (the default): the whole test split, grey levels in [0, 1] used as they are. With the
  Bernoulli likelihood that is the PyTorch example's choice, and not a normalized likelihood of the
  grey images (soft targets); with the Gaussian one the numbers are differential nats.
- "binarized": the field's MNIST protocol (Burda et al., 2016; Tomczak & Welling, 2018): the test
  split binarized once, every pixel a Bernoulli(grey level) draw with a fixed seed, and -log p(x)
  estimated by importance sampling, k = 5000 in the literature. Bernoulli likelihood only.
For a CVAE (and the class-prior VAE) both estimate -log p(x|y), the likelihood given the true label,
not -log p(x). A plain autoencoder defines no p(x): only its reconstruction term is measured.

``--write`` stores the result in the folder's ``metrics.json`` ("test", or "test_binarized") and
rewrites its ``README.md`` card from config and metrics. beta = 1, one z per image for the ELBO.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .checkpoint import CONFIG, METRICS, atomic_write, load_checkpoint, write_json
from .data import binarized_test_split, dataset_title, load_split
from .device import describe_device, resolve_device
from .losses import iwae_nll, kl_divergence, reconstruction_nll, reparameterize
from .models import MODELS

PROTOCOLS = {"grey": "test", "binarized": "test_binarized"}  # protocol -> its key in metrics.json


@torch.no_grad()
def score(model, images, labels, likelihood="bernoulli", sigma=0.1, *, draws=1, iwae_k=None, batch_size=500,
          generator=None, keep=0) -> dict:
    """Each image's ELBO parts, and its IWAE estimate if asked: the one scoring loop behind
    ``evaluate``, ``per_image``, ``vae.posterior.posterior`` and ``vae.train.evaluate_loss``.

    images float (N, 1, 28, 28) in [0, 1] and labels int64 (N,) (None for an unconditional model), on the
    model's device. Per batch:
    encode q(z|x[, y]) = N(mu, diag(exp(logvar))); ``draws`` z ~ q(z|x) (z = mu + sigma * eps,
    ``vae.losses.reparameterize``), decoded; then, with ``iwae_k``, k more draws for the IWAE bound
    (``vae.losses.iwae_nll``). generator: a ``torch.Generator`` on the images' device for every draw,
    leaving the global random state alone (None: the global one, as training's draws). Returns, on
    the images' device, in nats:
    - "recon" float32 (N,): -log p(x|z) averaged over the draws (a plain autoencoder: at z = f(x));
    - "kl_per_dim" float32 (N, D): KL(q(z|x) || p(z[|y])) per latent dimension, closed form
      (``vae.losses.kl_divergence``; to N(mu_y, I) for the class-prior model); absent for an AE;
    - "iwae_nll" float32 (N,): the k-sample estimate of -log p(x) (-log p(x|y) for a CVAE), if asked;
    - "mu" float32 (N, D), and "logvar" beside it but for an AE; with ``keep`` > 0 also "z" (N, keep, D), the first ``keep`` draws, and
      "samples" (N, keep, 1, 28, 28), their decoder means in [0, 1].
    Cost: N * (draws + iwae_k) decodes. Raises ValueError for draws < keep or draws < 1.
    """
    if draws < 1 or keep > draws:
        raise ValueError(f"draws must be at least 1 and at least keep, got draws={draws}, keep={keep}")
    model.eval()
    out: dict[str, list] = {}
    for s in range(0, images.shape[0], batch_size):
        x, y = images[s : s + batch_size], None if labels is None else labels[s : s + batch_size]
        mu, logvar = model.encode(x, y)
        parts = {"mu": mu}
        if not model.variational:
            z = mu[None]  # (1, B, D): the point code
        else:
            z = reparameterize(mu, logvar, draws, generator)  # (draws, B, D)
            parts["logvar"] = logvar
            parts["kl_per_dim"] = kl_divergence(mu, logvar, per_dim=True, prior_mu=model.prior_mean(y))
        n, b = z.shape[0], x.shape[0]
        logits = model.decode(z.reshape(n * b, -1), None if y is None else y.repeat(n))
        parts["recon"] = reconstruction_nll(logits, x.repeat(n, 1, 1, 1), likelihood, sigma).view(n, b).mean(0)
        if keep:
            parts["z"] = z[:keep].transpose(0, 1)
            parts["samples"] = torch.sigmoid(logits.view(n, b, *x.shape[1:])[:keep].transpose(0, 1))
        if iwae_k and model.variational:
            parts["iwae_nll"] = iwae_nll(model, x, y, iwae_k, likelihood, sigma, mu=mu, logvar=logvar,
                                         generator=generator)
        for key, value in parts.items():
            out.setdefault(key, []).append(value.float())
    return {key: torch.cat(values) for key, values in out.items()}


def evaluate(model, images, labels, likelihood="bernoulli", sigma=0.1, k=1000, batch_size=500, seed=0) -> dict:
    """Mean test metrics in nats per image over ``images`` float (N, 1, 28, 28), ``labels`` int64 (N,).

    Returns {"neg_elbo": -ELBO (the loss at beta = 1), "recon", "kl", "iwae_nll": the k-sample IWAE
    estimate of -log p(x) (``vae.losses.iwae_nll``), "k", "n_images", "kl_per_dim"}: the last is the
    mean KL of each latent dimension (a list of latent_dim floats that sums to "kl"); a dimension
    near 0 nats is inactive, collapsed to the prior. Tensors must be on the model's device. Seeded
    by a generator of its own (the global random state is left alone), so repeated calls agree.
    Cost: N * (k + 1) decodes, ``batch_size`` images encoded at once (``score``).
    A plain autoencoder (``model.variational`` False) gets {"recon", "n_images"} alone: -log p(x|z)
    at its code z = f(x); it has no KL, ELBO or likelihood.
    """
    s = score(model, images, labels, likelihood, sigma, iwae_k=k, batch_size=batch_size,
              generator=torch.Generator(images.device).manual_seed(seed))
    n = images.shape[0]
    recon = s["recon"].double().sum().item() / n
    if not model.variational:
        return {"recon": recon, "n_images": n}
    kl_per_dim = (s["kl_per_dim"].double().sum(0) / n).tolist()
    nll, kl = s["iwae_nll"].double().sum().item() / n, sum(kl_per_dim)
    return {"neg_elbo": recon + kl, "recon": recon, "kl": kl, "iwae_nll": nll, "k": k, "n_images": n,
            "kl_per_dim": kl_per_dim}


def per_image(model, images, labels, likelihood="bernoulli", sigma=0.1, batch_size=500, seed=0) -> dict:
    """Each image's ELBO parts, nats: {"recon": -log p(x|z) at one draw z ~ q(z|x), "kl": KL(q(z|x) ||
    p(z[|y])) in closed form, "neg_elbo": their sum}, float32 (N,) tensors on the CPU, in the order of
    ``images`` float (N, 1, 28, 28) on the model's device (``labels`` int64 (N,) beside them). One
    draw per image from a generator seeded by ``seed`` (the global random state is left alone), so
    single values are noisy by a few nats; ``evaluate`` gives the means. A plain autoencoder gets
    "recon" alone, at its code z = f(x)."""
    s = score(model, images, labels, likelihood, sigma, batch_size=batch_size,
              generator=torch.Generator(images.device).manual_seed(seed))
    result = {"recon": s.get("recon", torch.empty(0)).cpu()}
    if model.variational:
        result["kl"] = s["kl_per_dim"].sum(1).cpu() if "kl_per_dim" in s else torch.empty(0)
        result["neg_elbo"] = result["recon"] + result["kl"]
    return result


def evaluate_checkpoint(folder, k=1000, data_root=None, device=None, n_images=None, protocol="grey",
                        binarization_seed=0) -> dict:
    """Load ``folder`` and evaluate it on its dataset's test split; returns the JSON-ready dict.

    protocol: "grey" or "binarized" (see the module's docstring); binarization_seed fixes the
    binarized split. The test split is the dataset's (``vae.data.load_split``; for a folder of images,
    its test/ folder or the images held out from it, with the config's image_shape). Raises
    ValueError for an unknown protocol, or "binarized" with a likelihood other than Bernoulli;
    CheckpointError, DatasetNotFoundError and FolderDatasetError as their loaders do.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    device = resolve_device(device)
    model, config, _ = load_checkpoint(folder, device)
    if protocol == "binarized" and config["likelihood"] != "bernoulli":
        raise ValueError("the binarized protocol scores binary images: it needs a bernoulli-likelihood model")
    images, labels = load_split(config["dataset"], "test", data_root, config.get("image_shape"))
    if n_images:
        images, labels = images[:n_images], labels[:n_images]
    binarization = "none"
    if protocol == "binarized":
        images = binarized_test_split(images, binarization_seed)
        binarization = f"fixed: Bernoulli(grey level), drawn once with seed {binarization_seed}"
    t0 = time.perf_counter()
    m = evaluate(model, images.to(device), labels.to(device), config["likelihood"], config.get("sigma", 0.1), k)
    head = {"dataset": config["dataset"], "split": "test", "n_images": m["n_images"], "protocol": protocol,
            "likelihood": config["likelihood"], "binarization": binarization,
            "binarization_seed": binarization_seed if protocol == "binarized" else None}
    if not model.variational:
        return {**head, "recon": round(m["recon"], 3), "units": "nats per image",
                "seconds": round(time.perf_counter() - t0, 2), "device": describe_device(device)}
    return {**head, "nll_of": "-log p(x|y)" if model.conditional else "-log p(x)",
            "neg_elbo": round(m["neg_elbo"], 3), "recon": round(m["recon"], 3), "kl": round(m["kl"], 3),
            "iwae_nll": round(m["iwae_nll"], 3), "k": k, "units": "nats per image",
            "kl_per_dim": [round(v, 4) for v in m["kl_per_dim"]],
            "seconds": round(time.perf_counter() - t0, 2), "device": describe_device(device)}


def _image_shape_words(config: dict, metrics: dict) -> str:
    """What the card says of a model trained on a folder of images (its size, channels and source); "" for MNIST."""
    c, h, w = config.get("image_shape", (1, 28, 28))
    if (c, h, w) == (1, 28, 28) and "data" not in metrics:
        return ""
    data = metrics.get("data", {})
    skipped = f", {data['n_skipped']:,} files skipped" if data.get("n_skipped") else ""
    return (f", {h} x {w} {'grey' if c == 1 else 'RGB'} images decoded from the {data.get('kind', 'folder')} "
            f"`{config['dataset']}`{skipped} (its data card is metrics.json's \"data\")")


_PROTOCOL_TEXT = {
    "grey": "Grey levels as the targets (the PyTorch example's protocol). Under the Bernoulli likelihood "
            "this is not a normalized likelihood of grey images, and a Gaussian one gives differential "
            "nats: compare these numbers only with each other.",
    "binarized": "The literature's protocol (Burda et al., 2016): the test split binarized once, "
                 "{binarization}; comparable with published MNIST NLLs under the same protocol.",
}


def model_card(name: str, config: dict, metrics: dict) -> str:
    """The README.md card of a checkpoint folder, written from its config and metrics."""
    tr = metrics.get("train", {})
    title = dataset_title(config["dataset"], metrics.get("data"))  # a folder's name from its data card
    data = ("dynamically binarized: every pixel redrawn as Bernoulli(grey level) each time an image is used"
            if config.get("binarize") == "dynamic" else "grey levels as the targets"
            if config.get("image_shape", [1])[0] == 1 else "red, green and blue levels as the targets")
    objective = (f"the IWAE bound with k = {config.get('iwae_k')}" if config.get("objective") == "iwae"
                 else "the reconstruction term alone" if config["model"] == "ae"
                 else "the ELBO" if config.get("beta", 1.0) == 1.0 else f"the beta-VAE loss (beta = {config['beta']})")
    shape = f"hidden sizes {config['hidden']}"
    if config["model"] == "conv":
        shape = f"convolution channels {config.get('channels', [32, 64])}, fully connected width {config['hidden'][0]}"
    warmup = f", KL warm-up over {config['warmup']} epochs" if config.get("warmup") else ""
    if config.get("schedule") == "cosine":
        warmup += ", cosine learning-rate schedule down to 0"
    lines = [
        f"# {name}",
        "",
        f"{MODELS[config['model']].description[0].upper()}{MODELS[config['model']].description[1:]} with a "
        f"{config['latent_dim']}-dimensional latent space, {shape}, "
        f"{config['likelihood']} likelihood, trained by `python -m vae.train` on {title} "
        f"({data}), minimizing {objective}.",
        "",
        "## Training",
        "",
        f"- Data: {tr.get('n_train', 0):,} training images, {tr.get('n_val', 0):,} held out for validation "
        f"(the {title} training split as found on the training machine)"
        + _image_shape_words(config, metrics) + ".",
        f"- {tr.get('epochs')} epochs, batch {config['batch_size']}, Adam lr {config['lr']}, seed "
        f"{config['seed']}{warmup}; the saved weights are from epoch {tr.get('best_epoch')}, the best on validation.",
        f"- Cost: wall time {tr.get('seconds')} s ({tr.get('seconds_per_epoch')} s per epoch) on "
        f"{tr.get('device')}, torch {tr.get('torch')}.",
        "",
        "## Test metrics (`python -m vae.evaluate`)",
    ]
    found = False
    for protocol, key in PROTOCOLS.items():
        te = metrics.get(key)
        if not te:
            continue
        found, card = True, metrics.get("data")
        what = "-log p(x|y), given the true label" if te.get("nll_of") == "-log p(x|y)" else "-log p(x)"
        if "neg_elbo" not in te:  # a plain autoencoder
            lines += [
                "", f"### Protocol `{protocol}`", "", _PROTOCOL_TEXT[protocol].format(binarization=te.get("binarization")),
                "", f"{dataset_title(te['dataset'], card)} {te['split']} split, {te['n_images']:,} images: the reconstruction "
                f"term -log p(x|z) at the code z = f(x) is {te['recon']:.2f} nats per image ({te.get('seconds')} s on "
                f"{te.get('device')}). An autoencoder defines no likelihood p(x), so there is no ELBO or IWAE NLL to give.",
            ]
            continue
        lines += [
            "",
            f"### Protocol `{protocol}`",
            "",
            _PROTOCOL_TEXT[protocol].format(binarization=te.get("binarization")),
            "",
            f"{dataset_title(te['dataset'], card)} {te['split']} split, {te['n_images']:,} images, nats per image; the IWAE "
            f"NLL estimates {what} ({te.get('seconds')} s on {te.get('device')}):",
            "",
            "| -ELBO | reconstruction | KL | IWAE NLL (k = %d) |" % te["k"],
            "| ---: | ---: | ---: | ---: |",
            f"| {te['neg_elbo']:.2f} | {te['recon']:.2f} | {te['kl']:.2f} | {te['iwae_nll']:.2f} |",
        ]
    if not found:
        lines += ["", "Not evaluated yet: run `python -m vae.evaluate FOLDER --write`."]
    from .attributes import card_section  # what the latent dimensions track (issue 26), once measured

    lines += card_section(metrics)
    from . import health, ood  # the latent space's health and the out-of-distribution thresholds (issue 27)

    lines += health.card_section(metrics) + ood.card_section(metrics)
    if metrics.get("data"):  # a folder of images: its data card (vae.folders), under this card's headings
        from .folders import card_markdown

        body = card_markdown(metrics["data"]).splitlines()[1:]
        lines += ["", "## Data card", *body]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vae.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("folder")
    p.add_argument("--protocol", choices=PROTOCOLS, default="grey",
                   help="grey: grey levels as targets; binarized: the literature's MNIST protocol")
    p.add_argument("--k", type=int, default=1000, help="importance samples for the IWAE bound (the literature: 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the binarized test split")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--write", action="store_true", help="store in metrics.json and rewrite README.md")
    p.add_argument("--n-images", type=int, default=None, help="only the first N test images")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    result = evaluate_checkpoint(a.folder, a.k, a.data_root, a.device, a.n_images, a.protocol, a.seed)
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{a.folder}: {result['dataset']} {result['split']}, {result['n_images']} images, protocol "
              f"{result['protocol']} (binarization: {result['binarization']}), {result['likelihood']} likelihood, "
              "nats per image")
        if "neg_elbo" not in result:
            print(f"  reconstruction {result['recon']:.2f} (a plain autoencoder: no ELBO, no likelihood)"
                  f"   [{result['seconds']} s, {result['device']}]")
        else:
            print(f"  -ELBO {result['neg_elbo']:.2f} = reconstruction {result['recon']:.2f} + KL {result['kl']:.2f}")
            print(f"  IWAE NLL (k={result['k']}) {result['iwae_nll']:.2f}   [{result['seconds']} s, {result['device']}]")
    if a.write:
        update_metrics(a.folder, {PROTOCOLS[a.protocol]: result})


def update_metrics(folder: str | Path, entries: dict) -> None:
    """Merge ``entries`` into a checkpoint folder's metrics.json, the rest kept (read again first:
    another tool may have written since), and rewrite its README.md card from config and metrics.
    What every ``--write`` (vae.evaluate, vae.attributes, vae.health, vae.ood) ends with."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    metrics = json.loads((folder / METRICS).read_text()) if (folder / METRICS).is_file() else {}
    metrics.update(entries)
    write_json(folder / METRICS, metrics)
    card = model_card(folder.name, config, metrics)
    atomic_write(folder / "README.md", lambda tmp: Path(tmp).write_text(card))


if __name__ == "__main__":
    main()
