"""MNIST and Fashion-MNIST as tensors, read through torchvision.

The data root is, in order: the ``root`` argument, the ``VAE_DATA_DIR`` environment variable, or
``./data``; the layout is torchvision's (``ROOT/MNIST/raw/train-images-idx3-ubyte`` and so on).
Nothing is downloaded unless the caller asks (``download=True``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision import datasets as tv_datasets

DATASETS = {"mnist": tv_datasets.MNIST, "fashion": tv_datasets.FashionMNIST}
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not under the data root (and were not, or could not be, downloaded)."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$VAE_DATA_DIR``, else ``./data``."""
    return Path(root or os.environ.get("VAE_DATA_DIR") or "data")


def load_dataset(
    name: str, split: str = "train", root: str | os.PathLike | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole split into memory.

    name: "mnist" or "fashion"; split: "train" or "test".
    Returns (images, labels): float32 (N, 1, 28, 28) in [0, 1] and int64 (N,). N is read from the
    files (the MNIST training split on the development machines is a 5,000-image subset).
    Raises ValueError for an unknown name or split, and DatasetNotFoundError naming the missing
    files and the folder searched when the files are absent and not downloaded.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in RAW_FILES:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    root = data_root(root)
    cls = DATASETS[name]
    try:
        ds = cls(str(root), train=split == "train", download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found. You can use download=True ..."
        folder = root / cls.__name__ / "raw"
        files = ", ".join(RAW_FILES[split])
        how = "the download failed" if download else "downloading is off"
        raise DatasetNotFoundError(
            f"{cls.__name__} {split} split not found: looked for {files} (or their .gz) in "
            f"{folder.resolve()}, and {how}. Set VAE_DATA_DIR or pass the data root."
        ) from err
    images = ds.data.unsqueeze(1).to(torch.float32).div_(255)
    return images, ds.targets.to(torch.int64)
