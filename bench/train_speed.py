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

    .venv/bin/python bench/train_speed.py [--epochs 1] [--batch-size 128] [--device cpu] [--amp] [--compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
from standard_loop import standard_loop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vae.data import load_dataset  # noqa: E402
from vae.train import TrainConfig, describe_device, evaluate_elbo, split_train_val, train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=1)
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

    baseline, base_s = standard_loop(config, train_idx)
    result = train(dataclasses.replace(config, amp=a.amp, compile=a.compile), data=(images, labels))
    ours_s = result.seconds / len(result.history)
    epoch_s = [b["seconds"] - a_["seconds"] for a_, b in zip([{"seconds": 0.0}, *result.history], result.history)]

    torch.manual_seed(0)
    base_loss = evaluate_elbo(baseline, test_x, test_y, config)["loss"]
    torch.manual_seed(0)
    ours_loss = evaluate_elbo(result.model, test_x, test_y, config)["loss"]
    options = ", ".join(o for o, on in (("bf16 autocast", a.amp), ("torch.compile", a.compile)) if on) or "float32"
    print(f"MLP VAE 784-400-20, Fashion-MNIST, {len(train_idx):,} training images, batch {a.batch_size}, "
          f"{a.epochs} epoch(s), {describe_device(device)}, torch {torch.__version__}; ours: {options}")
    print(f"  {'':16s} {'s/epoch':>8s} {'test -ELBO (nats)':>18s}")
    print(f"  {'standard loop':16s} {base_s:8.2f} {base_loss:18.2f}")
    print(f"  {'ours':16s} {ours_s:8.2f} {ours_loss:18.2f}")
    if len(epoch_s) > 1:
        print(f"  ours per epoch: {', '.join(f'{t:.2f}' for t in epoch_s)} s")
    print(f"  speed-up (standard / ours): {base_s / ours_s:.2f}x; test loss difference (ours - standard): "
          f"{ours_loss - base_loss:+.2f} nats")


if __name__ == "__main__":
    main()
