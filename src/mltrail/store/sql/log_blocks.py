"""Log lines kept in blocks: up to ``BLOCK_LINES`` consecutive lines of one experiment (and
``BLOCK_CHARS`` characters of messages) in one row of ``log_blocks``, their columns in one JSON
document.

Reading a million lines then takes a few hundred rows, not a million: the driver's cost per
row (a tuple and six values made in Python) was the floor of ``experiments logs``. A block
holds the lines ``first_seq`` .. ``first_seq + count - 1``; lines are numbered gap-free by
the experiment's ``log_count`` counter. A batch's lines go into new blocks; a batch holding
a multiple of ``SHORT_BLOCK`` first takes back the blocks written since the previous one
(batches that held none, so shorter than it) and writes them again with its own lines, in
its transaction. The SDK sends a second's lines at a time, often a handful: blocks stay about
``SHORT_BLOCK`` lines or longer, and a batch rewrites lines only once per ``SHORT_BLOCK``.
Messages are kept in their stored form (see :mod:`mltrail.core.text`): ``escaped``
lists the block's lines whose message is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

BLOCK_LINES = 4096  # a page read from an arbitrary line decodes at most this many it skips
SHORT_BLOCK = 128  # blocks written since a multiple of this are merged at the next one
# and at most this many characters of messages past a block's first line: 4,096 lines of up to
# 65,536 characters, JSON-escaped at up to 6 bytes each, would pass SQLite's and PostgreSQL's
# 1 GB value limits; capped, a block stays under about 25 MB
BLOCK_CHARS = 1 << 22


def block_bounds(messages: Sequence[str]) -> list[tuple[int, int]]:
    """Where consecutive lines are cut into blocks: ``(start, stop)`` of each, at most
    ``BLOCK_LINES`` lines and, past its first line, ``BLOCK_CHARS`` characters of messages."""
    count = len(messages)
    if sum(map(len, messages)) <= BLOCK_CHARS:  # the common case: lines alone decide
        return [(start, min(start + BLOCK_LINES, count)) for start in range(0, count, BLOCK_LINES)]
    bounds, start, chars = [], 0, 0
    for i, size in enumerate(map(len, messages)):
        if i > start and (i - start == BLOCK_LINES or chars + size > BLOCK_CHARS):
            bounds.append((start, i))
            start, chars = i, 0
        chars += size
    bounds.append((start, count))
    return bounds


def encode_block(
    times: Sequence[float],
    streams: Sequence[str],
    levels: Sequence[str],
    messages: Sequence[str],
    escaped: Sequence[bool],
) -> bytes:
    """One block's ``data``: the lines' columns, messages in their stored (escaped) form."""
    return orjson.dumps(
        {
            "time": list(times),
            "stream": list(streams),
            "level": list(levels),
            "message": list(messages),
            "escaped": [i for i, flag in enumerate(escaped) if flag],
        }
    )


def decode_block(data: bytes | memoryview) -> dict[str, Any]:
    """The columns of :func:`encode_block` (``escaped`` as the indices of escaped lines)."""
    block: dict[str, Any] = orjson.loads(data)
    return block
