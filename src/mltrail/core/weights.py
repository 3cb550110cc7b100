"""Model weights hashing, exactly as the contract defines it.

The weights hash of a model is::

    sha1( sha1(tensor_1) + sha1(tensor_2) + ... + sha1(tensor_n) )

where each ``sha1(tensor_i)`` is the lower-case hex sha1 of that tensor's raw C-contiguous bytes
(native dtype, no header), the tensors are taken in the model's order (``state_dict`` order for
PyTorch, ``get_weights()`` order for Keras, list order or dict insertion order for numpy), and
``+`` concatenates the 40-character hex strings. Worked example (recompute it with hashlib)::

    >>> import numpy as np
    >>> layers = [np.array([1.0, 2.0], dtype=np.float32), np.array([[3]], dtype=np.int64)]
    >>> h1 = hashlib.sha1(layers[0].tobytes()).hexdigest()
    >>> h2 = hashlib.sha1(layers[1].tobytes()).hexdigest()
    >>> weights_hash(layers) == hashlib.sha1((h1 + h2).encode()).hexdigest()
    True

With the contract's own example, layer hashes ``['abc', '123', 'def']`` give
``combine_hashes(['abc', '123', 'def']) == sha1('abc123def')``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from mltrail.core.errors import ValidationError


def tensor_sha1(array: Any) -> str:
    """Hex sha1 of one tensor's raw C-contiguous bytes."""
    return hashlib.sha1(_tensor_bytes(array)).hexdigest()


def combine_hashes(layer_hashes: Iterable[str]) -> str:
    """Hex sha1 of the concatenated per-layer hex strings."""
    return hashlib.sha1("".join(layer_hashes).encode("ascii")).hexdigest()


def weights_hash(model: Any) -> str:
    """The weights hash of a PyTorch module or state_dict, a Keras model, or numpy arrays.

    Args:
        model: a ``torch.nn.Module``, a ``state_dict`` (or any mapping of name to tensor), a
            Keras model (anything with ``get_weights()``), or a list/tuple/dict of arrays.

    Returns:
        The 40-character lower-case hex sha1.

    Raises:
        ValidationError: the object holds no tensors or is of an unknown kind.
    """
    tensors = list(iter_tensors(model))
    if not tensors:
        raise ValidationError("holds no weights to hash", "model")
    return combine_hashes(tensor_sha1(t) for t in tensors)


def iter_tensors(model: Any) -> Iterable[Any]:
    """The tensors of ``model`` in the order the hash takes them."""
    if hasattr(model, "state_dict") and callable(model.state_dict):
        return list(model.state_dict().values())
    if hasattr(model, "get_weights") and callable(model.get_weights):
        return list(model.get_weights())
    if isinstance(model, Mapping):
        return list(model.values())
    if isinstance(model, (list, tuple)):
        return list(model)
    if isinstance(model, np.ndarray):
        return [model]
    raise ValidationError(
        f"must be a PyTorch module or state_dict, a Keras model, or a list/dict of arrays, got {type(model).__name__}",
        "model",
    )


def _tensor_bytes(array: Any) -> bytes:
    if isinstance(array, np.ndarray):
        return np.ascontiguousarray(array).tobytes()
    if type(array).__module__.startswith("torch"):
        return _torch_bytes(array)
    if hasattr(array, "numpy"):  # TensorFlow / Keras variables
        return np.ascontiguousarray(array.numpy()).tobytes()
    if isinstance(array, (int, float, list, tuple)):
        return np.ascontiguousarray(np.asarray(array)).tobytes()
    raise ValidationError(f"cannot hash a value of type {type(array).__name__}", "model")


def _torch_bytes(tensor: Any) -> bytes:
    import torch  # already imported by the caller's code when a tensor reaches here

    flat = tensor.detach().cpu().contiguous().reshape(-1)
    # view as bytes so dtypes numpy lacks (bfloat16, float8) hash their raw memory too
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
