"""Text that databases and strict JSON cannot hold, escaped reversibly.

Captured output is not always valid text: a NUL byte (``"a\\x00b"``), or bytes that are not
UTF-8, which Python decodes with ``errors="surrogateescape"`` into lone surrogates
(``b"\\xff"`` -> ``"\\udcff"``). PostgreSQL refuses NUL in text, SQLite's driver and orjson
refuse lone surrogates. So a log message holding either is *escaped*, and carries a flag
saying so (the ``escaped`` list of a log block, ``store/sql/log_blocks.py``;
``"escaped": true`` on the wire and in spool files):

* ``\\`` becomes ``\\\\``;
* NUL becomes ``\\0``;
* a surrogate U+DC80..U+DCFF (the byte 0x80..0xFF under ``surrogateescape``) becomes
  ``\\xHH``, the original byte in two lower-case hex digits;
* any other lone surrogate becomes ``\\uHHHH``.

Everything else is kept as it is. Messages without NUL or lone surrogates (nearly all) are
stored and sent unchanged with the flag off, so the common case costs one regex scan.
:func:`unescape_text` reverses the escape exactly: the Python API returns the original text,
and ``text.encode("utf-8", "surrogateescape")`` gives the original bytes back.
"""

from __future__ import annotations

import re

_NEEDS_ESCAPE = re.compile("[\x00\ud800-\udfff]")
_TO_ESCAPE = re.compile("[\\\\\x00\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(?:(\\)|(0)|x([0-9a-f]{2})|u([0-9a-f]{4}))")


def as_text(value: str | bytes) -> str:
    """``value`` as text; bytes are decoded as UTF-8, invalid bytes kept as lone surrogates."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def escape_text(text: str) -> tuple[str, bool]:
    """``(text, False)`` when it holds no NUL and no lone surrogate, else the escaped text and
    ``True``. The escaped text is valid UTF-8 without NUL."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text, False
    return _TO_ESCAPE.sub(_escape_char, text), True


def unescape_text(text: str, escaped: bool = True) -> str:
    """The original of an :func:`escape_text` result (``text`` itself when not ``escaped``)."""
    if not escaped:
        return text
    return _ESCAPE.sub(_unescape_match, text)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    if char == "\x00":
        return "\\0"
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def _unescape_match(match: re.Match[str]) -> str:
    backslash, nul, byte, code = match.groups()
    if backslash:
        return "\\"
    if nul:
        return "\x00"
    if byte:
        return chr(0xDC00 + int(byte, 16))
    return chr(int(code, 16))
