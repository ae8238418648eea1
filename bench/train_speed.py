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

    .venv/bin/python bench/train_speed.py [--epochs 1] [--repeats 5] [--batch-size 128] [--device cpu]
                                          [--amp] [--compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch
from standard_loop import standard_loop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vae.data import load_dataset  # noqa: E402
from vae.train import TrainConfig, describe_device, evaluate_loss, split_train_val, train  # noqa: E402


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
    a = p.parse_args()
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
