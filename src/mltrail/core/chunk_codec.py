"""The packed form of a chunk of metric points: what one ``metric_chunks.data`` value holds, and
what a batch's binary body of packed chunks carries (the SDK packs, the server stores the bytes).

Columns are delta-encoded where regular (iterations, times in milliseconds), byte-shuffled
into planes, constant planes kept as one byte, the rest deflated (in format 1, a long chunk's
value planes of noise in stored blocks of the same stream: :mod:`mltrail.core.noise_planes`).
:func:`unpack_chunk` reads bytes from outside strictly (a malformed chunk raises
:class:`ValidationError` naming it, and a chunk never inflates past its announced points).

Formats (the header's first byte; every one stays readable):

- 1: values as their float64 bits.
- 2 (:data:`NARROW`): values as their float32 bits, for a chunk whose every value a float32
  holds exactly (bit for bit: -0.0, infinities and the usual NaN too): what PyTorch's
  ``loss.item()`` gives (a float32 widened). The value column's four high bytes are then zero
  planes, kept as one byte each; the other four deflate to about half of a float64's. Written
  by a store (``narrow=True``); the SDK sends format 1, which every server reads.
- 3 (:data:`WIDE_DELTA`) and 4 (:data:`NARROW_DELTA`): formats 1 and 2 with the value column
  stored as the zigzagged differences of consecutive values' bits (wrapping: 64-bit ones, and
  32-bit ones for float32 bits; the first value's difference from 0), and each deflated plane
  in a deflate block of its own (its own Huffman table: one table for all planes coded the
  skewed high plane of a difference as if it were noise). A loss-like random walk moves by a
  few thousand units in the last place a step, so its differences' high bytes are near zero:
  a float32 walk packs to ~2.65 B a value instead of ~2.95, a float64 one to ~6.3 instead of
  ~6.5. (A chunk stored without deflating, see ``stored_below``, keeps its planes in one
  stored stream: blocks of their own would only frame the same bytes, a flush each.)
  Written by a store for a chunk of at least :data:`DELTA_FROM` points that it packs itself
  (a compaction's merge, and an append's chunk that came unpacked or was merged or sorted);
  older versions do not read them (migration 0021's downgrade rewrites them).
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mltrail.core.errors import ValidationError
from mltrail.core.noise_planes import mixed_stream, noise_planes, stored_stream
from mltrail.core.types import SeriesChunk

_COLUMNS = 4  # iteration deltas, epochs, value bits, time deltas (ms): all int64
_PLANES = _COLUMNS * 8
_FORMAT = 1
NARROW = 2  # the format of a chunk whose values are stored as float32 bits
WIDE_DELTA = 3  # float64 bits, as zigzagged differences
NARROW_DELTA = 4  # float32 bits, as zigzagged differences
_FORMATS = (_FORMAT, NARROW, WIDE_DELTA, NARROW_DELTA)
_NARROWS = (NARROW, NARROW_DELTA)
DELTA_FROM = 16  # the fewest points of a chunk a store packs in a delta format
# the deflate level of a compaction's merge, packed once and kept: on 10-point flushes of
# float32 values, level 6 took ~0.06 B a point less than level 1 (mostly the time deltas'
# plane) for 0.1 us a point more of packing; level 9 saved a few bytes more at 5x the time
MERGED_LEVEL = 6
_VALUE_PLANES = slice(2 * 8, 3 * 8)  # the value column's byte planes, low byte first
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
    return encode_chunks([chunk])[0]


def encode_chunks(
    chunks: Sequence[SeriesChunk],
    stored_below: int = 0,
    narrow: bool = False,
    level: int = 1,
) -> list[bytes]:
    """:func:`encode_chunk` of each chunk, the byte planes of all of them built at once: a
    batch of 20 series paid the numpy calls of each one's planes 20 times over. An empty
    chunk packs to no bytes: a store refuses it by its count (``n``) before reading them.

    A chunk of fewer than ``stored_below`` points is deflated at level 0: the same format
    (stored deflate blocks, read as any other), without the search for matches, which cost a
    small chunk's packing most of its time and saved a few bytes at best (a 50-point chunk of
    a noisy metric came out larger). For chunks that a compaction will pack again.

    ``narrow``: a chunk of several points whose values are all float32 ones is packed in
    format :data:`NARROW`, and a chunk of at least :data:`DELTA_FROM` points in
    :data:`NARROW_DELTA` or :data:`WIDE_DELTA` (a store's choice: older servers refuse them
    from a client).

    ``level``: the deflate level of the others (1: an append's; a compaction's merge, packed
    once and kept for good, takes :data:`MERGED_LEVEL`)."""
    if len(chunks) == 1 and len(chunks[0]) == 1:
        return [_encode_lone(chunks[0], stored_below)]
    if not all(len(c) for c in chunks):
        full = [c for c in chunks if len(c)]
        packed = iter(encode_chunks(full, stored_below, narrow, level) if full else [])
        return [next(packed) if len(c) else b"" for c in chunks]
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    iterations = np.concatenate([c.iterations for c in chunks]).astype(np.int64, copy=False)
    millis = np.round(np.concatenate([c.times for c in chunks]) * 1000.0).astype(np.int64)
    table = np.empty((_COLUMNS, int(lengths.sum())), dtype="<i8")
    table[0] = _chunk_deltas(iterations, starts, lengths)
    table[1] = np.concatenate([c.epochs for c in chunks])
    table[2] = np.concatenate([c.values for c in chunks]).astype("<f8", copy=False).view("<i8")
    table[3] = _chunk_deltas(millis, starts, lengths)
    formats = _narrowed(table[2], starts, lengths) if narrow else [_FORMAT] * len(chunks)
    if narrow:
        formats = _as_deltas(table[2], starts, lengths, formats)
    n = table.shape[1]
    planes = table.view(np.uint8).reshape(_COLUMNS, n, 8).transpose(0, 2, 1).reshape(_PLANES, n)
    # a plane is constant within a chunk when its smallest and largest byte there are equal
    constant = np.minimum.reduceat(planes, starts, axis=1) == np.maximum.reduceat(
        planes, starts, axis=1
    )
    masks = np.packbits(constant, axis=0, bitorder="little").T.copy().view("<u4")[:, 0].tolist()
    noise = np.zeros_like(constant)
    if level and not narrow:  # a store's chunks (narrow) of many points are delta formats
        noise[_VALUE_PLANES] = noise_planes(planes[_VALUE_PLANES], starts, lengths)
    out = []
    for k, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        part = planes[:, start : start + length]
        kept = constant[:, k]
        header = _HEADER.pack(formats[k], int(iterations[start]), int(millis[start]), masks[k])
        deflate = 0 if length < stored_below else level
        if formats[k] >= WIDE_DELTA and deflate:
            body = _deflate_planes(part[~kept], deflate)
        elif deflate and noise[:, k].any():
            body = mixed_stream([p.tobytes() for p in part[~kept]], noise[~kept, k], deflate)
        elif deflate:
            body = zlib.compress(np.ascontiguousarray(part[~kept]).tobytes(), deflate)
        else:
            body = stored_stream(np.ascontiguousarray(part[~kept]).tobytes())
        out.append(header + part[kept, 0].tobytes() + body)
    return out


def _deflate_planes(planes: np.ndarray, level: int) -> bytes:
    """The planes deflated as one stream, each plane in deflate blocks of its own (the same
    stream for an inflater: it is one ``zlib.compress`` would give, but for the blocks)."""
    deflater = zlib.compressobj(level)
    parts = [deflater.compress(plane.tobytes()) + deflater.flush(zlib.Z_BLOCK) for plane in planes]
    return b"".join(parts) + deflater.flush()


def _as_deltas(
    bits: np.ndarray, starts: np.ndarray, lengths: np.ndarray, formats: list[int]
) -> list[int]:
    """The formats after the value bits (int64, all chunks', as :func:`_narrowed` left them)
    of each chunk of at least :data:`DELTA_FROM` points are replaced in place by their
    zigzagged differences: of 32-bit words in a :data:`NARROW` chunk (the high planes stay
    zero), of 64-bit ones otherwise. All chunks' at once: a chunk at a time, a 20-series
    batch paid 20 rounds of numpy calls."""
    long = lengths >= DELTA_FROM
    if not long.any():
        return formats
    narrow = np.array(formats) == NARROW
    words = bits.astype("<u4").view("<i4")  # a NARROW chunk's float32 bits (zero-extended)
    step32 = np.diff(words, prepend=np.int32(0))  # wraps at 32 bits
    step64 = np.diff(bits, prepend=np.int64(0))  # wraps at 64 bits
    firsts = starts[long]  # each chunk's first difference is from 0
    step32[firsts], step64[firsts] = words[firsts], bits[firsts]
    zig32 = ((step32 << 1) ^ (step32 >> 31)).view("<u4")
    zig64 = (step64 << 1) ^ (step64 >> 63)
    pick32 = np.repeat(long & narrow, lengths)
    pick64 = np.repeat(long & ~narrow, lengths)
    bits[pick32] = zig32[pick32]
    bits[pick64] = zig64[pick64]
    delta = np.where(narrow, NARROW_DELTA, WIDE_DELTA)
    return np.where(long, delta, formats).tolist()  # type: ignore[no-any-return]


def _undo_deltas(bits: np.ndarray, fmt: int) -> None:
    """The value bits (int64) of a :data:`WIDE_DELTA` or :data:`NARROW_DELTA` chunk made the
    bits :func:`_as_deltas` took, in place (then widened as a :data:`NARROW` chunk's)."""
    step = bits.view("<u8")
    step[:] = _unzigzag(step)
    np.cumsum(bits, out=bits)  # wraps at 64 bits
    if fmt == NARROW_DELTA:
        bits &= 0xFFFFFFFF  # the sums of 32-bit differences, modulo 2^32
        _widen(bits)


def _unzigzag(step: np.ndarray) -> np.ndarray:
    """Zigzagged differences (uint64) back to two's complement ones (as uint64 bits)."""
    return (step >> np.uint64(1)) ^ (np.uint64(0) - (step & np.uint64(1)))


def _values_of(bits: np.ndarray, fmt: int) -> None:
    """A chunk's stored value bits (int64) made float64 bits in place, as its format says.

    Raises:
        ValueError: a format this version does not know (a newer version's, read by a process
            still running this one): failed, not read as another format's other numbers.
    """
    if fmt == NARROW:
        _widen(bits)
    elif fmt in (WIDE_DELTA, NARROW_DELTA):
        _undo_deltas(bits, fmt)
    elif fmt != _FORMAT:
        raise ValueError(f"a chunk of format {fmt}, which this version does not read")


def _narrowed(bits: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[int]:
    """Each chunk's format, the value bits (int64, all chunks') of the chunks of several
    points whose values are all exact float32 ones replaced in place by their float32 bits
    (zero-extended): the same bits back when widened again, so -0.0, infinities and NaN of
    a float32's payload pass, a float64 NaN payload a float32 cannot hold does not."""
    with np.errstate(over="ignore", invalid="ignore"):  # too large for a float32: not exact
        narrow = bits.view("<f8").astype(np.float32)
    exact = narrow.astype(np.float64).view("<i8") == bits
    whole = np.logical_and.reduceat(exact, starts) & (lengths > 1)
    if not whole.any():
        return [_FORMAT] * len(starts)
    low = narrow.view("<u4").astype(np.int64)
    pick = np.repeat(whole, lengths)
    bits[pick] = low[pick]
    return np.where(whole, NARROW, _FORMAT).tolist()


def _widen(bits: np.ndarray) -> None:
    """Value bits of a :data:`NARROW` chunk (float32 bits, zero-extended) made float64 bits
    in place."""
    bits[:] = bits.astype("<u4").view("<f4").astype("<f8").view("<i8")


# a lone point: every plane holds its one byte (all kept in the header), nothing to deflate
_ALL_PLANES = 2**_PLANES - 1
_LONE_PLANES = struct.Struct("<qqqq")  # the four columns' bytes: each byte a plane, in order
_EMPTY_BODIES = (zlib.compress(b"", 0), zlib.compress(b"", 1))


def _encode_lone(chunk: SeriesChunk, stored_below: int) -> bytes:
    """:func:`encode_chunks` of one chunk of one point, the same bytes without numpy's work
    (a synchronous MLflow ``log_metric`` packs one point a request): its deltas are 0, and
    ``round`` rounds half to even as ``np.round`` does."""
    millis = round(float(chunk.times[0]) * 1000.0)
    header = _HEADER.pack(_FORMAT, int(chunk.iterations[0]), millis, _ALL_PLANES)
    bits = int(np.asarray(chunk.values[:1], "<f8").view("<i8")[0])
    planes = _LONE_PLANES.pack(0, int(chunk.epochs[0]), bits, 0)
    return header + planes + _EMPTY_BODIES[0 if stored_below > 1 else 1]


def _chunk_deltas(column: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`_deltas` of each chunk's slice of ``column``, all at once."""
    out = np.diff(column, prepend=column[:1])
    second = starts + 1
    inner = lengths > 1
    out[starts[inner]] = out[second[inner]]  # a chunk's first delta filled like its second
    out[starts[~inner]] = 0  # a lone point's delta: as _deltas gives it
    return out


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
    return _as_points(columns)


def decode_many(
    rows: Sequence[tuple[bytes, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`decode_chunks` for many small chunks (a compaction's ~80 chunks of ~50 points a
    window): each chunk's byte planes are written with two array operations, not one a
    plane, into one table of every point's 32 bytes, and the running sums of all chunks are
    taken at once. The table is as large again as the points: for bounded reads only."""
    total = sum(n for _, n in rows)
    table = np.empty((total, _PLANES), dtype=np.uint8)
    starts, firsts, coded = [], [], []  # coded: chunks whose value bits need decoding
    at = 0
    for data, n in rows:
        if not n:
            continue
        fmt, first_iteration, first_millis, mask = _HEADER.unpack_from(data)
        if fmt != _FORMAT:
            coded.append((at, at + n, fmt))
        kept, rest = _planes_of(mask)
        part = table[at : at + n]
        if len(kept):
            part[:, kept] = np.frombuffer(data, np.uint8, len(kept), _HEADER.size)
        if len(rest):
            inflated = zlib.decompress(data[_HEADER.size + len(kept) :])
            part[:, rest] = np.frombuffer(inflated, np.uint8).reshape(len(rest), n).T
        starts.append(at)
        firsts.append((first_iteration, first_millis))
        at += n
    words = table.view("<i8")  # (points, columns): the planes are each column's bytes
    columns = [np.ascontiguousarray(words[:, c]) for c in range(_COLUMNS)]
    _values_of_many(columns[2], coded)
    if starts:
        at_start = np.array(starts, dtype=np.intp)
        lengths = np.diff(at_start, append=total)
        first = np.array(firsts, dtype=np.int64)
        for c, j in ((0, 0), (3, 1)):  # :func:`_undelta` of every chunk
            np.cumsum(columns[c], out=columns[c])
            columns[c] += np.repeat(first[:, j] - columns[c][at_start], lengths)
    return _as_points(columns)


def _values_of_many(bits: np.ndarray, coded: list[tuple[int, int, int]]) -> None:
    """:func:`_values_of` of each ``(lo, hi, format)`` slice of ``bits``, all at once (a
    compaction's ~400 chunks paid a few numpy calls each): the differences' running sums are
    one wrapping cumsum, less each chunk's sum before it."""
    if len(coded) < 2:
        for lo, hi, fmt in coded:
            _values_of(bits[lo:hi], fmt)
        return
    los, his, fmts = (np.array(column, np.int64) for column in zip(*coded, strict=True))
    unknown = ~np.isin(fmts, (NARROW, WIDE_DELTA, NARROW_DELTA))
    if unknown.any():
        _values_of(bits[:0], int(fmts[unknown][0]))  # raises: a format this version does not read
    lengths = his - los
    where = np.repeat(los - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    delta = np.repeat(fmts >= WIDE_DELTA, lengths)
    narrow = np.repeat(np.isin(fmts, _NARROWS), lengths)
    part = bits[where]
    unzig = _unzigzag(part.view("<u8")).view("<i8")
    steps = np.where(delta, unzig, 0)
    sums = np.cumsum(steps)  # wraps at 64 bits
    firsts = np.cumsum(lengths) - lengths
    sums -= np.repeat(sums[firsts] - steps[firsts], lengths)  # each chunk's sum before it
    part = np.where(delta, sums, part)
    part = np.where(narrow & delta, part & 0xFFFFFFFF, part)
    if narrow.any():
        widened = part[narrow]
        _widen(widened)
        part[narrow] = widened
    bits[where] = part


@functools.lru_cache(maxsize=256)
def _plane_runs(kept: int) -> tuple[tuple[int, int, bool], ...]:
    """A column's eight planes as runs ``(lo, hi, constant)``, from its byte of the header's
    mask (bit ``i`` set: plane ``i`` is constant)."""
    runs: list[tuple[int, int, bool]] = []
    for plane in range(8):
        constant = bool(kept >> plane & 1)
        if runs and runs[-1][2] == constant:
            runs[-1] = (runs[-1][0], plane + 1, constant)
        else:
            runs.append((plane, plane + 1, constant))
    return tuple(runs)


@functools.lru_cache(maxsize=1024)
def _planes_of(mask: int) -> tuple[np.ndarray, np.ndarray]:
    """The constant planes a chunk header's mask marks, and the others, each in order."""
    kept = np.array([j for j in range(_PLANES) if mask >> j & 1], dtype=np.intp)
    rest = np.array([j for j in range(_PLANES) if not mask >> j & 1], dtype=np.intp)
    return kept, rest


def _as_points(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decoded int64 columns as points: value bits viewed as floats, milliseconds made seconds
    in place."""
    times = columns[3].view("<f8")
    np.divide(columns[3], 1000.0, out=times)
    return columns[0], columns[1], columns[2].view("<f8"), times


def _decode_into(data: bytes, table: list[np.ndarray], inflated: bytes | None = None) -> None:
    """One chunk into ``table`` (four int64 columns of its length): iterations, epochs, value
    bits, times in milliseconds. ``inflated``: its deflated planes, when already inflated."""
    fmt, first_iteration, first_millis, mask = _HEADER.unpack_from(data)
    n = len(table[0])
    if not n:
        return
    k = mask.bit_count()
    fills = np.frombuffer(data, np.uint8, k, _HEADER.size)
    if inflated is None:
        inflated = zlib.decompress(data[_HEADER.size + k :])
    stored = np.frombuffer(inflated, dtype=np.uint8).reshape(-1, n)
    filled = at = 0  # the next constant plane's byte, the next stored plane
    for column in range(_COLUMNS):
        kept = mask >> (8 * column) & 0xFF
        if kept == 0xFF:  # one value (regular deltas, a constant epoch): one contiguous fill
            table[column].fill(int.from_bytes(fills[filled : filled + 8], "little", signed=True))
            filled += 8
            continue
        planes = table[column].view(np.uint8).reshape(n, 8)
        # each run of constant or stored planes written at once (a plane at a time, a
        # 2,500-point chunk paid numpy's call 32 times over)
        for lo, hi, constant in _plane_runs(kept):
            if constant:
                planes[:, lo:hi] = fills[filled : filled + hi - lo]
                filled += hi - lo
            else:
                planes[:, lo:hi] = stored[at : at + hi - lo].T
                at += hi - lo
    _undelta(table[0], first_iteration)
    _undelta(table[3], first_millis)
    _values_of(table[2], fmt)


def _undelta(deltas: np.ndarray, first: int) -> None:
    """Running sums of ``deltas`` in place, shifted to start at ``first``."""
    np.cumsum(deltas, out=deltas)
    deltas += first - deltas[0]


def pack_chunks(chunks: Sequence[SeriesChunk]) -> list[SeriesChunk]:
    """The chunks with their columns packed as stored (``packed``, all at once as
    :func:`encode_chunks` packs them): the SDK packs, a store keeps the bytes. Only meaningful
    for a chunk stored as it is (one per series, in iteration order); a store packs any other
    again."""
    return [replace(c, packed=data) for c, data in zip(chunks, encode_chunks(chunks), strict=True)]


def packed_data(
    chunks: Sequence[SeriesChunk], stored_below: int = 0, narrow: bool = False
) -> list[bytes]:
    """Each chunk's stored bytes: its ``packed`` when set, else packed now (together, as
    :func:`encode_chunks` packs them with ``stored_below`` and ``narrow``)."""
    bare = [c for c in chunks if c.packed is None]
    fresh = iter(encode_chunks(bare, stored_below, narrow) if bare else [])
    return [c.packed if c.packed is not None else next(fresh) for c in chunks]


# the value column's four high byte planes, zero in a NARROW or NARROW_DELTA chunk (its values
# are 32-bit)
_NARROW_HIGH = tuple(range(2 * 8 + 4, 3 * 8))


def _narrow_planes_zero(data: bytes, mask: int) -> bool:
    """Whether a NARROW chunk's high value planes are constant planes of zero bytes."""
    for plane in _NARROW_HIGH:
        if not mask >> plane & 1 or data[_HEADER.size + (mask & ((1 << plane) - 1)).bit_count()]:
            return False
    return True


def unpack_chunk(
    data: bytes, n: int, field: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`decode_chunk` for bytes from outside: iterations, epochs, values, times of a
    chunk announced to hold ``n`` points, checked strictly (its inflated planes are exactly
    what ``n`` points need, so no chunk inflates past what it announces).

    Raises:
        ValidationError: naming ``field``: not a chunk of this format, or not of ``n`` points.
    """
    if len(data) < _HEADER.size:
        raise ValidationError(f"holds {len(data)} bytes, fewer than a chunk's header", field)
    fmt, _, _, mask = _HEADER.unpack_from(data)
    if fmt not in _FORMATS:
        raise ValidationError(f"is of chunk format {fmt}, not one of {list(_FORMATS)}", field)
    k = mask.bit_count()
    want = (_PLANES - k) * n
    if len(data) < _HEADER.size + k:
        raise ValidationError("ends inside its constant planes", field)
    if fmt in _NARROWS and not _narrow_planes_zero(data, mask):
        raise ValidationError("holds float32 values with bits past a float32's", field)
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(data[_HEADER.size + k :], want + 1)
    except zlib.error:
        raise ValidationError("is not a packed chunk (its planes do not inflate)", field) from None
    if len(inflated) != want or not inflater.eof:
        raise ValidationError(f"does not hold the {n} points announced", field)
    if inflater.unused_data:
        raise ValidationError("has bytes after its packed planes", field)
    columns = [np.empty(n, dtype="<i8") for _ in range(_COLUMNS)]
    _decode_into(data, columns, inflated)
    return _as_points(columns)
