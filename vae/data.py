"""MNIST and Fashion-MNIST as tensors, read through torchvision; and the one entry point,
``load_split``, that also reads a folder or a .zip of the user's own images (``vae.folders``).

The data root is, in order: the ``root`` argument, the ``VAE_DATA_DIR`` environment variable, or
``./data``; the layout is torchvision's (``ROOT/MNIST/raw/train-images-idx3-ubyte`` and so on).
Nothing is downloaded unless the caller asks (``download=True``).

A config's ``dataset`` is "mnist", "fashion", or the absolute path of a folder or zip of images; its
``image_shape`` (C, H, W) says how that folder's images were made (``vae.models.ModelConfig``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vae.errors import N_, Message

# name -> torchvision's dataset class, by its name (also its folder under the data root): torchvision is
# imported when a split is read (``dataset_class``), not with this module. Importing it took 1.7 s of
# the app's 4.2 s of imports on a 2-core machine, and the first page reads no split.
DATASETS = {"mnist": "MNIST", "fashion": "FashionMNIST"}


def dataset_class(name: str):
    """torchvision's dataset class for "mnist" or "fashion" (``torchvision.datasets.MNIST``, ...)."""
    from torchvision import datasets as tv_datasets

    return getattr(tv_datasets, DATASETS[name])
DATASET_NAMES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
CLASS_NAMES = {  # in English; Fashion-MNIST's are marked for the app's catalogue (shown translated by ui.models)
    "mnist": [str(d) for d in range(10)],
    "fashion": [N_("T-shirt/top"), N_("Trouser"), N_("Pullover"), N_("Dress"), N_("Coat"),
                N_("Sandal"), N_("Shirt"), N_("Sneaker"), N_("Bag"), N_("Ankle boot")],
}
RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


BINARIZATIONS = ("none", "dynamic")  # how training treats grey levels: as targets, or redrawn as bits


def stochastic_binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastic binarization (Salakhutdinov & Murray, 2008): every pixel an independent Bernoulli
    draw with its grey level as the probability. Not ``vae.ood.threshold_binarize`` ([x > 1/2]).

    images: float (B, C, H, W) in [0, 1]; returns float of the same shape in {0, 1}, with mean
    equal to the grey level. Drawn anew at each call ("dynamic binarization", Burda et al., 2016,
    Sec. 5.1) unless ``generator`` is seeded the same way, which makes a fixed binarization.
    """
    return torch.bernoulli(images, generator=generator)


def binarized_test_split(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The test images binarized once, the same way every time for the same seed (on the CPU).

    The field's likelihood protocol for MNIST scores a model on one fixed binarization of the test
    split (Burda et al., 2016; Tomczak & Welling, 2018). images: float (N, 1, 28, 28) in [0, 1] on
    the CPU; returns float (N, 1, 28, 28) in {0, 1}.
    """
    return stochastic_binarize(images.cpu(), torch.Generator().manual_seed(seed))


def split_train_val(n: int, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed (seed 0) random split of range(n) into train and validation indices: vae.train's
    validation split (also ``vae.train.split_train_val``), which a folder's data card counts ahead."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_val = max(1, int(round(n * val_fraction)))
    return perm[n_val:], perm[:n_val]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not under the data root (and were not, or could not be, downloaded)."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$VAE_DATA_DIR``, else ``./data``."""
    return Path(root or os.environ.get("VAE_DATA_DIR") or "data")


def has_split(name: str, split: str = "train", root: str | os.PathLike | None = None) -> bool:
    """Whether ``load_dataset(name, split, root)`` would find the split's files (torchvision's raw
    layout, decompressed: what its MNIST class checks), without reading them."""
    folder = data_root(root) / DATASETS[name] / "raw"
    return all((folder / f).is_file() for f in RAW_FILES[split])


def load_dataset(
    name: str, split: str = "train", root: str | os.PathLike | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole split into memory.

    name: "mnist" or "fashion"; split: "train" or "test".
    Returns (images, labels): float32 (N, 1, 28, 28) in [0, 1] and int64 (N,). N is read from the
    files (a user may point the root at a subset of their own).
    Raises ValueError for an unknown name or split, and DatasetNotFoundError naming the missing
    files and the folder searched when the files are absent and not downloaded.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in RAW_FILES:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    root = data_root(root)
    cls = dataset_class(name)
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


def write_sample(name: str, path: str | os.PathLike, per_class: int = 200, root=None, seed: int = 0) -> Path:
    """Save a class-balanced random sample of the test split as uint8 safetensors, for offline use.

    The file holds "images" uint8 (N, 28, 28), "labels" int64 (N,) and "indices" int64 (N,), the
    images' positions in the full test split, sorted. N = 10 * per_class.
    """
    from safetensors.torch import save_file

    images, labels = load_dataset(name, "test", root)
    gen = torch.Generator().manual_seed(seed)
    picks = [torch.nonzero(labels == c).flatten() for c in range(len(CLASS_NAMES[name]))]
    idx = torch.cat([p[torch.randperm(len(p), generator=gen)[:per_class]] for p in picks]).sort().values
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"images": (images[idx, 0] * 255).round().to(torch.uint8), "labels": labels[idx], "indices": idx}
    save_file(tensors, str(path), metadata={"dataset": name, "split": "test"})
    return path


def sample_file(samples_dir: str | os.PathLike, name: str) -> Path:
    """The bundled offline sample of dataset ``name`` in ``samples_dir`` (``pretrained/samples``)."""
    return Path(samples_dir) / f"{name}-test-sample.safetensors"


def load_test_images(
    name: str, root: str | os.PathLike | None = None, sample: str | os.PathLike | None = None,
    image_shape=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """The test split from the data root, or else the bundled sample at ``sample``.

    Returns (images float32 (N, C, H, W) in [0, 1], labels int64 (N,), indices int64 (N,) into
    the full test split, source) where source says in words which one was used. For a folder or zip
    of images (``name`` not "mnist" or "fashion") it is the folder's test split as ``load_split``
    reads it with ``image_shape`` (the model config's), indices 0..N-1, and no sample. Raises
    DatasetNotFoundError when neither is there, ``vae.folders.FolderDatasetError`` for a folder that
    is gone or cannot be read.
    """
    if not is_builtin(name):
        ds = _folder(name, image_shape)
        images, labels = ds.split("test")
        return images, labels, torch.arange(len(labels)), Message(N_("the test split of {dataset}, {n:,} images"),
                                                                  n=len(labels), dataset=dataset_title(name, ds.card))
    try:
        images, labels = load_dataset(name, "test", root)
        return images, labels, torch.arange(len(labels)), Message(N_("the {dataset} test split ({n:,} images)"),
                                                                  dataset=DATASET_NAMES.get(name, name), n=len(labels))
    except DatasetNotFoundError:
        if sample is None or not Path(sample).is_file():
            raise
    from safetensors.torch import load_file

    t = load_file(str(sample))
    images = t["images"].unsqueeze(1).to(torch.float32).div_(255)
    n = len(t["labels"])
    return images, t["labels"], t["indices"], Message(N_("a bundled sample of {n:,} {dataset} test images (the dataset is not on disk)"),
                                                   n=n, dataset=DATASET_NAMES.get(name, name))


def is_builtin(dataset: str) -> bool:
    """Whether ``dataset`` names MNIST or Fashion-MNIST ("mnist", "fashion") rather than a folder or zip."""
    return dataset in DATASETS


def dataset_title(dataset: str, card: dict | None = None) -> str:
    """A dataset in words for cards and captions: "MNIST", "Fashion-MNIST", or "NAME (your images)"
    with a folder's or zip's name (it reads right in "trained on ...", "the ... training split"),
    the data card's ``name`` when given (an upload's decoded file is named by a hash); a folder's as a
    ``vae.errors.Message``, which a UI says in its own language."""
    if is_builtin(dataset):
        return DATASET_NAMES[dataset]
    return Message(N_("{name} (your images)"), name=(card or {}).get("name") or Path(dataset).name)


def class_names(config: dict, metrics: dict | None = None) -> list[str]:
    """The class names of a model's dataset, in label order: MNIST's digits, Fashion-MNIST's items, or a
    folder's class folders (from the data card ``metrics["data"]`` its training wrote; without it the
    folder is read again, from the cache). An unlabelled folder has one class, named after it."""
    if is_builtin(config["dataset"]):
        return list(CLASS_NAMES[config["dataset"]])
    card = (metrics or {}).get("data")
    if card is None:
        from .folders import load_folder

        shape = config.get("image_shape")
        card = load_folder(config["dataset"], *(None, None) if shape is None else (int(shape[1]), int(shape[0]))).card
    return list(card["classes"])


def load_split(dataset: str, split: str = "train", root: str | os.PathLike | None = None,
               image_shape=None, cache_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A split of any dataset a config can name: (images float32 (N, C, H, W) in [0, 1], labels int64 (N,)).

    dataset: "mnist" or "fashion" (read from the data root ``root``; image_shape must then be None or
    (1, 28, 28)), or a folder or .zip of images (``vae.folders.load_folder`` with the size and channels
    of image_shape (C, S, S), None for its defaults; decoded once, then read from ``cache_dir``).
    split: "train" (for a folder: its training and validation images) or "test". Raises ValueError
    for an unknown split or a shape MNIST does not have, DatasetNotFoundError as ``load_dataset``,
    and ``vae.folders.FolderDatasetError`` for a folder or zip that cannot be a dataset.
    """
    if is_builtin(dataset):
        if image_shape is not None and tuple(image_shape) != (1, 28, 28):
            raise ValueError(f"{DATASET_NAMES[dataset]} is 28 x 28 grey, (1, 28, 28); got image_shape {list(image_shape)}")
        return load_dataset(dataset, split, root)
    if split not in RAW_FILES:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    return _folder(dataset, image_shape, cache_dir).split(split)


def _folder(dataset: str, image_shape=None, cache_dir: str | os.PathLike | None = None):
    """``vae.folders.load_folder`` of a folder, zip or decoded cache file at image_shape (C, S, S)."""
    from .folders import load_folder

    c, s = (None, None) if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
    return load_folder(dataset, s, c, cache_dir)


def main(argv: list[str] | None = None) -> None:
    """``python -m vae.data [--root DIR] [--write-samples DIR]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m vae.data", description="Download MNIST and Fashion-MNIST "
                                "(needs internet), or write the bundled offline samples.")
    p.add_argument("--root", default=None, help="default: $VAE_DATA_DIR, else ./data")
    p.add_argument("--write-samples", metavar="DIR", help="write DIR/NAME-test-sample.safetensors instead")
    a = p.parse_args(argv)
    for name in DATASETS:
        if a.write_samples:
            print("wrote", write_sample(name, sample_file(a.write_samples, name), root=a.root))
            continue
        for split in RAW_FILES:
            images, _ = load_dataset(name, split, a.root, download=True)
            print(f"{name} {split}: {images.shape[0]} images in {data_root(a.root).resolve()}")


if __name__ == "__main__":
    main()
