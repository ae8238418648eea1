"""Checkpoints: one folder per model with ``model.safetensors``, ``config.json`` and ``metrics.json``.

No pickle anywhere: weights are safetensors, everything else JSON. Every file is written to a
temporary name in the same folder and renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .models import build_model
from .errors import N_, UserError

WEIGHTS, CONFIG, METRICS = "model.safetensors", "config.json", "metrics.json"


NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a saved model's folder name


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete, malformed, or does not match its config."""


class ModelNameError(UserError, ValueError):
    """A name for a saved model is malformed or already taken; the message (a ``vae.errors.Message``) says
    which."""


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file to ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: dict) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def save_checkpoint(model: torch.nn.Module, config: dict, metrics: dict, folder: str | os.PathLike) -> Path:
    """Write the model's weights, its config (enough for ``build_model``) and metrics to ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    write_json(folder / CONFIG, config)
    write_json(folder / METRICS, metrics)
    return folder


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing from {path.parent}")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} should hold a JSON object, found {type(obj).__name__}")
    return obj


def load_checkpoint(folder: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild a model from its folder; returns (model in eval mode on ``device``, config, metrics).

    Every tensor's name and shape is checked against the model its config describes. Raises
    CheckpointError, with the file and what is wrong, for a missing folder or file, malformed JSON,
    an unknown model type, a truncated or corrupt safetensors file, or missing, unexpected or
    mis-shaped tensors.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}")
    config = _read_json(folder / CONFIG)
    metrics = _read_json(folder / METRICS) if (folder / METRICS).exists() else {}
    for part in metrics.values():  # files written before the key was renamed say "elbo" for -ELBO
        if isinstance(part, dict) and "elbo" in part and "neg_elbo" not in part:
            part["neg_elbo"] = part.pop("elbo")
    try:
        model = build_model(config)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / CONFIG} does not describe a model: {err!r}") from err
    path = folder / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{WEIGHTS} is missing from {folder}")
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({err})") from err
    expected = model.state_dict()
    missing, unexpected = expected.keys() - state.keys(), state.keys() - expected.keys()
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match {CONFIG}: missing tensors {sorted(missing)}, "
            f"unexpected tensors {sorted(unexpected)}"
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: tensor {name} has shape {tuple(state[name].shape)}, "
                f"the config's model needs {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    return model.to(device).eval(), config, metrics


def zip_folder(folder: str | os.PathLike, name: str) -> bytes:
    """A zip, built in memory, of a model folder's weights, config and metrics under ``name/``.

    Raises FileNotFoundError when one of the three files is missing.
    """
    folder, buffer = Path(folder), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for file in (WEIGHTS, CONFIG, METRICS):
            z.write(folder / file, f"{name}/{file}")
    return buffer.getvalue()


_save_lock = threading.Lock()


def save_user_model(folder: str | os.PathLike, name: str, root: str | os.PathLike,
                    reserved: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Copy a model folder to ``root/name``; returns the new folder.

    Never overwrites: raises ModelNameError when ``name`` is not 1 to 64 letters, digits, - and _,
    or when a folder of that name exists in ``root`` or in any ``reserved`` folder (the shipped
    models). The copy is made under a temporary name in ``root`` and renamed into place.
    """
    if not NAME_PATTERN.fullmatch(name or ""):
        raise ModelNameError(N_("{name!r} is not a usable name: use 1 to 64 letters, digits, - and _."), name=name)
    root = Path(root)
    with _save_lock:
        for place, taken in [*((Path(r), N_("{name} is already taken by a shipped model; pick another name."))
                                for r in reserved), (root, N_("{name} is already taken by a saved model; pick another name."))]:
            if (place / name).exists():
                raise ModelNameError(taken, name=name)
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
        try:
            for file in (WEIGHTS, CONFIG, METRICS):
                shutil.copyfile(Path(folder) / file, tmp / file)
            tmp.chmod(0o755)
            os.rename(tmp, root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return root / name


def weights_sha256(folder: str | os.PathLike) -> str:
    """SHA-256 (hex) of a checkpoint folder's model.safetensors: what stored maps and attribute
    directions record, to tell whether they are stale."""
    return hashlib.sha256((Path(folder) / WEIGHTS).read_bytes()).hexdigest()
