"""The packed form of complete rollup buckets: :data:`BLOCK_BUCKETS` of a level's buckets to a
blob in ``metric_rollup_blocks``. Pure numpy; the layout constants here are shared by the reads
(:mod:`rollup_reads`) and the appends that seal blocks (:mod:`rollup_sealing`).

A block's columns are :data:`rollups.COLUMNS` as stored, made small (a bucket's iterations
after its first, first iteration and first time as deltas along the block, values as their
bits), each kept as its offsets from the block's smallest in the fewest whole bytes that hold
them (0, 1, 2, 4 or 8): about 45 bytes a bucket (a row took about 90). Not deflated, nor
byte-shuffled: blocks of the same widths decode together as one numpy record array, a few
array operations for a compare view's thousand blocks.

16 buckets a block (1,024 points at level 1): with 128 (migration 0018 split those), a series
under 8,192 points kept its whole first level as rows, ~1.7 B a point of a 5,000-point series
(a row and its index entry ~110 bytes a bucket). The header (174 bytes; ~70 in format 4) is
then ~11 bytes a bucket, and a block (~0.9 KB) fills SQLite's 4 KiB pages four at a time;
blocks of 32 (~1.6 KB) filled them two at a time, 70% full, and took more than blocks of 128
on a long series.

Format 3: a value column may be stored as its bits rotated right by 29 (:data:`ROTATED` set
in its width byte), when that takes fewer bytes: a float32 widened (``loss.item()``) has 29
zero low bits, so its four values took 8 bytes each, and take 4 so (~0.2 B a point of a
series' first level). Format 2 (no column rotated) is still written for any other block;
older versions do not read format 3 (migration 0022's downgrade rewrites those blocks).

Format 4 (the one written): format 3's columns under a header of the fewest bytes. Each base
and the two starts are kept in the fewest whole bytes that hold them signed (0, 1, 2, 4 or 8;
a column's width byte holds its base's in bits 4-6, see :data:`BASE_SHIFT`), and the bucket
count in one byte: ~70 bytes instead of 174 for a block of a float32 walk's first level, ~0.1
B a point of 10-point flushes. Older versions do not read it (migration 0023's downgrade
rewrites those blocks as format 3 or 2: the same records under the fixed header).
"""

from __future__ import annotations

import functools
import operator
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from mltrail.store.sql import rollups

BLOCK_BUCKETS = 16  # 128 before migration 0018: a short series' level 1 stayed rows
_FORMAT = 2
_ROTATED_FORMAT = 3  # a block with a value column rotated
COMPACT_FORMAT = 4  # the header of the fewest bytes (the one written)
FORMATS = (_FORMAT, _ROTATED_FORMAT, COMPACT_FORMAT)  # those this version reads
ROTATED = 0x80  # in a column's width byte: its stored bits are the value bits rotated right
SIZE_BITS = 0x0F  # in a column's width byte: its records' bytes (0, 1, 2, 4 or 8)
BASE_SHIFT = 4  # format 4: a width byte's bits 4-6 are the code (_SIZES) of its base's bytes
_SIZES = (0, 1, 2, 4, 8)  # by code: the bytes of a base or start kept signed
_SIZE_CHARS = ("", "b", "h", "i", "q")  # by code: their struct letter
_ROTATION = np.uint64(29)  # a float32's zero low bits in a float64
COLUMNS = rollups.COLUMNS
WIDTH = len(COLUMNS)
# format, buckets, each column's width in bytes, its base, the two delta columns' first values
HEADER = struct.Struct(f"<BI{WIDTH}s{WIDTH}q2q")  # formats 2 and 3
# format 4's leading bytes: format, buckets, each column's width byte with its base's code,
# the two starts' codes (first iteration: bits 0-3, first time: bits 4-7); then the bases
# and starts of a code other than 0, each in its bytes
LEAD = struct.Struct(f"<BB{WIDTH}sB")
INDEX = {name: i for i, name in enumerate(COLUMNS)}
VALUES = [INDEX[f"{p}_value"] for p in rollups.PARTS]
TIMES = [INDEX[f"{p}_time"] for p in rollups.PARTS]
ITERATIONS = [INDEX[f"{p}_iteration"] for p in rollups.PARTS[1:]]  # after first_iteration
FIRST_IT, FIRST_TIME = INDEX["first_iteration"], INDEX["first_time"]
LAST_IT = INDEX["last_iteration"]
# a level's columns as read: n, iterations and epochs exact int64 (past 2^53 too), values and
# times (ms) float64
INTS = [j for j in range(WIDTH) if j not in VALUES and j not in TIMES]
FLOATS = [*VALUES, *TIMES]
BIG = 2.0**53  # from here on a double skips whole numbers


def encode_block(rows: Sequence[tuple[Any, ...]]) -> bytes | None:
    """A block of stored bucket rows (the :data:`rollups.COLUMNS` values, in bucket order),
    packed; None when a time is missing or not whole milliseconds (the rows stay rows)."""
    floats = np.array(rows, dtype=np.float64).reshape(len(rows), WIDTH).T  # NULL becomes NaN
    return encode_columns(floats, lambda j: np.array([row[j] for row in rows], dtype=np.int64))


def encode_columns(floats: np.ndarray, exact: Callable[[int], np.ndarray]) -> bytes | None:
    """:func:`encode_block` of the rows' (COLUMNS, buckets) float64 array (values NaN for
    NULL), ``exact(j)`` giving column ``j`` as exact integers (read past 2^53 only)."""
    n = floats.shape[1]
    if np.isnan(floats[TIMES]).any():
        return None
    table = np.empty((WIDTH, n), dtype="<i8")
    table[VALUES] = floats[VALUES].view("<i8")
    others = [j for j in range(WIDTH) if j not in VALUES]
    table[others] = floats[others].astype(np.int64)
    if not np.array_equal(table[TIMES], floats[TIMES]):
        return None  # not whole milliseconds
    for j in others:
        if np.abs(floats[j]).max() >= BIG:  # beyond a double's whole numbers: exactly
            table[j] = exact(j)
    table[ITERATIONS] -= table[FIRST_IT]
    starts = table[[FIRST_IT, FIRST_TIME], 0].tolist()
    for j in (FIRST_IT, FIRST_TIME):
        table[j] = np.diff(table[j], prepend=table[j, :1])
    rotated = _rotate_values(table[None])[0]
    bases = table.min(axis=1)
    offsets = table.view(np.uint64) - bases.view(np.uint64)[:, None]  # wraps: always >= 0
    widths = _widths(offsets.max(axis=1))
    fields = [(f"c{j}", f"<u{w}") for j, w in enumerate(widths.tolist()) if w]
    records = np.empty(n, dtype=fields)
    for name, _ in fields:
        records[name] = offsets[int(name[1:])]
    widths[VALUES] |= np.where(rotated, ROTATED, 0).astype(np.uint8)
    return compact_head(n, bytes(widths), bases.tolist(), starts) + records.tobytes()


def _code(number: int) -> int:
    """The code (:data:`_SIZES`) of the fewest whole bytes holding ``number`` signed."""
    if not number:
        return 0
    if -(2**7) <= number < 2**7:
        return 1
    if -(2**15) <= number < 2**15:
        return 2
    return 3 if -(2**31) <= number < 2**31 else 4


@functools.lru_cache(maxsize=4096)
def _head_struct(codes: tuple[int, ...]) -> struct.Struct:
    """Format 4's header for the codes of the bases, then of the two starts."""
    return struct.Struct(LEAD.format + "".join(_SIZE_CHARS[c] for c in codes))


def compact_head(n: int, widths: bytes, bases: Sequence[int], starts: Sequence[int]) -> bytes:
    """The format-4 header of a block of ``n`` buckets: ``widths`` the columns' width bytes
    (:data:`ROTATED` flags in), ``bases`` and ``starts`` as signed integers."""
    codes = tuple(_code(number) for number in (*bases, *starts))
    kept = [number for number in (*bases, *starts) if number]
    lead = bytes(w | c << BASE_SHIFT for w, c in zip(widths, codes[:WIDTH], strict=True))
    return _head_struct(codes).pack(COMPACT_FORMAT, n, lead, codes[-2] | codes[-1] << 4, *kept)


def _widths(largest: np.ndarray) -> np.ndarray:
    """The fewest whole bytes (0, 1, 2, 4 or 8) holding each of ``largest`` (uint64)."""
    return np.select(
        [largest < 1, largest < 2**8, largest < 2**16, largest < 2**32], [0, 1, 2, 4], 8
    ).astype(np.uint8)


def _spans(columns: np.ndarray) -> np.ndarray:
    """Each column's largest offset from its smallest (int64 columns on the last axis)."""
    return columns.max(axis=-1).view(np.uint64) - columns.min(axis=-1).view(np.uint64)


def _rotate_values(table: np.ndarray) -> np.ndarray:
    """Blocks' value columns (``table``: (blocks, COLUMNS, buckets) int64) rotated right by
    29 bits in place where that needs fewer bytes a bucket; which were, (blocks, VALUES)."""
    bits = table[:, VALUES].view(np.uint64)
    turned = (bits >> _ROTATION) | (bits << (np.uint64(64) - _ROTATION))
    better = _widths(_spans(turned.view(np.int64))) < _widths(_spans(bits.view(np.int64)))
    if better.any():
        table[:, VALUES] = np.where(better[:, :, None], turned, bits).view(np.int64)
    return better


def unrotate(column: np.ndarray, width: int) -> None:
    """A value column as stored (uint64 or int64) made its value bits in place, if ``width``
    (its width byte) says it was rotated."""
    if width & ROTATED:
        bits = column.view(np.uint64)
        bits[...] = (bits << _ROTATION) | (bits >> (np.uint64(64) - _ROTATION))


def check_formats(formats: Sequence[int]) -> None:
    """Refuse blocks of a format this version does not read (a newer version's, read by a
    process still running this one): read as format 2, their columns were other numbers.

    Raises:
        ValueError: naming the first such format.
    """
    for form in formats:
        if form not in FORMATS:
            raise ValueError(f"a rollup block of format {form}, which this version does not read")


def fields_of(widths: bytes) -> list[tuple[str, str]]:
    """The record fields of a block's columns of ``widths`` (width bytes, flags included)."""
    return [(f"c{j}", f"<u{w & SIZE_BITS}") for j, w in enumerate(widths) if w & SIZE_BITS]


def encode_many(
    floats: np.ndarray, exact: Sequence[Callable[[int], np.ndarray]]
) -> list[tuple[bytes, int, int] | None]:
    """:func:`encode_columns` of many blocks at once, the same bytes: ``floats`` their
    (blocks, COLUMNS, buckets) float64 array, ``exact[b]`` block ``b``'s ``exact``. Each
    block's data and its lowest and highest iteration (None where encode_columns gives None).
    The array work is done for all blocks together (a block at a time, an append of 20
    series paid a few dozen numpy calls for each of its ~50 blocks); blocks with an integer
    past 2^53 go through :func:`encode_columns`."""
    count, _, n = floats.shape
    out: list[tuple[bytes, int, int] | None] = [None] * count
    if not count:
        return out
    others = [j for j in range(WIDTH) if j not in VALUES]
    table = np.empty(floats.shape, dtype="<i8")
    table[:, VALUES] = floats[:, VALUES].view("<i8")
    with np.errstate(invalid="ignore"):  # NaN times: those blocks are left out below
        table[:, others] = floats[:, others].astype(np.int64)
    times = floats[:, TIMES]
    usable = ~np.isnan(times).any(axis=(1, 2)) & (table[:, TIMES] == times).all(axis=(1, 2))
    big = (np.abs(floats[:, others]) >= BIG).any(axis=(1, 2))
    for b in np.flatnonzero(usable & big).tolist():
        data = encode_columns(floats[b], exact[b])
        if data is not None:
            out[b] = (data, int(exact[b](FIRST_IT).min()), int(exact[b](LAST_IT).max()))
    picked = np.flatnonzero(usable & ~big)
    if not len(picked):
        return out
    table = table[picked]
    lowest = table[:, FIRST_IT].min(axis=1).tolist()
    highest = table[:, LAST_IT].max(axis=1).tolist()
    table[:, ITERATIONS] -= table[:, FIRST_IT, None]
    starts = table[:, [FIRST_IT, FIRST_TIME], 0].tolist()
    for j in (FIRST_IT, FIRST_TIME):
        table[:, j] = np.diff(table[:, j], axis=1, prepend=table[:, j, :1])
    rotated = _rotate_values(table)
    bases = table.min(axis=2)
    offsets = table.view(np.uint64) - bases.view(np.uint64)[:, :, None]  # wraps: >= 0
    widths = _widths(offsets.max(axis=2))
    widths[:, VALUES] |= np.where(rotated, ROTATED, 0).astype(np.uint8)
    groups: dict[bytes, list[int]] = {}
    for i, key in enumerate(map(bytes, widths)):
        groups.setdefault(key, []).append(i)
    listed = bases.tolist()
    for key, members in groups.items():
        fields = fields_of(key)
        records = np.empty((len(members), n), dtype=fields)
        for name, _ in fields:
            records[name] = offsets[members, int(name[1:])]
        body = records.tobytes()
        size = len(body) // len(members)
        for k, i in enumerate(members):
            head = compact_head(n, key, listed[i], starts[i])
            out[int(picked[i])] = (head + body[k * size : (k + 1) * size], lowest[i], highest[i])
    return out


def decode_blocks(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_block` for blocks of :data:`BLOCK_BUCKETS` buckets: the
    (blocks, INTS, buckets) int64 and (blocks, FLOATS, buckets) float64 arrays, times as
    stored."""
    ints = decode_ints(blobs)
    floats = np.empty((len(blobs), len(FLOATS), BLOCK_BUCKETS))
    floats[:, : len(VALUES)] = ints[:, VALUES].view("<f8")
    floats[:, len(VALUES) :] = ints[:, TIMES]
    return ints[:, INTS], floats


def decode_ints(blobs: Sequence[bytes]) -> np.ndarray:
    """The (blocks, COLUMNS, buckets) int64 array of blocks, values as their bits (a view of
    :func:`decode_columns`)."""
    return decode_columns(blobs).transpose(1, 0, 2)


def decode_columns(blobs: Sequence[bytes]) -> np.ndarray:
    """The (COLUMNS, blocks, buckets) int64 array of blocks, values as their bits: each
    column contiguous (a level's reads gather columns); the blocks of the same column widths
    (most of a series' blocks) decoded together."""
    n = BLOCK_BUCKETS
    ints = np.empty((WIDTH, len(blobs), n), dtype=np.int64)
    heads = read_heads(blobs)
    alike: dict[bytes, list[int]] = {}
    for k, widths in enumerate(heads.widths):
        alike.setdefault(widths, []).append(k)
    for widths, found in alike.items():
        bases, starts = heads.bases[found].view(np.uint64), heads.starts[found]
        fields = fields_of(widths)
        body = b"".join([memoryview(blobs[k])[heads.skips[k] :] for k in found])
        records = np.frombuffer(body, dtype=fields).reshape(len(found), n)
        whole = len(alike) == 1
        part = ints if whole else np.empty((WIDTH, len(found), n), dtype=np.int64)
        unsigned = part.view(np.uint64)
        for j, w in enumerate(widths):
            if w & SIZE_BITS:
                np.add(records[f"c{j}"], bases[:, j, None], out=unsigned[j], casting="unsafe")
            else:
                unsigned[j] = bases[:, j, None]
            unrotate(unsigned[j], w)
        for i, j in enumerate((FIRST_IT, FIRST_TIME)):
            np.cumsum(part[j], axis=1, out=part[j])
            part[j] += starts[:, i, None]
        part[ITERATIONS] += part[FIRST_IT]
        if whole:
            return ints  # every block, in order
        ints[:, found] = part
    return ints


class Heads(NamedTuple):
    """The headers of blocks (:func:`read_heads`)."""

    widths: list[bytes]  # each block's width bytes: its columns' bytes and ROTATED flags
    bases: np.ndarray  # (blocks, WIDTH) int64
    starts: np.ndarray  # (blocks, 2) int64: first iteration, first time
    skips: list[int]  # where each block's records start


def read_heads(blobs: Sequence[bytes]) -> Heads:
    """The headers of blocks of any format this version reads, each parsed by a ``struct``
    made once for its layout (format 4's leading bytes fix it; a series' blocks take a few
    dozen layouts, so a parse of each layout's headers as an array cost more); from
    :data:`MANY_HEADS` format-4 blocks on, all at once as arrays (:func:`_compact_heads`).

    Raises:
        ValueError: a format this version does not read, or a block not of
            :data:`BLOCK_BUCKETS` buckets.
    """
    formats = sorted({blob[0] for blob in blobs})
    check_formats(formats)
    if formats == [COMPACT_FORMAT] and len(blobs) >= MANY_HEADS:
        return _compact_heads(blobs)
    widths, found, skips = [], [], []
    for blob in blobs:
        if blob[0] == COMPACT_FORMAT:
            plain, head, pick = _compact_layout(bytes(blob[: LEAD.size]))
            found.append(pick((*head.unpack_from(blob), 0)))
            widths.append(plain)
            skips.append(head.size)
            continue
        _, size, fixed, *numbers = HEADER.unpack_from(blob)
        if size != BLOCK_BUCKETS:
            raise ValueError(f"a rollup block of {size} buckets, not {BLOCK_BUCKETS}")
        widths.append(fixed)
        found.append(tuple(numbers))
        skips.append(HEADER.size)
    table = np.array(found, dtype=np.int64).reshape(-1, WIDTH + 2)
    return Heads(widths, table[:, :WIDTH], table[:, WIDTH:], skips)


MANY_HEADS = 64  # from this many format-4 blocks on, their headers are parsed as arrays
_SIZE_OF = np.array(_SIZES, dtype=np.int64)


def _compact_heads(blobs: Sequence[bytes]) -> Heads:
    """:func:`read_heads` of format-4 blocks, as array operations: a compare view reads
    thousands of blocks (100 series of 100,000 points: 9,700), whose headers differ in length,
    and a ``struct`` call a block was about 2.5 us of each one's read.

    Raises:
        ValueError: a block not of :data:`BLOCK_BUCKETS` buckets.
    """
    count = len(blobs)
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=count)
    offsets = np.cumsum(lengths) - lengths
    whole = b"".join([*blobs, bytes(8)])  # 8: a field's 8-byte read past the last block
    table = np.frombuffer(whole, dtype=np.uint8)[offsets[:, None] + np.arange(LEAD.size)]
    if np.any(table[:, 1] != BLOCK_BUCKETS):
        found = int(table[table[:, 1] != BLOCK_BUCKETS][0, 1])
        raise ValueError(f"a rollup block of {found} buckets, not {BLOCK_BUCKETS}")
    width_bytes = table[:, 2 : 2 + WIDTH]
    starts_code = table[:, LEAD.size - 1 :]
    codes = np.concatenate(
        [width_bytes >> BASE_SHIFT & 7, starts_code & 0x0F, starts_code >> 4], axis=1
    )
    sizes = _SIZE_OF[codes]  # (blocks, WIDTH + 2): each base's and start's bytes
    ends = np.cumsum(sizes, axis=1)
    # the 8 bytes from each byte of the blocks, as one unaligned little-endian uint64 view
    words = np.ndarray((len(whole) - 7,), dtype="<u8", buffer=whole, strides=(1,))
    raw = words[offsets[:, None] + (LEAD.size + ends - sizes)]
    shift = ((64 - 8 * sizes) % 64).astype(np.uint64)  # a code of 0: zeroed below
    numbers = (raw << shift).view(np.int64) >> shift.astype(np.int64)  # sign-extended
    numbers[sizes == 0] = 0
    plain = (width_bytes & (ROTATED | SIZE_BITS)).tobytes()
    widths = [plain[k : k + WIDTH] for k in range(0, count * WIDTH, WIDTH)]
    return Heads(widths, numbers[:, :WIDTH], numbers[:, WIDTH:], (LEAD.size + ends[:, -1]).tolist())


@functools.lru_cache(maxsize=4096)
def _compact_layout(
    lead: bytes,
) -> tuple[bytes, struct.Struct, Callable[[tuple[Any, ...]], tuple[int, ...]]]:
    """A format-4 header's layout from its leading bytes (:data:`LEAD`): the width bytes
    without their bases' codes, the header's ``struct``, and what takes its bases and starts
    (0 for a code of 0) from what that unpacks (with a 0 after).

    Raises:
        ValueError: a block not of :data:`BLOCK_BUCKETS` buckets (not kept).
    """
    _, buckets, widths, _ = LEAD.unpack(lead)
    if buckets != BLOCK_BUCKETS:
        raise ValueError(f"a rollup block of {buckets} buckets, not {BLOCK_BUCKETS}")
    codes = _codes(lead)
    at = iter(range(4, 4 + WIDTH + 2))  # after LEAD's four fields
    picks = [next(at) if c else -1 for c in codes]  # -1: the 0 appended
    plain = bytes(w & (ROTATED | SIZE_BITS) for w in widths)
    return plain, _head_struct(codes), operator.itemgetter(*picks)


def _codes(lead: bytes) -> tuple[int, ...]:
    """The codes (:data:`_SIZES`) of a format-4 header's bases, then of its starts."""
    _, _, widths, starts = LEAD.unpack(lead)
    return (*(w >> BASE_SHIFT & 7 for w in widths), starts & 0x0F, starts >> 4)
