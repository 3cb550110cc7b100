"""Local files waiting to be uploaded: copies of the user's files and saved models.

The training thread does exactly one local write per file here (a copy, or the model saved
once), so a file changed or overwritten afterwards (Lightning's ``last.ckpt``) is uploaded as it
was when logged. Everything else (hashing, uploading) happens in the uploader's thread.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mltrail.core.errors import ValidationError


def kept_name(folder: Path, name: str) -> Path:
    """A fresh path in ``folder`` ending in ``name``'s file name (folder made when missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex[:12]}-{name.rsplit('/', 1)[-1]}"


def keep_copy(file: Path, folder: Path, name: str) -> Path:
    """Copy ``file`` into ``folder`` (the kernel copies: ``sendfile`` / ``copy_file_range``)."""
    kept = kept_name(folder, name)
    shutil.copyfile(file, kept)
    return kept


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")


def _torch_state(model: Any) -> Mapping[str, Any] | None:
    """The state_dict to save for a torch module or state_dict, else None."""
    if _is_torch(model) and hasattr(model, "state_dict") and callable(model.state_dict):
        return dict(model.state_dict())
    if hasattr(model, "state_dict") and callable(model.state_dict) and hasattr(model, "parameters"):
        return dict(model.state_dict())  # a Lightning or Transformers module (torch underneath)
    if isinstance(model, Mapping) and model and all(_is_torch(v) for v in model.values()):
        return model
    return None


def model_suffix(model: Any) -> str:
    """The file suffix :func:`save_model` writes for ``model`` (so its framework is known)."""
    if _torch_state(model) is not None:
        return ".pt"
    if hasattr(model, "get_weights") and hasattr(model, "save"):
        return ".keras"
    if isinstance(model, (list, tuple, Mapping)) or type(model).__module__ == "numpy":
        return ".npz"
    raise ValidationError(
        "must be a file path, a PyTorch module or state_dict, a Keras model, or numpy arrays, "
        f"got {type(model).__name__}",
        "model",
    )


def save_model(model: Any, file: Path) -> None:
    """Save ``model`` to ``file`` in the format its suffix (from :func:`model_suffix`) says.

    PyTorch: ``torch.save(state_dict)`` (loads with ``torch.load(weights_only=True)``); Keras:
    ``model.save`` (``.keras``); numpy arrays: ``numpy.savez`` in their order.
    """
    if file.suffix == ".pt":
        import torch

        torch.save(_torch_state(model), file)
    elif file.suffix == ".keras":
        model.save(file)
    else:
        import numpy as np

        savez: Any = np.savez
        if isinstance(model, Mapping):
            savez(file, **{str(k): np.asarray(v) for k, v in model.items()})
        else:
            arrays = [model] if type(model).__module__ == "numpy" else list(model)
            savez(file, *[np.asarray(a) for a in arrays])


def checkpoint_name(suffix: str, iteration: int | None, epoch: int | None) -> str:
    """The default artifact path of a model checkpoint: ``checkpoints/epoch-0003.pt``."""
    if epoch is not None:
        return f"checkpoints/epoch-{epoch:04d}{suffix}"
    if iteration is not None:
        return f"checkpoints/iteration-{iteration:08d}{suffix}"
    return f"checkpoints/model{suffix}"
