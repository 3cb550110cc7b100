"""The JSON wire form shared by the server, HttpStore and the web UI.

JSON has no NaN or infinities, and mltrail keeps values exactly, so every non-finite float is
sent as ``{"$float": "NaN" | "Infinity" | "-Infinity"}`` (in JavaScript: ``Number(v.$float)``).
Bulk numeric columns (metric ingest) travel as base64 of little-endian int64/float64 arrays.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np

from mltrail.core.errors import ValidationError

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_float(value: float) -> float | dict[str, str]:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return {"$float": "NaN"}
    return {"$float": "Infinity" if value > 0 else "-Infinity"}


def to_wire(value: Any) -> Any:
    """Recursively replace non-finite floats by their tagged form."""
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


def from_wire(value: Any) -> Any:
    """Recursively turn tagged floats back into Python floats."""
    if isinstance(value, dict):
        if len(value) == 1 and "$float" in value:
            tag = value["$float"]
            if tag not in _NON_FINITE:
                raise ValidationError(f"unknown $float tag {tag!r}", "$float")
            return _NON_FINITE[tag]
        return {k: from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    return value


def floats_to_wire(values: np.ndarray) -> list[Any]:
    """A float array as a JSON list, tagging only the non-finite entries (fast path when none)."""
    array = np.asarray(values, dtype=np.float64)
    out = array.tolist()
    if not np.isfinite(array).all():
        for i in np.flatnonzero(~np.isfinite(array)).tolist():
            out[i] = encode_float(out[i])
    return out


def pack_array(array: np.ndarray, dtype: str) -> str:
    """base64 of the array as little-endian ``dtype`` ('<i8' or '<f8')."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def unpack_array(text: str, dtype: str, length: int, field: str) -> np.ndarray:
    """Inverse of :func:`pack_array`, checking the length; ValidationError on bad input."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ValidationError("must be base64 of a little-endian array", field) from None
    width = np.dtype(dtype).itemsize
    if len(raw) != length * width:
        raise ValidationError(f"holds {len(raw) // width} values, expected {length}", field)
    return np.frombuffer(raw, dtype=dtype).astype(dtype[1:], copy=False)
