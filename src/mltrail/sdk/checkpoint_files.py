"""Local files waiting to be uploaded: copies of the user's files and saved models.

The training thread does at most one local write per file here (a copy, or the model saved
once; a PyTorch model on the CPU is copied in memory instead, :func:`snapshot_state`, and
written by the uploader's thread), so a file changed or overwritten afterwards (Lightning's
``last.ckpt``) is uploaded as it was when logged. Everything else (hashing, uploading) happens in the uploader's thread.
"""

from __future__ import annotations

import hashlib
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

        # through a file object, as save_snapshot writes: given a path, torch.save names the
        # archive's records after the file (a random temporary name here), so the same weights
        # made different bytes, a sha256 of their own and a second blob, run after run
        with file.open("wb") as out:
            torch.save(_torch_state(model), out)
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


def snapshot_state(model: Any, spare: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """A copy in memory of a PyTorch model's state_dict, for :func:`save_snapshot` to write
    later from another thread; None for other models, state_dicts holding non-tensors, and
    tensors off the CPU (a second copy in GPU memory could run the training out of it).

    A copy of 100 MB of tensors costs the training thread a fraction of writing them with
    ``torch.save``, and less again into ``spare`` (the last snapshot, once written): its
    tensors of the same layout are overwritten, so no fresh pages are faulted in. Entries
    that are the same view of one storage (tied weights) stay shared, so the file written
    holds that storage once, as ``torch.save`` of the model would.
    """
    state = _torch_state(model)
    if state is None or not all(
        _is_torch(v) and hasattr(v, "clone") and getattr(v.device, "type", None) == "cpu"
        for v in state.values()
    ):
        return None
    copies: dict[tuple[Any, ...], Any] = {}
    reused: set[int] = set()
    snapshot = {}
    for key, tensor in state.items():
        view = (tensor.data_ptr(), tensor.dtype, tuple(tensor.size()), tuple(tensor.stride()))
        if view not in copies:
            old = spare.get(key) if spare is not None else None
            if old is not None and id(old) not in reused and view[1:] == _layout(old):
                reused.add(id(old))
                copies[view] = old.copy_(tensor.detach())
            else:
                copies[view] = tensor.detach().clone()
        snapshot[key] = copies[view]
    return snapshot


def _layout(tensor: Any) -> tuple[Any, ...]:
    if not _is_torch(tensor) or tensor.device.type != "cpu" or tensor.storage_offset():
        return ()
    return (tensor.dtype, tuple(tensor.size()), tuple(tensor.stride()))


class _HashingFile:
    """A file written through ``write`` only, hashing what passes (``torch.save`` writes its
    zip archive through it: the sha256 comes without reading the file back)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.size += len(memoryview(data))
        written: int = self.out.write(data)
        return written

    def flush(self) -> None:
        self.out.flush()


def save_snapshot(snapshot: Mapping[str, Any], file: Path) -> tuple[str, int]:
    """Write a :func:`snapshot_state` copy with ``torch.save``; returns the file's (sha256, size)."""
    import torch

    with file.open("wb") as out:
        hashing = _HashingFile(out)
        torch.save(dict(snapshot), hashing)  # type: ignore[arg-type]  # only write() is used
    return hashing.digest.hexdigest(), hashing.size


def checkpoint_name(suffix: str, iteration: int | None, epoch: int | None) -> str:
    """The default artifact path of a model checkpoint: ``checkpoints/epoch-0003.pt``."""
    if epoch is not None:
        return f"checkpoints/epoch-{epoch:04d}{suffix}"
    if iteration is not None:
        return f"checkpoints/iteration-{iteration:08d}{suffix}"
    return f"checkpoints/model{suffix}"
