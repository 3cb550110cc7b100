"""Whole histories written as files: CSV, Parquet, JSON lines (``api.experiments.export``).

Every writer takes the store's arrays as they come and never makes a Python object per point:

- CSV: each column of a slice is formatted by orjson in one call (shortest round-trip text for
  floats, as ``repr`` gives), cut at its commas with numpy, and the rows are glued by pyarrow
  (``binary_join_element_wise``, off the GIL, in a thread pool) behind a per-series prefix
  (project, experiment, key, phase, formatted once). Without pyarrow the same texts are joined
  in Python (slower, same bytes). NaN and infinities are written ``nan``, ``inf``, ``-inf``;
  a missing epoch is an empty field; a key starting like a formula (``=``, ``+``, ``-``, ``@``,
  tab, CR) is written after a single quote, so a spreadsheet shows it as text.
- Parquet: one streaming writer, a row group per series (cut at :data:`ROW_GROUP_ROWS`); the
  constant columns dictionary-encoded, iterations and epochs delta-encoded, times byte-split.
- JSON lines: one object per point, non-finite values tagged as everywhere in mltrail (with
  pyarrow, glued from the same column texts as CSV; in Python otherwise, same bytes).

Reads overlap writing: the next series are read in background threads while one is written.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, TypeVar

import numpy as np
import orjson

from mltrail.core.wire import dump_json, encode_float

COLUMNS = ("project", "experiment", "key", "phase", "iteration", "epoch", "value", "time")
SLICE_ROWS = 262_144  # rows formatted at once: bounds the memory a CSV slice takes (~20 MB)
ROW_GROUP_ROWS = 1_048_576
READ_AHEAD = 2  # series read while one is written
READ_AHEAD_POINTS = 4_000_000  # ... holding at most this many points (~130 MB of arrays)
_COMMA = ord(",")
T = TypeVar("T")
_NON_FINITE = {"nan": b"nan", "inf": b"inf", "-inf": b"-inf"}


class Part:
    """One series' points as arrays, with what identifies it (what the writers consume)."""

    __slots__ = ("epochs", "experiment", "iterations", "key", "phase", "project", "times", "values")

    def __init__(
        self, project: int, experiment: int, key: str, phase: str, *arrays: np.ndarray
    ) -> None:
        self.project, self.experiment, self.key, self.phase = project, experiment, key, phase
        it, ep, v, t = arrays
        self.iterations = np.asarray(it, dtype=np.int64)
        self.epochs = np.asarray(ep, dtype=np.int64)
        self.values = np.asarray(v, dtype=np.float64)
        self.times = np.asarray(t, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.values)


def read_ahead(
    reads: Sequence[Callable[[], T]],
    sizes: Sequence[int],
    depth: int = READ_AHEAD,
    budget: int = READ_AHEAD_POINTS,
) -> Iterator[T]:
    """What ``reads`` read, in order, up to ``depth`` of them read in background threads while
    one is written (the database, zlib and numpy release the GIL), as long as the reads ahead
    hold at most ``budget`` points (``sizes``) or are a single read: memory stays under the
    series written plus the larger of the budget and the longest series."""
    with ThreadPoolExecutor(max_workers=depth) as pool:
        ahead: deque[tuple[Future[T], int]] = deque()  # submitted, not yet handed out
        held = 0  # points in ``ahead``
        for read, size in zip(reads, sizes, strict=True):
            while ahead and (len(ahead) > depth or held + size > budget):
                done, n = ahead.popleft()
                held -= n
                yield done.result()  # resumed once the caller has written it
            ahead.append((pool.submit(read), size))
            held += size
        while ahead:
            yield ahead.popleft()[0].result()


# --- CSV -----------------------------------------------------------------------------------------
def csv_header() -> bytes:
    return ",".join(f'"{c}"' for c in COLUMNS).encode()


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet runs a cell beginning with as a formula (OWASP, CSV injection)."""


def _text_cell(text: str) -> str:
    """A text field quoted, after a single quote when it starts like a formula, so a spreadsheet
    shows it as text (OWASP's advice); only text columns pass here, never numbers."""
    return _quoted("'" + text if text.startswith(FORMULA_STARTS) else text)


def _prefix(part: Part) -> bytes:
    """The start of each of the series' rows, newline first (rows are glued end to end)."""
    key, phase = _text_cell(part.key), _text_cell(part.phase)
    return f"\n{part.project},{part.experiment},{key},{phase}".encode()


def _fields(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column as text, each field with its leading comma: (bytes, n + 1 offsets).

    orjson formats the whole column at once (``[a,b,c]``); fields start at the commas, the
    first at the opening bracket (made a comma once the row is glued, see :func:`_first_row`),
    and the closing bracket is left out by the last offset. The text is not copied.
    """
    text = np.frombuffer(orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
    commas = np.flatnonzero(text == _COMMA)
    offsets = np.empty(len(commas) + 2, dtype=np.int64)
    offsets[0] = 0
    offsets[1:-1] = commas
    offsets[-1] = len(text) - 1
    return text, offsets


def _first_row(prefix: bytes, row: bytes) -> bytes:
    """The slice's first row with its fields' opening brackets made the commas they stand for
    (only the prefix, formatted apart, can hold a bracket of its own)."""
    return row[: len(prefix)] + row[len(prefix) :].replace(b"[", b",")


def _non_finite_texts(values: np.ndarray) -> tuple[np.ndarray, list[bytes]] | None:
    """Where ``values`` are NaN or infinite and their text with its comma (orjson has null)."""
    bad = np.flatnonzero(~np.isfinite(values))
    if not len(bad):
        return None
    texts = [b"," + _NON_FINITE[str(v)] for v in values[bad].tolist()]
    return bad, texts


def _slice_columns(part: Part, lo: int, hi: int) -> list[Any]:
    """The four formatted columns of rows ``lo:hi``: iteration, epoch (+ which are missing),
    value and time (+ their non-finite fixes)."""
    epochs = part.epochs[lo:hi]
    values, times = part.values[lo:hi], part.times[lo:hi]
    return [
        _fields(part.iterations[lo:hi]),
        (_fields(epochs), epochs < 0),
        (_fields(values), _non_finite_texts(values)),
        (_fields(times), _non_finite_texts(times)),
    ]


class _SlicedWriter:
    """Series cut in slices of :data:`SLICE_ROWS` rows made text in a thread pool when pyarrow
    is installed (in this thread otherwise, or with ``pure=True``) and written in order, then
    :attr:`TRAILER`."""

    TRAILER = b""

    def __init__(self, out: IO[bytes], *, pure: bool = False) -> None:
        self._out = out
        self._arrow = None if pure else _optional_arrow()
        workers = max(2, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=workers) if self._arrow else None
        self._pending: list[Future[Any]] = []
        self._depth = 2 * workers

    def write(self, part: Part) -> None:
        for lo in range(0, len(part), SLICE_ROWS):
            hi = min(lo + SLICE_ROWS, len(part))
            if self._pool is None:
                self._out.write(self._python(part, lo, hi))
                continue
            self._pending.append(self._pool.submit(self._arrow_rows, part, lo, hi))
            while len(self._pending) > self._depth:
                self._flush_one()

    def _python(self, part: Part, lo: int, hi: int) -> bytes:
        raise NotImplementedError

    def _arrow_rows(self, part: Part, lo: int, hi: int) -> list[Any]:
        raise NotImplementedError

    def _flush_one(self) -> None:
        for piece in self._pending.pop(0).result():
            self._out.write(piece)

    def close(self) -> None:
        while self._pending:
            self._flush_one()
        self._out.write(self.TRAILER)
        if self._pool is not None:
            self._pool.shutdown()
        self._out.flush()


class CsvWriter(_SlicedWriter):
    """Rows as text; pyarrow glues them when installed (``pure=True``: never)."""

    TRAILER = b"\n"  # rows begin with their newline: the last one ends here

    def __init__(self, out: IO[bytes], *, pure: bool = False) -> None:
        super().__init__(out, pure=pure)
        out.write(csv_header())

    def _python(self, part: Part, lo: int, hi: int) -> bytes:
        return _join_python(_prefix(part), _slice_columns(part, lo, hi))

    def _arrow_rows(self, part: Part, lo: int, hi: int) -> list[Any]:
        """Rows ``lo:hi`` of the series as text, in a pool thread: orjson holds the GIL while
        it formats, numpy and pyarrow mostly do not."""
        return _join_arrow(self._arrow, _prefix(part), _slice_columns(part, lo, hi))


def _join_python(prefix: bytes, columns: list[Any]) -> bytes:
    it, (ep, missing), (v, v_bad), (t, t_bad) = columns
    texts = [_split(it), _split(ep), _split(v), _split(t)]
    for i in np.flatnonzero(missing).tolist():
        texts[1][i] = b","
    for fixes, target in ((v_bad, texts[2]), (t_bad, texts[3])):
        if fixes is not None:
            for i, text in zip(fixes[0].tolist(), fixes[1], strict=True):
                target[i] = text
    rows = [prefix + b"".join(row) for row in zip(*texts, strict=True)]
    rows[0] = _first_row(prefix, rows[0])
    return b"".join(rows)


def _split(fields: tuple[np.ndarray, np.ndarray]) -> list[bytes]:
    text, offsets = fields
    data = text.tobytes()
    bounds = offsets.tolist()
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _join_arrow(pa: Any, prefix: bytes, columns: list[Any]) -> list[Any]:
    """The slice's rows: the first one, then the others in one buffer (pyarrow's element-wise
    join releases the GIL)."""
    import pyarrow.compute as pc

    it, (ep, missing), (v, v_bad), (t, t_bad) = columns
    epochs = _strings(pa, ep, ~missing if missing.any() else None)
    values, times = _strings(pa, v), _strings(pa, t)
    if v_bad is not None:
        values = pc.replace_with_mask(
            values, _mask(pa, len(values), v_bad[0]), _texts(pa, v_bad[1])
        )
    if t_bad is not None:
        times = pc.replace_with_mask(times, _mask(pa, len(times), t_bad[0]), _texts(pa, t_bad[1]))
    rows = pc.binary_join_element_wise(
        _texts(pa, [prefix])[0],
        _strings(pa, it),
        epochs,
        values,
        times,
        _texts(pa, [b""])[0],
        null_handling="replace",
        null_replacement=",",
    )
    offsets = np.frombuffer(rows.buffers()[1], np.int64, len(rows) + 1, rows.offset * 8)
    start, second, end = (int(o) for o in offsets[[0, 1, -1]])
    text = memoryview(rows.buffers()[2])
    return [_first_row(prefix, bytes(text[start:second])), text[second:end]]


def _mask(pa: Any, n: int, where: np.ndarray) -> Any:
    mask = np.zeros(n, dtype=bool)
    mask[where] = True
    return pa.Array.from_buffers(
        pa.bool_(), n, [None, pa.py_buffer(np.packbits(mask, bitorder="little"))]
    )


def _texts(pa: Any, items: list[bytes], kind: Any = None) -> Any:
    """A binary (or ``kind``) array of ``items``, built from buffers: ``pa.array`` and
    ``pa.scalar`` import pandas (a third of a second) on first use."""
    kind = pa.large_binary() if kind is None else kind
    offsets = np.zeros(len(items) + 1, dtype=np.int64 if kind == pa.large_binary() else np.int32)
    np.cumsum([len(i) for i in items], out=offsets[1:])
    data = pa.py_buffer(b"".join(items))
    return pa.Array.from_buffers(kind, len(items), [None, pa.py_buffer(offsets), data])


def _strings(
    pa: Any, fields: tuple[np.ndarray, np.ndarray], valid: np.ndarray | None = None
) -> Any:
    """A large_binary array over the formatted text, without copying it."""
    text, offsets = fields
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.large_binary(),
        len(offsets) - 1,
        [bitmap, pa.py_buffer(offsets), pa.py_buffer(text)],
        null_count=-1 if valid is None else int(len(valid) - valid.sum()),
    )


def _optional_arrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute  # the join lives there
    except ImportError:
        return None
    return pyarrow


# --- Parquet -------------------------------------------------------------------------------------
class ParquetWriter:
    """Parquet through pyarrow's streaming writer, one row group per series (cut at
    :data:`ROW_GROUP_ROWS`): the constant columns dictionary-encoded, iterations and epochs
    delta-encoded, times byte-stream-split (a dictionary tried on the float columns, which never
    repeat enough, cost two thirds of the time)."""

    def __init__(self, out: IO[bytes], pa: Any) -> None:
        import pyarrow.parquet as pq

        self._pa = pa
        self._writer = pq.ParquetWriter(
            out,
            arrow_schema(pa),
            compression="snappy",
            use_dictionary=["project", "experiment", "key", "phase"],
            column_encoding={
                "iteration": "DELTA_BINARY_PACKED",
                "epoch": "DELTA_BINARY_PACKED",
                "time": "BYTE_STREAM_SPLIT",  # its high bytes repeat: a third smaller, faster
            },
        )

    def write(self, part: Part) -> None:
        self._writer.write_table(arrow_part(self._pa, part), row_group_size=ROW_GROUP_ROWS)

    def close(self) -> None:
        self._writer.close()


def arrow_schema(pa: Any) -> Any:
    text = pa.dictionary(pa.int32(), pa.string())
    return pa.schema(
        [
            ("project", pa.int64()),
            ("experiment", pa.int64()),
            ("key", text),
            ("phase", text),
            ("iteration", pa.int64()),
            ("epoch", pa.int64()),
            ("value", pa.float64()),
            ("time", pa.float64()),
        ]
    )


def arrow_part(pa: Any, part: Part) -> Any:
    """One series as an Arrow table of :data:`COLUMNS`, over the arrays' memory (built from
    buffers: ``pa.array`` would import pandas, a third of a second)."""
    n = len(part)
    missing = part.epochs < 0
    codes = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(np.zeros(n, np.int32))])
    columns = [
        _numeric(pa, pa.int64(), np.full(n, part.project, dtype=np.int64)),
        _numeric(pa, pa.int64(), np.full(n, part.experiment, dtype=np.int64)),
        pa.DictionaryArray.from_arrays(codes, _texts(pa, [part.key.encode()], pa.string())),
        pa.DictionaryArray.from_arrays(codes, _texts(pa, [part.phase.encode()], pa.string())),
        _numeric(pa, pa.int64(), part.iterations),
        _numeric(pa, pa.int64(), part.epochs, None if not missing.any() else ~missing),
        _numeric(pa, pa.float64(), part.values),
        _numeric(pa, pa.float64(), part.times),
    ]
    return pa.Table.from_arrays(columns, schema=arrow_schema(pa))


def _numeric(pa: Any, kind: Any, values: np.ndarray, valid: np.ndarray | None = None) -> Any:
    values = np.ascontiguousarray(values)
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    nulls = 0 if valid is None else int(len(valid) - valid.sum())
    return pa.Array.from_buffers(kind, len(values), [bitmap, pa.py_buffer(values)], nulls)


# --- JSON lines ----------------------------------------------------------------------------------
class JsonLinesWriter(_SlicedWriter):
    """One JSON object per line, non-finite values tagged as everywhere in mltrail; with
    pyarrow, columns formatted by orjson and glued like CSV rows (the same bytes)."""

    def _python(self, part: Part, lo: int, hi: int) -> bytes:
        head: dict[str, Any] = {"project": part.project, "experiment": part.experiment}
        head |= {"key": part.key, "phase": part.phase}
        columns = (part.iterations, part.epochs, part.values, part.times)
        lines = []
        for it, ep, value, t in zip(*(c[lo:hi].tolist() for c in columns), strict=True):
            row = head | {"iteration": it, "epoch": None if ep < 0 else ep}
            row["value"] = encode_float(value)
            row["time"] = None if t != t else t
            lines.append(dump_json(row) + b"\n")
        return b"".join(lines)

    def _arrow_rows(self, part: Part, lo: int, hi: int) -> list[Any]:
        import pyarrow.compute as pc

        pa = self._arrow
        head = dump_json({"project": part.project, "experiment": part.experiment})[:-1]
        head += b"," + dump_json({"key": part.key, "phase": part.phase})[1:-1]
        epochs, values, times = part.epochs[lo:hi], part.values[lo:hi], part.times[lo:hi]

        def plain(column: np.ndarray, valid: np.ndarray | None = None) -> Any:
            return pc.binary_slice(_strings(pa, _fields(column), valid), 1, 64)  # no comma

        columns = [plain(part.iterations[lo:hi]), plain(epochs, epochs >= 0), plain(values)]
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):  # orjson wrote null: tagged instead, as everywhere in mltrail
            tags = [dump_json(encode_float(v)) for v in values[bad].tolist()]
            columns[2] = pc.replace_with_mask(
                columns[2], _mask(pa, len(values), bad), _texts(pa, tags)
            )
        columns.append(plain(times))  # a missing (NaN) time is orjson's null, as in _python
        labels = [b',"iteration":', b',"epoch":', b',"value":', b',"time":']
        glued = [_texts(pa, [head + labels[0]])[0], columns[0]]
        for label, column in zip(labels[1:], columns[1:], strict=True):
            glued += [_texts(pa, [label])[0], column]
        rows = pc.binary_join_element_wise(
            *glued,
            _texts(pa, [b"}\n"])[0],
            _texts(pa, [b""])[0],
            null_handling="replace",
            null_replacement="null",
        )
        offsets = np.frombuffer(rows.buffers()[1], np.int64, len(rows) + 1, rows.offset * 8)
        return [memoryview(rows.buffers()[2])[int(offsets[0]) : int(offsets[-1])]]
