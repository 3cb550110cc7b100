"""Weights hashes of saved model files, loaded without running code from the file.

``weights_hash_from_file`` gives the hash :func:`mltrail.weights_hash` gives for the model
in memory, so a checkpoint found on disk can be traced back to the experiment and epoch that
produced it (``mltrail models find --weights-hash H``).

Supported files:

- ``pytorch``: ``torch.save(model.state_dict(), f)`` (also checkpoints holding the state dict
  under ``state_dict`` / ``model_state_dict``, as Lightning's ``.ckpt`` do), TorchScript
  archives, and ``.safetensors``. A safetensors file does not keep the state_dict order, so
  its tensors are taken in name order: the hash equals
  ``weights_hash({k: sd[k] for k in sorted(sd)})``, not ``weights_hash(sd)``.
  Pickled whole modules (``torch.save(model, f)``) are refused: loading them runs code.
- ``keras``: ``.keras`` / ``.h5`` full models (through Keras, safe mode), or ``.npz``.
- ``numpy``: ``.npz`` (in the order the arrays were saved) or ``.npy``, never unpickled.

Files are read with plain reads, never memory-mapped: a mapped file truncated by the training
loop writing its next checkpoint kills the reading process with SIGBUS. A file that changes
while it is read is refused (hash it again once it is written), so a hash is always that of
one version of the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mltrail.core.errors import ValidationError
from mltrail.core.weights import weights_hash

FRAMEWORKS = ("pytorch", "keras", "numpy")
_ALIASES = {"torch": "pytorch", "pytorch": "pytorch", "keras": "keras", "numpy": "numpy"}
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


def weights_hash_from_file(framework: str, path: str | Path) -> str:
    """The weights hash of a saved model file.

    Args:
        framework: ``pytorch``, ``keras`` or ``numpy``.
        path: the file.

    Returns:
        The 40-character hex sha1, as :func:`mltrail.weights_hash` defines it.

    Raises:
        ValidationError: an unknown framework, a missing or unreadable file, or a file kind
            the framework cannot hold (the field is ``framework`` or ``model``).
    """
    kind = _ALIASES.get(str(framework).strip().lower())
    if kind is None:
        raise ValidationError(
            f"must be one of {', '.join(FRAMEWORKS)}, got {framework!r}", "framework"
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValidationError(f"no such file: {file}", "model")
    loader = {"pytorch": _torch_tensors, "keras": _keras_tensors, "numpy": _numpy_tensors}[kind]
    before = _version(file)
    tensors = loader(file)  # in memory: what happens to the file from here on changes nothing
    if _version(file) != before:
        raise ValidationError(
            f"{file.name} changed while it was read; hash it again once it is written", "model"
        )
    return weights_hash(tensors)


def _version(file: Path) -> tuple[int, ...]:
    """What tells one version of a file from the next: a rewrite in place changes its size or
    modification time, a rename over it its inode."""
    try:
        found = os.stat(file)
    except OSError as exc:
        raise ValidationError(f"cannot read {file}: {exc}", "model") from None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


def _numpy_tensors(file: Path) -> list[Any]:
    import numpy as np

    if file.suffix not in (".npz", ".npy"):
        raise ValidationError(f"numpy models must be .npz or .npy files, got {file.name}", "model")
    try:
        loaded = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValidationError(f"cannot read {file.name} as numpy arrays: {exc}", "model") from None
    if isinstance(loaded, np.ndarray):
        return [loaded]
    with loaded:
        try:
            return [loaded[name] for name in loaded.files]
        except ValueError as exc:  # object arrays would need pickle
            raise ValidationError(f"cannot read {file.name}: {exc}", "model") from None


def _torch_tensors(file: Path) -> Any:
    if file.suffix == ".safetensors":
        return _safetensors(file)
    if file.suffix in (".npz", ".npy"):
        return _numpy_tensors(file)
    try:
        import torch
    except ImportError:
        raise ValidationError(
            "PyTorch is not installed: pip install 'mltrail[torch]'", "framework"
        ) from None
    try:
        loaded = _torch_load(torch, file)
    except Exception as exc:
        return _torchscript_or_refuse(torch, file, exc)
    return _state_dict_of(loaded, file)


def _torch_load(torch: Any, file: Path) -> Any:
    """The file's tensors (no code run), read into memory through an open file (never mapped:
    see the module's docstring; a rename over the file meanwhile leaves this one readable)."""
    with open(file, "rb") as handle:
        return torch.load(handle, map_location="cpu", weights_only=True)


def _torchscript_or_refuse(torch: Any, file: Path, first_error: Exception) -> Any:
    try:
        return torch.jit.load(str(file), map_location="cpu").state_dict()
    except Exception:
        raise ValidationError(
            f"{file.name} is not a state_dict, checkpoint or TorchScript file that loads without "
            "running code (save model.state_dict() instead of the pickled module): "
            f"{str(first_error).splitlines()[0] if str(first_error) else type(first_error).__name__}",
            "model",
        ) from None


def _state_dict_of(loaded: Any, file: Path) -> Mapping[str, Any]:
    if isinstance(loaded, Mapping):
        for key in _STATE_DICT_KEYS:
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and inner and _all_tensors(inner):
                return inner
        if loaded and _all_tensors(loaded):
            return loaded
    raise ValidationError(
        f"{file.name} holds no state_dict (a mapping of names to tensors)", "model"
    )


def _all_tensors(mapping: Mapping[str, Any]) -> bool:
    return all(
        type(v).__module__.startswith("torch") and hasattr(v, "shape") for v in mapping.values()
    )


def _safetensors(file: Path) -> list[Any]:
    """Tensors in name order: safetensors files do not keep the state_dict order. Read from
    the file's bytes (``safe_open`` would map it)."""
    try:
        from safetensors import numpy as as_numpy
    except ImportError:
        raise ValidationError(
            "safetensors is not installed: pip install 'mltrail[torch]'", "model"
        ) from None
    data = file.read_bytes()
    try:
        try:
            tensors: dict[str, Any] = as_numpy.load(data)
        except (TypeError, KeyError):  # bfloat16 and other dtypes numpy lacks: through torch
            from safetensors import torch as as_torch

            tensors = as_torch.load(data)
    except Exception as exc:
        raise ValidationError(f"cannot read {file.name} as safetensors: {exc}", "model") from None
    return [tensors[name] for name in sorted(tensors)]


def _keras_tensors(file: Path) -> Any:
    if file.suffix in (".npz", ".npy"):
        return _numpy_tensors(file)
    if file.suffix not in (".keras", ".h5"):
        raise ValidationError(
            f"keras models must be .keras, .h5 or .npz files, got {file.name}", "model"
        )
    try:
        import keras
    except ImportError as exc:  # Keras 3 also fails here when its backend is missing
        raise ValidationError(
            f"cannot import Keras ({exc}); install keras, or set KERAS_BACKEND=torch", "framework"
        ) from None
    try:
        return keras.saving.load_model(file, compile=False, safe_mode=True)
    except Exception as exc:
        raise ValidationError(f"cannot load {file.name} with Keras: {exc}", "model") from None
