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
    """Recursively turn tagged floats back into Python floats.

    Raises:
        ValidationError: an unknown tag, or JSON nested deeper than Python's stack can walk
            (a few hundred levels parse, then the walk's RecursionError was a 500).
    """
    try:
        return _from_wire(value)
    except RecursionError:
        raise ValidationError("is nested too deeply", "body") from None


def _from_wire(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$float" in value:
            tag = value["$float"]
            if tag not in _NON_FINITE:
                raise ValidationError(f"unknown $float tag {tag!r}", "$float")
            return _NON_FINITE[tag]
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
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


# bytes.translate marks each byte: digits b"1", the bytes of a float's fraction or exponent
# (. e E +) b"x", the minus sign b"-", anything else b"0". An integer token of 19 digits then
# reads b"0" + 19 b"1" (b"0-" before a negative one): one C pass and two substring searches,
# ~1 GB/s (a regex or a numpy scan took longer than parsing the body). Floats are not
# matched: a metric value such as 0.0016565795211280765 holds 19 digits after its point, and
# sent almost every MLflow log-batch body to the standard library's parser.
_INT_MARKS = bytes(
    0x31 if 0x30 <= i <= 0x39 else 0x78 if i in b".eE+" else 0x2D if i == 0x2D else 0x30
    for i in range(256)
)
_LONG_INT = b"0" + b"1" * 19
_LONG_NEGATIVE_INT = b"0-" + b"1" * 19


def _may_hold_long_int(text: str | bytes) -> bool:
    """Whether ``text`` has an integer token of 19 digits or more (a superset of the integers
    beyond 64 bits: digits in strings count too, a float's fraction or exponent does not)."""
    if isinstance(text, str):
        text = text.encode(errors="surrogatepass")
    marked = b"0" + text.translate(_INT_MARKS)
    return _LONG_INT in marked or _LONG_NEGATIVE_INT in marked


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
