"""Training: one function for every model, and the command line.

    python -m vae.train --dataset mnist --model vae --latent-dim 2 --epochs 50 --out pretrained/NAME
    python -m vae.train --dataset photos.zip [--image-size 28|32|64] [--channels 1|3] --model conv --out runs/NAME

``--dataset`` is mnist, fashion, or a folder of images or a .zip of one (``vae.folders``: one subfolder
per class; decoded once and cached); a folder's images set the model's ``image_shape`` (C, S, S),
from ``--image-size`` and ``--channels`` or their defaults. Bad input there exits 1 with one line.

The whole training split lives on the device as one tensor and batches are drawn by index, so there
are no DataLoader workers and no per-step host sync; losses are accumulated on the device and read
once per epoch. 10% of the training split (a fixed, seeded choice) is held out for validation, and
the weights of the epoch with the best validation loss are the ones returned and saved.

Started by ``torchrun --nproc-per-node N -m vae.train ...`` the same run is data-parallel
(PyTorch's DistributedDataParallel; NCCL on CUDA, gloo on the CPU): each process holds its shard of
the training split on its device and draws its part of every batch by index, ``--batch-size`` stays
the global batch (each process takes batch / N) and the learning rate is not rescaled; the epoch's
losses are summed over the processes; process 0 alone validates and saves, in the same format.
Every process builds the same initial weights (DDP broadcasts process 0's anyway), then seeds its
noise and shuffles with its rank. What is wrapped, in DDP and/or ``torch.compile``, is the
``vae.losses.Objective`` around the model, whose forward computes the whole loss.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from torch.nn.parallel import DistributedDataParallel

from .data import (BINARIZATIONS, DATASET_NAMES, DatasetNotFoundError, is_builtin, load_dataset, load_split,
                   split_train_val, stochastic_binarize)
from .device import best_device, describe_device, resolve_device  # noqa: F401 (the app's and benches' import)
from .errors import N_, Message, UserError
from .evaluate import score
from .latent import ACTIVE_KL_THRESHOLD
from .losses import OBJECTIVES, Objective
from .models import MODELS, ModelConfig, build_model

SCHEDULES = ("constant", "cosine")


def process_group(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this process's device) of a run that torchrun started with WORLD_SIZE > 1,
    after joining its process group (NCCL for CUDA, gloo otherwise); (0, 1, device) for one process.
    On CUDA each process takes the GPU numbered by its LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _run(default, help: str, **cli):
    """A run field: its default and its command-line option's help (and choices, flag, nargs)."""
    factory = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(**factory, metadata={"help": help, **cli})


@dataclass
class TrainConfig(ModelConfig):
    """Everything that defines a training run; saved, flat, as the checkpoint's ``config.json``.

    The architecture fields are ``ModelConfig``'s (model, latent_dim, hidden, channels, n_classes,
    likelihood, sigma); these are the run's. Both carry their command-line help, and ``main`` builds
    its parser from them (``add_config_arguments``), so the options and the fields cannot drift.
    """

    dataset: str = _run("mnist", "the training data: mnist, fashion, or a folder of images (one subfolder per "
                        "class) or a .zip of one")
    epochs: int = _run(10, "passes over the training split")
    batch_size: int = _run(128, "images per step (the global batch under torchrun)")
    lr: float = _run(1e-3, "Adam's learning rate")
    beta: float = _run(1.0, "the KL term's weight (beta-VAE); 1 is the ELBO")
    seed: int = _run(0, "seeds the weights, the shuffles and the noise")
    device: str = _run("auto", "auto, cpu, cuda, cuda:1, mps")
    val_fraction: float = _run(0.1, "share of the training split held out for validation", cli=False)
    amp: bool = _run(False, "bfloat16 autocast for the training steps (validation stays float32)")
    compile: bool = _run(False, "torch.compile the objective for the training steps (slower first epoch)")
    binarize: str = _run("none", "none: grey levels are the targets; dynamic: every pixel redrawn as "
                         "Bernoulli(grey level) each time an image is used", choices=BINARIZATIONS)
    objective: str = _run("elbo", "elbo, or iwae: the importance-weighted bound with --k samples",
                          choices=OBJECTIVES)
    iwae_k: int = _run(5, "samples of the IWAE objective", flag="--k")
    warmup: int = _run(0, "KL warm-up: beta grows linearly from 0 over this many epochs (Sonderby et al., 2016)")
    schedule: str = _run("constant", "learning rate: constant, or cosine from lr down to 0 over the epochs",
                         choices=SCHEDULES)

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be one of {tuple(DATASET_NAMES)} or a path, got {self.dataset!r}")
        if is_builtin(self.dataset) and tuple(self.image_shape) != (1, 28, 28):
            raise ValueError(f"{DATASET_NAMES[self.dataset]} is 28 x 28 grey: image_shape (1, 28, 28), "
                             f"got {self.image_shape}")
        for name, allowed in (("binarize", BINARIZATIONS), ("objective", OBJECTIVES), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {tuple(allowed)}, got {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 1 or not 0 < self.val_fraction < 1:
            raise ValueError("latent_dim, epochs and batch_size must be positive, val_fraction in (0, 1)")
        if self.iwae_k < 1 or self.warmup < 0:
            raise ValueError(f"iwae_k must be at least 1 and warmup at least 0, got {self.iwae_k}, {self.warmup}")
        if self.model == "ae" and (self.objective != "elbo" or self.beta != 1.0 or self.warmup):
            raise ValueError("a plain autoencoder minimizes the reconstruction term alone: no IWAE, beta or warm-up")
        if self.objective == "iwae" and (self.beta != 1.0 or self.warmup):
            raise ValueError("the IWAE objective has no KL weight: use beta = 1 and no warm-up with it")
        if self.binarize == "dynamic" and self.likelihood != "bernoulli":
            raise ValueError("dynamic binarization makes binary targets: use the bernoulli likelihood")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per ``TrainConfig`` field, from the fields' defaults and metadata: ``--latent-dim``
    for ``latent_dim`` (or the field's ``flag``), ``nargs`` for lists, a switch for booleans; fields
    marked ``cli=False`` are left out. ``config_from_arguments`` reads them back."""
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        flag, default = meta.get("flag", "--" + f.name.replace("_", "-")), getattr(defaults, f.name)
        kwargs = {"dest": f.name, "help": meta["help"]}
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", **kwargs)
            continue
        choices = tuple(MODELS) if meta.get("choices") == "MODELS" else meta.get("choices")
        if isinstance(default, list):
            kwargs.update(type=int, nargs=meta.get("nargs", "+"))
        else:
            kwargs["type"] = type(default)
        parser.add_argument(flag, default=default, choices=choices, **kwargs)


def config_from_arguments(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed ``add_config_arguments`` options."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                          if hasattr(args, f.name)})


@dataclass
class Progress:
    """What the callback receives: after every step, and with ``train``/``val`` after every epoch.

    ``train`` and ``val`` map "recon", "kl", "loss" to nats per image (train: the epoch's running
    mean; val: the held-out split after the epoch). For a variational model ``val`` also holds
    "kl_per_dim": latent_dim floats, the mean KL of each latent dimension on the held-out split (nats
    per image; they sum to "kl"). ``seconds`` is wall time since training began.
    """

    epoch: int  # 1-based
    step: int  # 1-based, within the epoch
    steps_per_epoch: int
    epochs: int
    seconds: float
    train: dict | None = None
    val: dict | None = None


@dataclass
class TrainResult:
    model: torch.nn.Module  # in eval mode, with the best validation epoch's weights
    history: list[dict]  # one row per epoch: epoch, seconds, train_*, val_* (see history_row)
    best_epoch: int
    stopped: bool  # True when the stop event ended the run early
    seconds: float
    device: str
    n_train: int
    n_val: int


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite. The run ends and returns no weights: nothing is saved."""


@torch.no_grad()
def evaluate_loss(model, images, labels, config: TrainConfig, batch_size: int = 1000, per_dim: bool = False) -> dict:
    """Mean objective parts (nats per image) over ``images`` float (N, C, H, W), ``labels`` int64 (N,):
    "recon" (-log p(x|z) at one z ~ q(z|x) per image), "kl", and "loss", the configured objective as
    training minimizes it after any warm-up: recon + beta * kl, or -L_k for the IWAE objective (k =
    ``iwae_k``), or the reconstruction term of a plain autoencoder. ``vae.evaluate.score`` computes
    them; the draws come from the global random state, as training's do. per_dim: also "kl_per_dim",
    the mean KL of each latent dimension over the images (latent_dim floats, nats per image, summing
    to "kl"; closed form, Kingma & Welling 2014, Appendix B), for a variational model only: a plain
    autoencoder has no KL and gets no such key."""
    iwae = config.objective == "iwae" and model.variational
    s = score(model, images, labels, config.likelihood, config.sigma, iwae_k=config.iwae_k if iwae else None,
              batch_size=batch_size)
    recon = s["recon"].double().mean().item()
    kl = s["kl_per_dim"].double().sum(1).mean().item() if model.variational else 0.0
    loss = s["iwae_nll"].double().mean().item() if iwae else recon + config.beta * kl
    out = {"recon": recon, "kl": kl, "loss": loss}
    if per_dim and model.variational:
        out["kl_per_dim"] = s["kl_per_dim"].double().mean(0).tolist()
    return out


def history_row(epoch: int, seconds: float, train: dict, val: dict) -> dict:
    """One epoch of a run's history: epoch, seconds since the start, train_* and val_* (recon, kl, loss;
    nats per image) and, when ``val`` has "kl_per_dim" (a variational model), "val_kl_per_dim": the
    validation split's mean KL of each latent dimension, latent_dim floats rounded to 4 decimals
    (nats per image). Histories of runs from before it was kept, and a plain autoencoder's, lack it."""
    row = {"epoch": epoch, "seconds": round(seconds, 3), **{f"train_{k}": v for k, v in train.items()},
           **{f"val_{k}": v for k, v in val.items() if k != "kl_per_dim"}}
    if val.get("kl_per_dim") is not None:
        row["val_kl_per_dim"] = [round(float(v), 4) for v in val["kl_per_dim"]]
    return row


# Posterior collapse (Bowman et al., 2016, "Generating Sentences from a Continuous Space", Sec. 3.1;
# Lucas et al., 2019, "Don't Blame the ELBO!"): q(z|x) falls back to the prior p(z) for every x, the KL
# term goes to 0 and the decoder models the images without z. The rule of ``collapse_warning``:
COLLAPSE_KL = 0.5  # nats per image: the total validation KL a collapsing run has fallen below
COLLAPSE_DROP = 0.8  # ... having lost more than this share of its peak
COLLAPSE_RECON_GAIN = 0.02  # ... while the validation reconstruction gained less than this share since the peak


def kl_per_dim_history(history: list[dict]) -> list[list[float]] | None:
    """The per-epoch "val_kl_per_dim" of a history (E rows of D floats, nats per image), or None when
    a row lacks it: a plain autoencoder's run, or one from before the history kept it."""
    if not history or any(row.get("val_kl_per_dim") is None for row in history):
        return None
    return [[float(v) for v in row["val_kl_per_dim"]] for row in history]


def active_units_per_epoch(history: list[dict], threshold: float = ACTIVE_KL_THRESHOLD) -> list[int] | None:
    """How many latent dimensions were active after each epoch: those whose mean validation KL is at
    least ``threshold`` nats (``vae.latent.ACTIVE_KL_THRESHOLD``, 0.01, after Burda et al., 2016, Sec.
    5.2). One int in [0, D] per history row; None when the history has no "val_kl_per_dim"
    (``kl_per_dim_history``)."""
    kl = kl_per_dim_history(history)
    return None if kl is None else [sum(v >= threshold for v in row) for row in kl]


def collapse_warning(history: list[dict], beta: float | None = None) -> str | None:
    """A plain-words warning when the run's posterior has collapsed, else None.

    history: rows as in ``history_row``; judged at its last row, and only when every row has
    "val_kl_per_dim" (a plain autoencoder has no KL, so no warning; nor does a run from before the
    history kept it). beta: the run's KL weight, named in the advice when given. Two rules:

    1. Collapsed: every latent dimension's mean validation KL is under ``ACTIVE_KL_THRESHOLD``
       (0.01 nats), i.e. no active unit is left: z carries next to no information about x.
    2. Collapsing: the total validation KL is under ``COLLAPSE_KL`` (0.5 nats) and more than
       ``COLLAPSE_DROP`` (80%) below its peak epoch's, while the validation reconstruction term has
       improved by less than ``COLLAPSE_RECON_GAIN`` (2%) of its value at that peak. Why: the KL
       bounds what z tells the decoder about x (the mean KL is at least the mutual information
       I(x; z) under q), so a KL shrinking towards 0 means the encoder is giving z up; when the
       decoder makes up for it by reconstructing better, that is a trade the objective may make,
       but when the reconstruction stays where it was, the lost information was never replaced and
       the run is on its way to rule 1. It needs at least two epochs, since the peak must lie before
       the last one.

    Returns one short paragraph (it is read in a sidebar): what is seen, what it means, and what to
    do (lower beta, KL warm-up, a weaker decoder).
    """
    kl = kl_per_dim_history(history)
    if kl is None:
        return None
    last, d = history[-1], len(kl[-1])
    advice = (Message(N_("Lower beta (now {beta:g}), warm the KL term up (vae.train's `--warmup`), or use a weaker "
                         "decoder (fewer hidden units)."), beta=beta) if beta is not None else
              Message(N_("Lower beta, warm the KL term up (vae.train's `--warmup`), or use a weaker decoder (fewer "
                         "hidden units).")))
    if d and all(v < ACTIVE_KL_THRESHOLD for v in kl[-1]):
        return Message(N_("Posterior collapse: after epoch {epoch}, all {d} latent dimensions carry under {threshold:g} "
                          "nats of KL on the validation images ({total:.3f} in all). q(z|x) is the prior for every "
                          "image, so the decoder ignores z and draws about the same average image whatever z is. "
                          "{advice}"), epoch=last["epoch"], d=d, threshold=ACTIVE_KL_THRESHOLD, total=sum(kl[-1]),
                       advice=advice)
    peak_i = max(range(len(history)), key=lambda i: history[i]["val_kl"])
    peak, now = history[peak_i], last["val_kl"]
    recon_gain = peak["val_recon"] - last["val_recon"]
    if (peak_i < len(history) - 1 and now < COLLAPSE_KL and now < (1 - COLLAPSE_DROP) * peak["val_kl"]
            and recon_gain < COLLAPSE_RECON_GAIN * abs(peak["val_recon"])):
        return Message(N_("Posterior collapse under way: the validation KL fell to {kl:.2f} nats after epoch {epoch}, "
                          "{drop:.0%} below its peak of {peak:.2f} in epoch {peak_epoch}, while the reconstruction "
                          "barely moved ({recon_then:.1f} to {recon_now:.1f} nats): the decoder is learning to do "
                          "without z. {advice}"), kl=now, epoch=last["epoch"], drop=1 - now / peak["val_kl"],
                       peak=peak["val_kl"], peak_epoch=peak["epoch"], recon_then=peak["val_recon"],
                       recon_now=last["val_recon"], advice=advice)
    return None


def run_metrics(config: TrainConfig, result: "TrainResult") -> dict:
    """The ``metrics.json`` of a training run: "train" (data, epochs, time, device) and "history"."""
    epochs = len(result.history)
    return {
        "train": {
            "dataset": config.dataset, "split": "train", "n_train": result.n_train, "n_val": result.n_val,
            "binarize": config.binarize, "objective": config.objective,
            "epochs": epochs, "best_epoch": result.best_epoch, "stopped": result.stopped,
            "seconds": round(result.seconds, 2), "seconds_per_epoch": round(result.seconds / epochs, 3),
            "device": result.device, "torch": torch.__version__,
        },
        "history": result.history,
    }


def train(
    config: TrainConfig,
    callback: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    data_root: str | None = None,
) -> TrainResult:
    """Train the model ``config`` describes, with Adam, on the dataset's training split.

    data: optional (images float (N, C, H, W) in [0, 1] of the config's image_shape, labels int64 (N,))
    to use instead of loading the split (``vae.data.load_split``: MNIST's, Fashion-MNIST's, or a
    folder's training images, all but its test split). callback: called with a
    Progress after every step and, with train and val metrics, after every epoch. stop: when set,
    the run ends after the current step; the result keeps the best weights seen so far (the partial
    epoch is validated and counts). Seeded by ``config.seed``: the same config on the same machine
    gives the same weights. Raises TrainingDiverged when a loss is not finite, DatasetNotFoundError
    when the data is missing, ``vae.folders.FolderDatasetError`` for a folder that cannot be a
    dataset, ValueError under torchrun when the batch does not divide by the number of processes.
    Under torchrun (see the module's docstring) every process calls this; process 0's callback alone
    should report.
    """
    rank, world, device = process_group(resolve_device(config.device))
    if config.batch_size % world:
        raise ValueError(f"the global batch {config.batch_size} must divide by the {world} processes")
    torch.manual_seed(config.seed)
    images, labels = data if data is not None else load_split(config.dataset, "train", data_root, config.image_shape)
    train_idx, val_idx = split_train_val(images.shape[0], config.val_fraction)
    shard = train_idx[rank::world][: len(train_idx) // world]  # equal shards: every process takes as many steps
    x_train, y_train = images[shard].to(device), labels[shard].to(device)
    x_val, y_val = images[val_idx].to(device), labels[val_idx].to(device)
    if config.binarize == "dynamic":  # validation on one fixed binarization, so epochs compare
        x_val = stochastic_binarize(x_val.cpu(), torch.Generator().manual_seed(config.seed)).to(device)
    n, batch = x_train.shape[0], config.batch_size // world

    model = build_model(config).to(device)
    if world > 1:  # the same initial weights on every rank (DDP broadcasts rank 0's), then each its own noise
        torch.manual_seed(config.seed + 1_000_003 * rank)
    # The fused Adam kernel: one pass over each parameter instead of a dozen (CPU: a step 5.1 -> 4.1 ms).
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type in ("cuda", "cpu"))
    # Cosine annealing (Loshchilov & Hutter, 2017, SGDR, Eq. 5 without restarts), stepped once per epoch.
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
                 if config.schedule == "cosine" else None)
    # The loss is the Objective's forward, so the one wrapper (DDP's gradient all-reduce, compile's graph)
    # covers all of it; validation and the saved weights use the model itself.
    loss_fn = Objective(model, config.objective, config.likelihood, config.beta, config.sigma, config.iwae_k)
    net = loss_fn
    if world > 1:
        net = DistributedDataParallel(loss_fn, device_ids=[device.index] if device.type == "cuda" else None)
    net = torch.compile(net) if config.compile else net
    steps = math.ceil(n / batch)
    # Each process its own stream: the shuffle and the binarization differ per process, epoch and seed.
    gen = torch.Generator(device=device).manual_seed(config.seed + 1_000_003 * rank)
    history: list[dict] = []
    best_loss, best_state, best_epoch, stopped = math.inf, None, 0, False
    t0 = time.perf_counter()

    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = torch.randperm(n, device=device, generator=gen)
        sums = torch.zeros(3, device=device)
        seen = 0
        for step in range(1, steps + 1):
            idx = perm[(step - 1) * batch : step * batch]
            x, y = x_train[idx], y_train[idx]
            if config.binarize == "dynamic":
                x = stochastic_binarize(x, gen)
            # KL warm-up: beta rises linearly from 0 to config.beta over the first `warmup` epochs.
            if config.warmup:
                loss_fn.beta.fill_(config.beta * min(1.0, (epoch - 1 + step / steps) / config.warmup))
            with torch.autocast(device.type, torch.bfloat16, enabled=config.amp):
                parts = net(x, y)
            optimizer.zero_grad(set_to_none=True)
            parts.loss.backward()
            optimizer.step()
            sums += torch.stack(parts).detach() * idx.shape[0]
            seen += idx.shape[0]
            if callback:
                callback(Progress(epoch, step, steps, config.epochs, time.perf_counter() - t0))
            if stop is not None and stop.is_set():
                stopped = True
                break
        if scheduler is not None:
            scheduler.step()
        sums = torch.cat([sums, torch.tensor([float(seen)], device=device)])
        # recon, kl, loss, then the KL of each latent dimension (none for a plain autoencoder)
        val = torch.zeros(3 + (model.latent_dim if model.variational else 0), device=device)
        if rank == 0:
            v = evaluate_loss(model, x_val, y_val, config, per_dim=True)
            val = torch.tensor([v["recon"], v["kl"], v["loss"], *v.get("kl_per_dim", ())], device=device)
        if world > 1:  # the epoch's sums over every process; process 0's validation for all of them
            import torch.distributed as dist

            dist.all_reduce(sums)
            dist.broadcast(val, 0)
        train_m = dict(zip(("recon", "kl", "loss"), (sums[:3] / sums[3]).tolist()))
        val_m = dict(zip(("recon", "kl", "loss"), val[:3].tolist()))
        if not all(math.isfinite(v) for v in (*train_m.values(), *val_m.values())):
            raise TrainingDiverged(N_("the loss became {loss} in epoch {epoch}; try a lower learning rate"),
                                   loss=train_m["loss"], epoch=epoch)
        if val.shape[0] > 3:
            val_m["kl_per_dim"] = val[3:].tolist()
        seconds = time.perf_counter() - t0
        history.append(history_row(epoch, seconds, train_m, val_m))
        if val_m["loss"] < best_loss:
            best_loss, best_epoch = val_m["loss"], epoch
            best_state = copy.deepcopy(model.state_dict())
        if callback:
            callback(Progress(epoch, min(step, steps), steps, config.epochs, seconds, train_m, val_m))
        if stopped:
            break

    model.load_state_dict(best_state)
    where = describe_device(device) + (f" x {world} processes (DistributedDataParallel)" if world > 1 else "")
    return TrainResult(model.eval(), history, best_epoch, stopped, time.perf_counter() - t0, where, n * world,
                       x_val.shape[0])


def folder_config(config: TrainConfig, image_size: int | None = None, channels: int | None = None,
                  cache_dir: str | None = None, progress=None):
    """The config and training data of a run on a folder or zip of images (``config.dataset``):
    returns (config with dataset the source's absolute path, image_shape (C, S, S) and n_classes from
    its images, (images float (N, C, S, S), labels int64 (N,)) of its training part, the data card).
    image_size, channels: ``vae.folders.load_folder``'s, None for its defaults. Raises
    ``vae.folders.FolderDatasetError`` for bad input (its message says why), and for a conditional
    model on an unlabelled folder or one with a single class."""
    from .folders import FolderDatasetError, load_folder

    ds = load_folder(config.dataset, image_size, channels, cache_dir, progress=progress)
    n_classes = len(ds.class_names)
    if MODELS[config.model].cls.conditional and (not ds.card["labelled"] or n_classes < 2):
        raise FolderDatasetError(
            "no_classes", f"a {MODELS[config.model].short_name} needs labels: put the images of "
            f"{ds.card['name']} in two or more subfolders, one per class, or train an unconditional model.")
    config = dataclasses.replace(config, dataset=ds.card["source"], image_shape=list(ds.image_shape),
                                 n_classes=n_classes)
    return config, ds.split("train"), ds.card


def main(argv: list[str] | None = None) -> None:
    """``python -m vae.train`` (see the module's docstring). A user's mistake in the data (a missing
    dataset, a folder or zip that cannot be a dataset) exits 1 with its one-line reason on stderr."""
    from tqdm import tqdm

    from .checkpoint import save_checkpoint
    from .folders import FolderDatasetError, tqdm_progress
    from .models import IMAGE_CHANNELS, IMAGE_SIZES

    p = argparse.ArgumentParser(prog="python -m vae.train", description="Train a VAE and save its folder.")
    add_config_arguments(p)
    p.add_argument("--image-size", type=int, choices=IMAGE_SIZES, default=None,
                   help="a folder's images resized to this square (default: 28 for grey images of at most 28 px, "
                        "else 32)")
    p.add_argument("--channels", dest="image_channels", type=int, choices=IMAGE_CHANNELS, default=None,
                   help="a folder's images as 1 (grey) or 3 (RGB) channels (default: 1 when every image is grey)")
    p.add_argument("--cache-dir", default=None, help="where a folder's decoded images are kept (default: "
                   "$VAE_CACHE_DIR, else ~/.cache/vae-explorer/datasets)")
    p.add_argument("--data-root", default=None, help="default: $VAE_DATA_DIR, else ./data")
    p.add_argument("--n-images", type=int, default=None, help="only the first N images of the training split")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    a = p.parse_args(argv)
    config = config_from_arguments(a)

    data, card = None, None
    try:
        if not is_builtin(config.dataset):
            config, data, card = folder_config(config, a.image_size, a.image_channels, a.cache_dir,
                                                tqdm_progress())
            print(f"{card['name']}: {card['n_images']:,} images, {len(card['classes'])} "
                  f"{'classes' if card['labelled'] else 'class (unlabelled)'}, {card['image_size']} px, "
                  f"{card['channels']} channel{'s' * (card['channels'] > 1)}, {card['n_skipped']:,} skipped"
                  f"{' (from the cache)' if card['cached'] else ''} in {card['seconds']} s", file=sys.stderr)
        elif (a.image_size or 28) != 28 or (a.image_channels or 1) != 1:
            sys.exit(f"error: {DATASET_NAMES[config.dataset]} is 28 x 28 grey: --image-size and --channels are for "
                     "a folder or zip of your own images.")
        if a.n_images:
            images, labels = data if data is not None else load_dataset(config.dataset, "train", a.data_root)
            data = images[: a.n_images], labels[: a.n_images]
    except (FolderDatasetError, DatasetNotFoundError) as err:
        sys.exit(f"error: {err}")
    rank, world, _ = process_group(resolve_device(config.device))  # train() joins the same group
    bar = None

    def report(pr: Progress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=pr.steps_per_epoch * pr.epochs, unit="step")
        bar.update(1) if pr.train is None else bar.set_postfix(
            epoch=pr.epoch, train=f"{pr.train['loss']:.2f}", val=f"{pr.val['loss']:.2f}")

    result = train(config, report if rank == 0 else None, data=data, data_root=a.data_root)
    if bar is not None:
        bar.close()
    if world > 1:
        import torch.distributed as dist

        print(f"rank {rank} of {world}: trained on {result.n_train // world:,} images, "
              f"{config.batch_size // world} per step", file=sys.stderr)
        dist.destroy_process_group()
    if rank != 0:  # process 0 alone saves
        return
    metrics = run_metrics(config, result)
    if card is not None:
        metrics["data"] = card
    out = save_checkpoint(result.model, dataclasses.asdict(config), metrics, a.out)
    best = result.history[result.best_epoch - 1]
    print(f"saved {out}: best epoch {result.best_epoch}, validation loss {best['val_loss']:.2f} nats, "
          f"{result.seconds:.1f} s on {result.device}")


if __name__ == "__main__":
    main()
