"""Which device to compute on: one function picks it (CUDA, then Apple's MPS, then the CPU); everything
else takes a ``device`` argument."""

from __future__ import annotations

import torch

from .errors import N_, Message


def best_device() -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device a name asks for: "auto" or None picks ``best_device()``; else ``torch.device(name)``."""
    return best_device() if name in (None, "auto") else torch.device(name)


def describe_device(device: torch.device | str) -> str:
    """A human-readable name: the CUDA device's name, "Apple MPS", or "CPU (N threads)"."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    n = torch.get_num_threads()
    return Message(N_("CPU ({n} thread)") if n == 1 else N_("CPU ({n} threads)"), n=n)
