"""The JSON conventions shared by the server, HttpStore, the spool and the web UI.

JSON has no NaN or infinities, and mltrail keeps values exactly, so every non-finite float is
sent as ``{"$float": "NaN" | "Infinity" | "-Infinity"}`` (in JavaScript: ``Number(v.$float)``);
that tag is the one convention, in every body and file. Integers beyond 64 bits stay exact
(:func:`parse_json`, :func:`dump_json`). Bulk numeric columns (metric ingest) travel as base64
of little-endian int64/float64 arrays. :mod:`mltrail.core.codec` builds records on these.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

import numpy as np
import orjson

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


_SHORT_TEXT = 4096  # below this many characters a regex scan is cheapest
_LONG_DIGITS = re.compile(r"\d{19}")  # 19 digits: what an integer beyond 64 bits needs
# bytes.translate maps every digit to b"1" and everything else to b"0": one C pass, then a
# substring search, ~1 GB/s (a regex or a numpy scan took longer than parsing the body)
_DIGITS_TO_ONES = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_DIGIT_RUN = b"1" * 19


def _may_hold_long_int(text: str | bytes) -> bool:
    """Whether ``text`` has a run of 19 digits (a superset of integers beyond 64 bits)."""
    if isinstance(text, str):
        if len(text) < _SHORT_TEXT:
            return _LONG_DIGITS.search(text) is not None
        text = text.encode()
    return _DIGIT_RUN in text.translate(_DIGITS_TO_ONES)


def parse_json(text: str | bytes) -> Any:
    """JSON text to Python values, exactly: orjson when it can be trusted, else the standard
    library.

    orjson parses several times faster, but turns integers beyond 64 bits into floats without
    a word and refuses ``NaN``/``Infinity`` tokens and lone surrogates; such texts go to
    :func:`json.loads`, which keeps all of them exact.

    Raises:
        ValueError: not JSON, nested too deeply, or an integer over Python's 4,300 digits.
    """
    if not _may_hold_long_int(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text)
    except RecursionError:  # orjson refused it too (over 1,024 levels): not mltrail's JSON
        raise ValueError("JSON nested too deeply") from None


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)


def dump_json(body: Any) -> bytes:
    """JSON bytes of an already tagged body: orjson, or the standard library for integers
    beyond 64 bits (which orjson refuses)."""
    try:
        return orjson.dumps(body, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return json.dumps(body, default=_default, separators=(",", ":")).encode()
