"""Training throughput: our trainer against the loop most tutorials use, in the same process.

Both train the MLP VAE 784-400-20 (Bernoulli likelihood, Adam lr 1e-3) on the same 90% of
Fashion-MNIST's training split (54,000 images; ours holds the other 10% out for validation and
validates after each epoch, inside its timed epoch), from the same seed, for the same epochs.
- baseline, "standard loop": torchvision dataset with ToTensor, DataLoader(batch, shuffle=True),
  `.to(device)` per batch and `.item()` per step, as pytorch/examples' vae/main.py does;
- ours, `vae.train.train`: the split held on the device as one tensor, batches drawn by index, no
  host sync inside an epoch.
Prints seconds per epoch for both, the ratio, and both models' test loss (-ELBO, nats per image).
``--amp`` (bfloat16 autocast) and ``--compile`` (torch.compile) apply to ours only; the baseline stays
the plain float32 tutorial loop. With --compile, ours' first epoch includes the compilation.
With --repeats, both are trained several times, alternating which goes first; the medians compare.

``--nproc N`` measures data-parallel training instead: `python -m vae.train` in one process (the
baseline) against `torchrun --nproc-per-node N -m vae.train` (DistributedDataParallel, gloo on the
CPU, one thread per process as torchrun sets it), the same model, data and global batch, each as a
command of its own; seconds per epoch from their metrics.json (the first epoch left out when there
are more), validation loss after the last epoch.

    .venv/bin/python bench/train_speed.py [--epochs 1] [--repeats 5] [--batch-size 128] [--device cpu]
                                          [--amp] [--compile] [--nproc 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from standard_loop import standard_loop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vae.data import load_dataset  # noqa: E402
from vae.train import TrainConfig, describe_device, evaluate_loss, split_train_val, train  # noqa: E402


ROOT = Path(__file__).resolve().parents[1]


def compare_processes(a) -> None:
    """One process against torchrun with a.nproc processes: seconds per epoch, medians over the repeats."""
    args = ["-m", "vae.train", "--dataset", "fashion", "--model", "vae", "--latent-dim", "20", "--hidden", "400",
            "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--device", a.device,
            *(["--amp"] if a.amp else [])]
    launchers = {"1 process": [sys.executable],
                 f"{a.nproc} processes": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                          "--nproc-per-node", str(a.nproc)]}
    times = {name: [] for name in launchers}
    val, devices = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for name in (list(launchers) if r % 2 == 0 else list(launchers)[::-1]):
                out = Path(tmp) / name.replace(" ", "-")
                subprocess.run([*launchers[name], *args, "--out", str(out)], cwd=ROOT, check=True,
                               capture_output=True, env=dict(os.environ))
                metrics = json.loads((out / "metrics.json").read_text())
                cumulative = [0.0] + [h["seconds"] for h in metrics["history"]]
                per_epoch = [b - c for c, b in zip(cumulative, cumulative[1:])]
                times[name].append(statistics.median(per_epoch[1:] or per_epoch))
                val[name] = metrics["history"][-1]["val_loss"]
                devices[name] = metrics["train"]["device"]
    print(f"MLP VAE 784-400-20, Fashion-MNIST, global batch {a.batch_size}, {a.epochs} epoch(s) x {a.repeats} "
          f"repeat(s), {a.device}, torch {torch.__version__}")
    print(f"  {'':12s} {'s/epoch (median)':>16s} {'val loss (nats)':>16s}   each repeat's s/epoch")
    for name in times:
        print(f"  {name:12s} {statistics.median(times[name]):16.2f} {val[name]:16.2f}   "
              + ", ".join(f"{t:.2f}" for t in times[name]) + f"   [{devices[name]}]")
    one, many = (statistics.median(v) for v in times.values())
    print(f"  speed-up (1 process / {a.nproc} processes): {one / many:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1,
                   help="train both this many times, alternating which goes first, and compare the medians "
                   "(on a shared machine, load from elsewhere then falls on both alike)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="ours: bfloat16 autocast")
    p.add_argument("--compile", action="store_true", help="ours: torch.compile")
    p.add_argument("--nproc", type=int, default=1, help="compare 1 process with torchrun's N processes instead")
    a = p.parse_args()
    if a.nproc > 1:
        compare_processes(a)
        return
    device = torch.device(a.device)
    config = TrainConfig(dataset="fashion", model="vae", latent_dim=20, hidden=[400], epochs=a.epochs,
                         batch_size=a.batch_size, device=a.device)
    images, labels = load_dataset("fashion", "train")
    train_idx, _ = split_train_val(len(labels), config.val_fraction)
    test_x, test_y = (t.to(device) for t in load_dataset("fashion", "test"))

    def run_standard():
        model, seconds = standard_loop(config, train_idx)
        return model, seconds

    def run_ours():
        result = train(dataclasses.replace(config, amp=a.amp, compile=a.compile), data=(images, labels))
        return result.model, result.seconds / len(result.history)

    times = {"standard loop": [], "ours": []}
    models = {}
    for r in range(a.repeats):
        for name in (("standard loop", "ours") if r % 2 == 0 else ("ours", "standard loop")):
            models[name], seconds = (run_standard if name == "standard loop" else run_ours)()
            times[name].append(seconds)
    losses = {}
    for name, model in models.items():  # the last run of each, trained from the same seed
        torch.manual_seed(0)
        losses[name] = evaluate_loss(model, test_x, test_y, config)["loss"]
    options = ", ".join(o for o, on in (("bf16 autocast", a.amp), ("torch.compile", a.compile)) if on) or "float32"
    print(f"MLP VAE 784-400-20, Fashion-MNIST, {len(train_idx):,} training images, batch {a.batch_size}, "
          f"{a.epochs} epoch(s) x {a.repeats} repeat(s), {describe_device(device)}, torch {torch.__version__}; "
          f"ours: {options}")
    print(f"  {'':16s} {'s/epoch (median)':>16s} {'test -ELBO (nats)':>18s}   each repeat's s/epoch")
    for name in times:
        print(f"  {name:16s} {statistics.median(times[name]):16.2f} {losses[name]:18.2f}   "
              + ", ".join(f"{t:.2f}" for t in times[name]))
    base, ours = (statistics.median(v) for v in times.values())
    print(f"  speed-up (standard / ours): {base / ours:.2f}x; test loss difference (ours - standard): "
          f"{losses['ours'] - losses['standard loop']:+.2f} nats")


if __name__ == "__main__":
    main()
