"""Metric points to and from their wire form: series summaries, series (JSON for charts or
packed columns, exact to the bit), batched reads' answers, and the chunks and batches a run
writes.

The points half of :mod:`mltrail.core.codec` (same conventions: non-finite floats tagged,
times in unix seconds, columns as base64 of little-endian arrays via
:func:`~mltrail.core.wire.pack_array`). A batch of points also travels as a binary body
(:data:`POINTS_MEDIA_TYPE`, :func:`metric_batch_to_binary`): the same columns as raw bytes.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from mltrail.core.chunk_codec import packed_data, unpack_chunk
from mltrail.core.errors import ValidationError
from mltrail.core.points import batch_chunk_count
from mltrail.core.types import (
    MAX_BATCH_CHUNKS,
    MetricBatch,
    MetricSummary,
    Series,
    SeriesAnswer,
    SeriesChunk,
    SeriesQuery,
)
from mltrail.core.validation import MAX_KEY_LEN
from mltrail.core.wire import (
    dump_json,
    encode_float,
    floats_to_wire,
    from_wire,
    pack_array,
    parse_json,
)
from mltrail.core.wire import unpack_array as _unpack

Json = dict[str, Any]


def summary_to_wire(s: MetricSummary) -> Json:
    return {
        "key": s.key,
        "phase": s.phase,
        "count": s.count,
        "last": encode_float(s.last),
        "min": encode_float(s.min),
        "max": encode_float(s.max),
        "last_iteration": s.last_iteration,
        "last_epoch": s.last_epoch,
    }


def summary_from_wire(d: Json) -> MetricSummary:
    return MetricSummary(
        key=d["key"],
        phase=d["phase"],
        count=d["count"],
        last=float(from_wire(d["last"])),
        min=float(from_wire(d["min"])),
        max=float(from_wire(d["max"])),
        last_iteration=d["last_iteration"],
        last_epoch=d.get("last_epoch"),
    )


def series_to_wire(s: Series, *, tagged: bool = True) -> Json:
    """A series for charts: epochs of -1 ("no epoch") become null; ``tagged=False`` keeps
    non-finite values as Python floats (the Python API's form)."""
    epochs: list[Any] = np.asarray(s.epochs, dtype=np.int64).tolist()
    if epochs and min(epochs) < 0:
        epochs = [None if e < 0 else e for e in epochs]
    return {
        "key": s.key,
        "phase": s.phase,
        "total": s.total,
        "downsampled": s.downsampled,
        "iterations": np.asarray(s.iterations, dtype=np.int64).tolist(),
        "epochs": epochs,
        "values": floats_to_wire(s.values) if tagged else np.asarray(s.values).tolist(),
        **({} if s.times is None else {"times": _times_to_wire(s.times)}),
    }


def _times_to_wire(times: np.ndarray) -> list[float | None]:
    """Unix seconds; an unknown time (NaN: points stored before times were kept) is null."""
    out: list[Any] = np.round(np.asarray(times, dtype=np.float64), 3).tolist()
    if np.isnan(times).any():
        out = [None if t != t else t for t in out]
    return out


def series_from_wire(d: Json) -> Series:
    values = [v if isinstance(v, (int, float)) else from_wire(v) for v in d["values"]]
    times = d.get("times")
    return Series(
        key=d["key"],
        phase=d["phase"],
        iterations=np.asarray(d["iterations"], dtype=np.int64),
        epochs=np.asarray([-1 if e is None else e for e in d["epochs"]], dtype=np.int64),
        values=np.asarray(values, dtype=np.float64),
        total=d["total"],
        downsampled=d["downsampled"],
        times=None if times is None else np.array(times, dtype=np.float64),
    )


def series_to_packed(s: Series) -> Json:
    """A series with its columns packed (exact to the bit, compact): for exports and HttpStore."""
    return {
        **_packed_head(s),
        "iterations": pack_array(s.iterations, "<i8"),
        "epochs": pack_array(s.epochs, "<i8"),
        "values": pack_array(s.values, "<f8"),
        **({} if s.times is None else {"times": pack_array(s.times, "<f8")}),
    }


def _packed_head(s: Series) -> Json:
    """The fields of a packed series before its columns."""
    return {"key": s.key, "phase": s.phase, "total": s.total, "downsampled": s.downsampled,
            "n": len(s.iterations)}  # fmt: skip


def series_from_packed(d: Json) -> Series:
    n = d["n"]
    return Series(
        key=d["key"],
        phase=d["phase"],
        iterations=_unpack(d["iterations"], "<i8", n, "iterations"),
        epochs=_unpack(d["epochs"], "<i8", n, "epochs"),
        values=_unpack(d["values"], "<f8", n, "values"),
        total=d["total"],
        downsampled=d["downsampled"],
        times=_unpack(d["times"], "<f8", n, "times") if "times" in d else None,
    )


PIECE_POINTS = 3 * 2**14  # a multiple of 3 points: each piece's base64 ends without padding


def packed_series_body(s: Series) -> bytearray:
    """The JSON bytes of :func:`series_to_packed` (as :func:`~mltrail.core.wire.dump_json`
    writes them), each column base64-encoded :data:`PIECE_POINTS` points at a time straight
    into the body: a long series' answer is made beside its columns without every column as
    text and orjson's output buffer (which reserves several times the text it copies) too."""
    size, pieces = packed_series_pieces(s)
    body = bytearray(size)
    end = 0
    for piece in pieces:
        body[end : end + len(piece)] = piece
        end += len(piece)
    return body


def packed_series_pieces(s: Series) -> tuple[int, Iterator[bytes]]:
    """The length of :func:`packed_series_body` and its bytes in pieces of at most
    :data:`PIECE_POINTS` points of one column, made as they are taken: a server sends them one
    by one, never holding the whole body (nor a copy of its unsent rest) beside the columns."""
    columns = [("iterations", s.iterations, "<i8"), ("epochs", s.epochs, "<i8"),
               ("values", s.values, "<f8")]  # fmt: skip
    if s.times is not None:
        columns.append(("times", s.times, "<f8"))
    opening = dump_json(_packed_head(s))[:-1]  # without its closing brace: columns follow
    n = len(s.iterations)
    text = 4 * -(-8 * n // 3)  # base64 characters of one column
    size = len(opening) + sum(len(f',"{name}":""') + text for name, _, _ in columns) + 1
    return size, _packed_pieces(opening, columns, n)


def _packed_pieces(
    opening: bytes, columns: list[tuple[str, np.ndarray, str]], n: int
) -> Iterator[bytes]:
    yield opening
    for name, column, dtype in columns:
        array = np.ascontiguousarray(column, dtype=dtype)
        yield f',"{name}":"'.encode()
        for start in range(0, n, PIECE_POINTS):
            yield base64.b64encode(array[start : start + PIECE_POINTS].tobytes())
        yield b'"'
    yield b"}"


def series_query_to_wire(q: SeriesQuery) -> Json:
    body: Json = {"project": q.project_id, "experiment": q.experiment_id}
    if q.key is not None:
        body["key"] = q.key
    if q.phase is not None:
        body["phase"] = q.phase
    return body


def series_answer_to_wire(a: SeriesAnswer, *, packed: bool = False) -> Json:
    """One entry of a batched read's ``series``: the series (JSON or packed columns) with its
    ``project`` and ``experiment``, or ``{"project", "experiment", "key", "phase", "error":
    {"type", "message"}}`` for an entry that found none."""
    head: Json = {"project": a.project_id, "experiment": a.experiment_id}
    if a.series is None:
        error = {"type": a.error, "message": a.message}
        return head | {"key": a.key, "phase": a.phase, "error": error}
    return head | (series_to_packed(a.series) if packed else series_to_wire(a.series))


def series_answer_from_wire(d: Json) -> SeriesAnswer:
    if "error" in d:
        error = d["error"]
        return SeriesAnswer(d["project"], d["experiment"], d.get("key"), d.get("phase"),
                            error=error["type"], message=error["message"])  # fmt: skip
    series = series_from_packed(d) if "n" in d else series_from_wire(d)
    return SeriesAnswer(d["project"], d["experiment"], series.key, series.phase, series)


_COLUMNS = (("iterations", "<i8"), ("epochs", "<i8"), ("values", "<f8"), ("times", "<f8"))


def chunk_to_wire(c: SeriesChunk) -> Json:
    body: Json = {"key": c.key, "phase": c.phase, "n": len(c)}
    for name, dtype in _COLUMNS:
        body[name] = pack_array(getattr(c, name), dtype)
    return body


def chunk_from_wire(d: Mapping[str, Any], field: str = "chunks") -> SeriesChunk:
    n = d["n"]
    it, ep, v, t = (_unpack(d[name], dtype, n, f"{field}.{name}") for name, dtype in _COLUMNS)
    return SeriesChunk(d["key"], d["phase"], it, ep, v, t)


def metric_batch_to_wire(b: MetricBatch) -> Json:
    return {"client_id": b.client_id, "seq": b.seq, "chunks": [chunk_to_wire(c) for c in b.chunks]}


def metric_batch_from_wire(d: Mapping[str, Any]) -> MetricBatch:
    batch_chunk_count(len(d["chunks"]))
    chunks = tuple(chunk_from_wire(c, f"chunks[{i}]") for i, c in enumerate(d["chunks"]))
    return MetricBatch(client_id=d["client_id"], seq=d["seq"], chunks=chunks)


# --- the binary body of a points batch ----------------------------------------------------------
# b"MLTP", the header's length (uint32 LE), the header: UTF-8 JSON {"client_id", "seq",
# "chunks": [{"key", "phase", "n"}, ...]} padded with spaces to a multiple of 8 bytes; then per
# chunk, in order, its n iterations (<i8), epochs (<i8), values (<f8) and times (<f8). Nothing
# else: the body's length is exactly what the header announces. At most MAX_BATCH_CHUNKS
# chunks, each of n >= 1 points, and a header of at most MAX_HEADER_BYTES.
# b"MLTC" instead: the chunks packed as stored (mltrail.core.chunk_codec), each header entry
# {"key", "phase", "n", "size"} and then each chunk's ``size`` bytes: what the SDK sends, about
# a fifth of the raw columns, which the server unpacks to check and keeps as they are.
POINTS_MEDIA_TYPE = "application/vnd.mltrail.points"
_MAGIC = b"MLTP"
_PACKED_MAGIC = b"MLTC"
_PREFIX = struct.Struct("<4sI")
_MAX_N = 2**40
MAX_PACKED_POINTS = 2**21
"""Points one packed body may announce: what a raw body of the server's 64 MiB limit holds, so
a few packed bytes never inflate to more memory than a raw body could take."""
MAX_HEADER_BYTES = 4_096 + MAX_BATCH_CHUNKS * (4 * MAX_KEY_LEN + 128)
"""The longest header read (11,284,096 bytes), refused by its length before its JSON is parsed:
per chunk, the longest key (250 characters of up to 4 UTF-8 bytes) and 128 bytes for its phase,
``n`` and punctuation; 4 KiB for the client id and ``seq``. So a batch of the most chunks with the
longest keys fits as HttpStore writes it (orjson: UTF-8, no ``\\u`` escapes)."""
_MAX_SEQ = 2**63 - 1


def metric_batch_to_binary(b: MetricBatch) -> bytes:
    """The batch as a :data:`POINTS_MEDIA_TYPE` body (values exact to the bit, no base64)."""
    chunks = [{"key": c.key, "phase": c.phase, "n": len(c)} for c in b.chunks]
    parts: list[Any] = _head(_MAGIC, b, chunks)
    for c in b.chunks:
        for name, dtype in _COLUMNS:
            parts.append(np.ascontiguousarray(getattr(c, name), dtype=dtype).data)
    return b"".join(parts)


def metric_batch_to_packed(b: MetricBatch) -> bytes:
    """The batch as a :data:`POINTS_MEDIA_TYPE` body of packed chunks (each chunk's
    ``packed`` bytes, packed here when not set)."""
    data = packed_data(b.chunks)
    chunks = [{"key": c.key, "phase": c.phase, "n": len(c), "size": len(d)}
              for c, d in zip(b.chunks, data, strict=True)]  # fmt: skip
    return b"".join([*_head(_PACKED_MAGIC, b, chunks), *data])


def _head(magic: bytes, b: MetricBatch, chunks: list[Json]) -> list[Any]:
    head = dump_json({"client_id": b.client_id, "seq": b.seq, "chunks": chunks})
    head += b" " * (-(_PREFIX.size + len(head)) % 8)
    return [_PREFIX.pack(magic, len(head)), head]


def metric_batch_from_binary(body: bytes) -> MetricBatch:
    """Inverse of :func:`metric_batch_to_binary` and :func:`metric_batch_to_packed`, checking
    every size and type strictly.

    Raises:
        ValidationError: naming the field at fault (``body``, ``header``, ``client_id``,
            ``seq``, ``chunks[i].key`` ...).
    """
    magic = body[:4]
    if len(body) < _PREFIX.size or magic not in (_MAGIC, _PACKED_MAGIC):
        raise ValidationError(f"must start with {_MAGIC!r} or {_PACKED_MAGIC!r} and the "
                              f"header's length ({POINTS_MEDIA_TYPE})", "body")  # fmt: skip
    client_id, seq, entries, end = _read_head(body)
    batch_chunk_count(len(entries))
    packed = magic == _PACKED_MAGIC
    heads = [_chunk_head(entry, f"chunks[{i}]", packed) for i, entry in enumerate(entries)]
    read = _packed_chunks if packed else _raw_chunks
    return MetricBatch(client_id=client_id, seq=seq, chunks=read(body, end, heads))


def _read_head(body: bytes) -> tuple[str, int, list[Any], int]:
    """client_id, seq, the chunks' entries and where the header ends."""
    size = _PREFIX.unpack_from(body)[1]
    if size > MAX_HEADER_BYTES:
        raise ValidationError(
            f"announces {size} bytes, at most {MAX_HEADER_BYTES} (send fewer chunks per batch)",
            "header",
        )
    end = _PREFIX.size + size
    if end > len(body):
        raise ValidationError(f"announces {size} bytes, the body has {len(body)}", "header")
    try:
        head = parse_json(body[_PREFIX.size : end])
    except ValueError:
        raise ValidationError("must be UTF-8 JSON", "header") from None
    if not isinstance(head, dict):
        raise ValidationError("must be a JSON object", "header")
    client_id, seq, entries = head.get("client_id"), head.get("seq"), head.get("chunks")
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 200:
        raise ValidationError("must be a string of 1 to 200 characters", "client_id")
    if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
        raise ValidationError(f"must be an integer from 0 to {_MAX_SEQ}", "seq")
    if not isinstance(entries, list):
        raise ValidationError("must be a list", "chunks")
    if len(head) > 3:  # a newer client's field: refused by name rather than dropped
        _refuse_unknown(head, ("client_id", "seq", "chunks"), "")
    return client_id, seq, entries, end


def _refuse_unknown(entry: dict[str, Any], known: tuple[str, ...], field: str) -> None:
    """Refuse the first key of ``entry`` not in ``known`` (field ``<field>.<key>``)."""
    for name in entry:
        if name not in known:
            raise ValidationError(
                "unknown field: this server does not take it (is the client newer?)",
                f"{field}.{name}" if field else name,
            )


_Head = tuple[str, str, int, int]  # key, phase, n, packed size (0 in a raw body)


def _raw_chunks(body: bytes, end: int, heads: list[_Head]) -> tuple[SeriesChunk, ...]:
    columns = 32 * sum(n for _, _, n, _ in heads)
    if len(body) - end != columns:
        raise ValidationError(f"holds {len(body) - end} bytes of columns, the header's chunks "
                              f"need {columns}", "body")  # fmt: skip
    chunks, offset = [], end
    for key, phase, n, _ in heads:
        it, ep, v, t = (
            np.frombuffer(body, dtype, n, offset + 8 * n * i).astype(dtype[1:], copy=False)
            for i, (_, dtype) in enumerate(_COLUMNS)
        )
        offset += 32 * n
        chunks.append(SeriesChunk(key, phase, it, ep, v, t))
    return tuple(chunks)


def _packed_chunks(body: bytes, end: int, heads: list[_Head]) -> tuple[SeriesChunk, ...]:
    points, size = sum(h[2] for h in heads), sum(h[3] for h in heads)
    if points > MAX_PACKED_POINTS:
        raise ValidationError(f"announces {points} points, at most {MAX_PACKED_POINTS} per "
                              "batch (send several batches)", "chunks")  # fmt: skip
    if len(body) - end != size:
        raise ValidationError(f"holds {len(body) - end} bytes of chunks, the header's chunks "
                              f"announce {size}", "body")  # fmt: skip
    chunks, offset = [], end
    for i, (key, phase, n, length) in enumerate(heads):
        data = body[offset : offset + length]
        offset += length
        columns = unpack_chunk(data, n, f"chunks[{i}].data")
        chunks.append(SeriesChunk(key, phase, *columns, packed=data))
    return tuple(chunks)


def _chunk_head(entry: Any, field: str, packed: bool) -> _Head:
    if not isinstance(entry, dict):
        raise ValidationError("must be an object {key, phase, n}", field)
    key, phase, n = entry.get("key"), entry.get("phase"), entry.get("n")
    if not isinstance(key, str):
        raise ValidationError("must be a string", f"{field}.key")
    if not isinstance(phase, str):
        raise ValidationError("must be a string", f"{field}.phase")
    if type(n) is not int or not 1 <= n <= _MAX_N:
        raise ValidationError(f"must be an integer from 1 to {_MAX_N}", f"{field}.n")
    size = entry.get("size") if packed else 0
    if type(size) is not int or not 0 <= size <= _MAX_N:
        raise ValidationError(f"must be an integer from 0 to {_MAX_N}", f"{field}.size")
    if len(entry) > (4 if packed else 3):
        _refuse_unknown(entry, _PACKED_HEAD if packed else _RAW_HEAD, field)
    return key, phase, n, size


_RAW_HEAD = ("key", "phase", "n")
_PACKED_HEAD = (*_RAW_HEAD, "size")
