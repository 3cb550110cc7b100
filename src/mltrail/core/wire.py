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
import sys
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


if sys.version_info >= (3, 11):

    def _b64decode_strict(text: str) -> bytes:
        """The checks of ``b64decode(validate=True)`` in C: 1.4-1.7x its speed (16 KB)."""
        return binascii.a2b_base64(text, strict_mode=True)

else:  # strict_mode is new in 3.11

    def _b64decode_strict(text: str) -> bytes:
        return base64.b64decode(text, validate=True)


def unpack_array(text: str, dtype: str, length: int, field: str) -> np.ndarray:
    """Inverse of :func:`pack_array`, checking the length; ValidationError on bad input."""
    try:
        raw = _b64decode_strict(text)
    except (binascii.Error, ValueError, TypeError):
        raise ValidationError("must be base64 of a little-endian array", field) from None
    width = np.dtype(dtype).itemsize
    if len(raw) != length * width:
        raise ValidationError(f"holds {len(raw) // width} values, expected {length}", field)
    return np.frombuffer(raw, dtype=dtype).astype(dtype[1:], copy=False)


# A byte that may stand just before an integer token: not a digit, nor a float's ``. e E +``,
# nor ``-`` (a negative integer's own sign is looked past, see _may_hold_long_int).
_DIGIT = np.zeros(256, np.bool_)
_DIGIT[0x30:0x3A] = True
_BEFORE_INT = ~_DIGIT
_BEFORE_INT[list(b".eE+-")] = False
_MINUS = 0x2D
_ZERO, _TEN = np.uint8(0x30), np.uint8(10)
_TWO_SPACES = np.frombuffer(b"  ", np.uint8)


def _may_hold_long_int(text: str | bytes) -> bool:
    """Whether ``text`` has an integer token of 19 digits or more (a superset of the integers
    beyond 64 bits: digits in strings count too, a float's fraction or exponent does not).

    numpy marks the digits and ANDs shifted copies of the marks (2, 4, 8, 16, then 19 digits
    in a row): a few passes at vector speed (a table lookup per byte instead took 8 times as
    long as the whole scan), where ``bytes.translate`` and two substring
    searches took 2 million instructions on a 1,000-metric MLflow log-batch body (as much as
    half of orjson's parse of it). Only runs of 19 digits are then judged by the byte before
    them, so a metric value such as 0.0016565795211280765 (19 digits after its point) costs
    nothing more and still goes to orjson."""
    if isinstance(text, str):
        text = text.encode(errors="surrogatepass")
    if len(text) < 19:
        return False
    marks = np.frombuffer(text, np.uint8)
    run = (marks - _ZERO) < _TEN  # bytes under "0" wrap around (uint8): not digits either
    for width in (1, 2, 4, 8):  # run[i]: the 2 * width bytes from i are all digits
        run = run[:-width] & run[width:]
    run = run[:-3] & run[3:]  # 19 digits from i
    if not run.any():
        return False
    starts = np.flatnonzero(run)
    padded = np.concatenate((_TWO_SPACES, marks))  # padded[i + 2] is marks[i]
    before, twice = padded[starts + 1], padded[starts]
    return bool((_BEFORE_INT[before] | ((before == _MINUS) & _BEFORE_INT[twice])).any())


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
