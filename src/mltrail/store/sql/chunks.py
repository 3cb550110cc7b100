"""The packed form of a chunk of metric points (one ``metric_chunks.data`` value), and the
compaction that merges small chunks.

Columns are delta-encoded where regular (iterations, times in milliseconds), byte-shuffled
into planes, constant planes kept as one byte, the rest deflated.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection, delete, select

from mltrail.core.types import SeriesChunk
from mltrail.store.sql.engine import select_any
from mltrail.store.sql.tables import metric_chunks

_COLUMNS = 4  # iteration deltas, epochs, value bits, time deltas (ms): all int64
_PLANES = _COLUMNS * 8
_FORMAT = 1
_HEADER = struct.Struct("<BqqI")  # format, first iteration, first time (ms), constant planes


def _deltas(column: np.ndarray) -> np.ndarray:
    """Deltas with the first slot filled like the second, so regular columns stay constant."""
    out = np.diff(column, prepend=column[:1])
    if len(out) > 1:
        out[0] = out[1]
    return out


def encode_chunk(chunk: SeriesChunk) -> bytes:
    """Pack a chunk's columns into bytes (values bit-exact).

    The four int64 columns are byte-shuffled into 32 byte planes; planes holding one repeated
    byte (regular iterations, a constant epoch, the zero high bytes of small deltas) are stored
    as that byte in the header, the rest are deflated at level 1.
    """
    n = len(chunk)
    millis = np.round(chunk.times * 1000.0).astype(np.int64)
    table = np.empty((_COLUMNS, n), dtype="<i8")
    table[0] = _deltas(chunk.iterations)
    table[1] = chunk.epochs
    table[2] = np.ascontiguousarray(chunk.values, dtype="<f8").view("<i8")
    table[3] = _deltas(millis)
    planes = table.view(np.uint8).reshape(_COLUMNS, n, 8).transpose(0, 2, 1).reshape(_PLANES, n)
    constant = np.all(planes == planes[:, :1], axis=1)
    mask = int(np.packbits(constant, bitorder="little").view("<u4")[0])
    header = _HEADER.pack(_FORMAT, int(chunk.iterations[0]), int(millis[0]), mask)
    body = zlib.compress(np.ascontiguousarray(planes[~constant]).tobytes(), 1)
    return header + planes[constant, 0].tobytes() + body


def iteration_order(iterations: np.ndarray) -> np.ndarray | None:
    """The stable sort putting ``iterations`` in order (ties keep arrival order), or None when
    they already are (the usual case, checked without sorting)."""
    if len(iterations) < 2 or not np.any(iterations[1:] < iterations[:-1]):
        return None
    return np.argsort(iterations, kind="stable")


def decode_chunk(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_chunk`: iterations, epochs, values (bit-exact), times."""
    return decode_chunks([(data, n)])


def decode_chunks(
    rows: Sequence[tuple[bytes, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The points of consecutive chunks ``(data, count)`` as one set of columns: iterations,
    epochs, values (bit-exact), times.

    Each chunk is decoded straight into its slice of the result: no per-chunk arrays joined
    afterwards, and each byte plane is written into its column in place (a copy of a whole
    transposed table cost twice as much and faulted in twice the memory). Each column is an
    array of its own: a caller keeping one keeps no other alive.
    """
    total = sum(n for _, n in rows)
    columns = [np.empty(total, dtype="<i8") for _ in range(_COLUMNS)]
    start = 0
    for data, n in rows:
        _decode_into(data, [column[start : start + n] for column in columns])
        start += n
    times = columns[3].view("<f8")  # milliseconds become seconds in place
    np.divide(columns[3], 1000.0, out=times)
    return columns[0], columns[1], columns[2].view("<f8"), times


def _decode_into(data: bytes, table: list[np.ndarray]) -> None:
    """One chunk into ``table`` (four int64 columns of its length): iterations, epochs, value
    bits, times in milliseconds."""
    _format, first_iteration, first_millis, mask = _HEADER.unpack_from(data)
    n = len(table[0])
    if not n:
        return
    constant = np.unpackbits(np.array([mask], dtype="<u4").view(np.uint8), bitorder="little")
    k = int(constant.sum())
    fills = np.frombuffer(data, np.uint8, k, _HEADER.size).tolist()
    rest = np.frombuffer(zlib.decompress(data[_HEADER.size + k :]), dtype=np.uint8)
    stored = iter(rest.reshape(-1, n))
    filled = iter(fills)
    for column in range(_COLUMNS):
        kept = constant[column * 8 : column * 8 + 8]
        if kept.all():  # one value (regular deltas, a constant epoch): one contiguous fill
            word = bytes(next(filled) for _ in range(8))
            table[column].fill(int.from_bytes(word, "little", signed=True))
            continue
        planes = table[column].view(np.uint8).reshape(n, 8)
        for byte in range(8):
            planes[:, byte] = next(filled) if kept[byte] else next(stored)
    _undelta(table[0], first_iteration)
    _undelta(table[3], first_millis)


def _undelta(deltas: np.ndarray, first: int) -> None:
    """Running sums of ``deltas`` in place, shifted to start at ``first``."""
    np.cumsum(deltas, out=deltas)
    deltas += first - deltas[0]


# --- compaction ---------------------------------------------------------------------------------
# A training loop flushing ~10 points per series a second writes one small chunk per flush: rows
# and headers cost more than the points. When a series' count crosses a multiple of a tier's
# size, the chunks that start in the windows just completed are merged into one, if there are
# at least COMPACT_MIN_CHUNKS of them (SDK-sized batches are left alone). Tiers merge the merges,
# so a series holds at most a few dozen chunks beyond its 4,096-point ones.
COMPACT_TIERS = (256, 4096)
COMPACT_MIN_CHUNKS = 8


def compact_after_append(conn: Connection, grown: list[tuple[int, int, int]]) -> int:
    """Merge the small chunks of the windows each series completed; returns chunks removed.

    Args:
        conn: the append's transaction (the new chunks already inserted).
        grown: per series appended to, ``(series_id, count before, count after)``.
    """
    windows = [
        (series_id, (before // size) * size, (after // size) * size)
        for series_id, before, after in grown
        for size in COMPACT_TIERS
        if after // size > before // size
    ]
    starts: dict[int, list[int]] = {}
    tests = ("series_id =", "start >=", "start <")
    found = select_any(conn, metric_chunks, tests, windows, ("series_id", "start"))  # not data
    for row in found:  # one query, not one a window
        starts.setdefault(row["series_id"], []).append(row["start"])
    removed = 0
    for sid, low, high in windows:  # a smaller tier's merge first: the larger one counts it
        mine = starts.get(sid, [])
        inside = [s for s in mine if low <= s < high]
        if len(inside) >= COMPACT_MIN_CHUNKS:
            removed += _merge_window(conn, sid, (low, high))
            starts[sid] = [s for s in mine if not low <= s < high] + [min(inside)]
    return removed


def _merge_window(conn: Connection, series_id: int, window: tuple[int, int]) -> int:
    c = metric_chunks.c
    where = (c.series_id == series_id, c.start >= window[0], c.start < window[1])
    rows = conn.execute(select(c.start, c.count, c.data).where(*where).order_by(c.start)).all()
    it, ep, v, t = decode_chunks([(data, n) for _, n, data in rows])
    order = iteration_order(it)  # chunks are in order, but a later one may go back
    if order is not None:
        it, ep, v, t = it[order], ep[order], v[order], t[order]
    merged = SeriesChunk("", "", it, ep, v, t)
    conn.execute(delete(metric_chunks).where(*where))
    conn.execute(
        metric_chunks.insert().values(
            series_id=series_id,
            start=rows[0].start,
            count=len(it),
            first_iteration=int(it[0]),
            last_iteration=int(it[-1]),
            data=encode_chunk(merged),
        )
    )
    return len(rows) - 1
