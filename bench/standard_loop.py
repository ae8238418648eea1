"""The training loop most tutorials use (pytorch/examples' vae/main.py), kept as the benchmarks' baseline.

torchvision dataset with ToTensor, DataLoader(batch, shuffle=True), `.to(device)` per batch and
`.item()` per step. The objective is `vae.losses.elbo`, so only the data pipeline differs from ours.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vae.data import data_root, dataset_class  # noqa: E402
from vae.losses import elbo  # noqa: E402
from vae.models import build_model  # noqa: E402
from vae.train import TrainConfig  # noqa: E402


def standard_loop(config: TrainConfig, indices: torch.Tensor | None = None) -> tuple[torch.nn.Module, float]:
    """Train as the tutorial does on the training split (or its ``indices``); returns (model, s/epoch)."""
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    ds = dataset_class(config.dataset)(str(data_root()), train=True, download=False, transform=transforms.ToTensor())
    if indices is not None:
        ds = Subset(ds, indices.tolist())
    loader = DataLoader(ds, batch_size=config.batch_size, shuffle=True)
    model = build_model(vars(config)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    t0 = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        train_loss = 0.0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            logits, mu, logvar = model(x, y)
            loss = elbo(logits, x, mu, logvar).loss
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model.eval(), (time.perf_counter() - t0) / config.epochs
