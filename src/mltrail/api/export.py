"""Whole histories written as files: CSV, Parquet, JSON lines (``api.experiments.export``).

Every writer takes the store's arrays as they come and never makes a Python object per point:

- CSV: the columns of a slice are formatted by orjson in one call per type (shortest
  round-trip text for floats, as ``repr`` gives): iterations and epochs interleaved in one
  integer array (apart when some epochs are missing), values and times in one float array, so
  a row's ``,iteration,epoch`` and ``,value,time`` are each one field, cut at every other comma
  with numpy; pyarrow glues the rows (``binary_join_element_wise``, off the GIL, in a thread
  pool) behind a per-series prefix (project, experiment, key, phase, formatted once). Without
  pyarrow the same fields are joined in Python (slower, same bytes). NaN and infinities are
  written ``nan``, ``inf``, ``-inf``; a missing epoch is an empty field; a key starting like a
  formula (``=``, ``+``, ``-``, ``@``, tab, CR) is written after a single quote, so a
  spreadsheet shows it as text.
- Parquet: one streaming writer, a row group per series (cut at :data:`ROW_GROUP_ROWS`); the
  constant columns dictionary-encoded, iterations and epochs delta-encoded, times byte-split.
- JSON lines: one object per point, non-finite values tagged as everywhere in mltrail (with
  pyarrow, glued from orjson's text of each column, a colon written over each field's leading
  comma, behind its key; in Python otherwise, same bytes).

Reads overlap writing: the next series are read in background threads while one is written.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, TypeVar

import numpy as np
import orjson

from mltrail.core.wire import dump_json, encode_float

COLUMNS = ("project", "experiment", "key", "phase", "iteration", "epoch", "value", "time")
SLICE_ROWS = 32_768  # rows formatted at once (~2 MB of CSV): small enough that the allocator
# reuses its memory from slice to slice (at 262,144 rows every slice's buffers were fresh pages,
# and the kernel zeroing them cost as much CPU as the formatting)
ROW_GROUP_ROWS = 1_048_576
READ_AHEAD = 2  # series read while one is written
READ_AHEAD_POINTS = 4_000_000  # ... holding at most this many points (~130 MB of arrays)
_COMMA, _COLON = ord(","), ord(":")
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


def _fields(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The columns (of one dtype) as text, a field per row holding the row's values with a
    leading comma each: (bytes, n + 1 offsets).

    orjson formats the columns interleaved in one call (``[a1,b1,a2,b2]``); a row's field starts
    at every ``len(columns)``-th comma, the first at the opening bracket (made a comma once the
    row is glued, see :func:`_first_row`), and the closing bracket is left out by the last
    offset. The text is not copied.
    """
    if len(columns) == 1:
        both = columns[0]
    else:
        both = np.empty(len(columns) * len(columns[0]), dtype=columns[0].dtype)
        for i, column in enumerate(columns):
            both[i :: len(columns)] = column
    text = np.frombuffer(orjson.dumps(both, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
    commas = np.flatnonzero(text == _COMMA)
    offsets = np.empty(len(columns[0]) + 1, dtype=np.int32)  # a slice is far below 2 GB
    offsets[0] = 0
    offsets[1:-1] = commas[len(columns) - 1 :: len(columns)]
    offsets[-1] = len(text) - 1
    return text, offsets


def _first_row(prefix: bytes, row: bytes) -> bytes:
    """The slice's first row with its fields' opening brackets made the commas they stand for
    (only the prefix, formatted apart, can hold a bracket of its own)."""
    return row[: len(prefix)] + row[len(prefix) :].replace(b"[", b",")


Fields = tuple[np.ndarray, np.ndarray]  # text and n + 1 offsets (see _fields)


def _row_fields(part: Part, lo: int, hi: int) -> tuple[list[tuple[Fields, Any]], Fields, Any]:
    """Rows ``lo:hi`` as the fields a row is glued from after its prefix: the integers
    (``,iteration,epoch`` as one field; iteration and epoch apart, with which epochs are
    present, when some are missing), then ``,value,time`` and the fixes of the rows where
    those are NaN or infinite (their indexes and texts; None if there are none)."""
    iterations, epochs = part.iterations[lo:hi], part.epochs[lo:hi]
    present = epochs >= 0
    numbers: list[tuple[Fields, Any]] = [(_fields(iterations, epochs), None)]
    if not present.all():
        numbers = [(_fields(iterations), None), (_fields(epochs), present)]
    values, times = part.values[lo:hi], part.times[lo:hi]
    floats = _fields(values, times)
    return numbers, floats, _non_finite_fixes(floats, values, times)


def _non_finite_fixes(floats: Fields, values: np.ndarray, times: np.ndarray) -> Any:
    """The rows whose value or time is NaN or infinite (orjson wrote null) and their
    ``,value,time`` field with ``nan``, ``inf`` or ``-inf`` in its place."""
    bad = np.flatnonzero(~(np.isfinite(values) & np.isfinite(times)))
    if not len(bad):
        return None
    text, offsets = floats
    fixed = []
    for i in bad.tolist():
        field = text[offsets[i] : offsets[i + 1]].tobytes()
        texts = field[1:].split(b",")
        for j, number in enumerate((float(values[i]), float(times[i]))):
            if not math.isfinite(number):
                texts[j] = _NON_FINITE[str(number)]
        fixed.append(field[:1] + b",".join(texts))  # the first row keeps its bracket
    return bad, fixed


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
        return _join_python(_prefix(part), _row_fields(part, lo, hi))

    def _arrow_rows(self, part: Part, lo: int, hi: int) -> list[Any]:
        """Rows ``lo:hi`` of the series as text, in a pool thread: orjson holds the GIL while
        it formats, numpy and pyarrow mostly do not."""
        return _join_arrow(self._arrow, _prefix(part), _row_fields(part, lo, hi))


def _join_python(prefix: bytes, fields: tuple[list[tuple[Fields, Any]], Fields, Any]) -> bytes:
    numbers, floats, fixes = fields
    texts = []
    for column, present in numbers:
        texts.append(_split(column))
        if present is not None:
            for i in np.flatnonzero(~present).tolist():
                texts[-1][i] = b","
    texts.append(_split(floats))
    if fixes is not None:
        for i, text in zip(fixes[0].tolist(), fixes[1], strict=True):
            texts[-1][i] = text
    rows = [prefix + b"".join(row) for row in zip(*texts, strict=True)]
    rows[0] = _first_row(prefix, rows[0])
    return b"".join(rows)


def _split(fields: Fields) -> list[bytes]:
    text, offsets = fields
    data = text.tobytes()
    bounds = offsets.tolist()
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _join_arrow(
    pa: Any, prefix: bytes, fields: tuple[list[tuple[Fields, Any]], Fields, Any]
) -> list[Any]:
    """The slice's rows: the first one, then the others in one buffer (pyarrow's element-wise
    join releases the GIL; a missing epoch is a null, written as its comma)."""
    import pyarrow.compute as pc

    numbers, floats, fixes = fields
    columns = [_strings(pa, column, present) for column, present in numbers]
    columns.append(_strings(pa, floats))
    if fixes is not None:
        where, texts = fixes
        columns[-1] = pc.replace_with_mask(
            columns[-1], _mask(pa, len(columns[-1]), where), _texts(pa, texts)
        )
    rows = pc.binary_join_element_wise(
        _texts(pa, [prefix])[0],
        *columns,
        _texts(pa, [b""])[0],
        null_handling="replace",
        null_replacement=",",
    )
    text, offsets = _text_of(rows)
    start, second, end = (int(o) for o in offsets[[0, 1, -1]])
    return [_first_row(prefix, bytes(text[start:second])), text[second:end]]


def _text_of(rows: Any) -> tuple[memoryview, np.ndarray]:
    """A binary array's data and its n + 1 offsets into it."""
    offsets = np.frombuffer(rows.buffers()[1], np.int32, len(rows) + 1, rows.offset * 4)
    return memoryview(rows.buffers()[2]), offsets


def _mask(pa: Any, n: int, where: np.ndarray) -> Any:
    mask = np.zeros(n, dtype=bool)
    mask[where] = True
    return pa.Array.from_buffers(
        pa.bool_(), n, [None, pa.py_buffer(np.packbits(mask, bitorder="little"))]
    )


def _texts(pa: Any, items: list[bytes], kind: Any = None) -> Any:
    """A binary (or ``kind``) array of ``items``, built from buffers: ``pa.array`` and
    ``pa.scalar`` import pandas (a third of a second) on first use."""
    kind = pa.binary() if kind is None else kind
    offsets = np.zeros(len(items) + 1, dtype=np.int32)
    np.cumsum([len(i) for i in items], out=offsets[1:])
    data = pa.py_buffer(b"".join(items))
    return pa.Array.from_buffers(kind, len(items), [None, pa.py_buffer(offsets), data])


def _strings(
    pa: Any, fields: tuple[np.ndarray, np.ndarray], valid: np.ndarray | None = None
) -> Any:
    """A binary array over the formatted text, without copying it."""
    text, offsets = fields
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.binary(),
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

        def keyed(column: np.ndarray, valid: np.ndarray | None = None) -> Any:
            """The column's fields with a colon for their leading comma (or bracket), to
            follow their key: no copy of each field as slicing the comma off made."""
            text, offsets = _fields(column)
            text = text.copy()  # orjson's bytes are read-only
            text[offsets[:-1]] = _COLON
            return _strings(pa, (text, offsets), valid)

        columns = [keyed(part.iterations[lo:hi]), keyed(epochs, epochs >= 0), keyed(values)]
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):  # orjson wrote null: tagged instead, as everywhere in mltrail
            tags = [b":" + dump_json(encode_float(v)) for v in values[bad].tolist()]
            columns[2] = pc.replace_with_mask(
                columns[2], _mask(pa, len(values), bad), _texts(pa, tags)
            )
        columns.append(keyed(times))  # a missing (NaN) time is orjson's null, as in _python
        labels = [b',"iteration"', b',"epoch"', b',"value"', b',"time"']
        glued = [_texts(pa, [head + labels[0]])[0], columns[0]]
        for label, column in zip(labels[1:], columns[1:], strict=True):
            glued += [_texts(pa, [label])[0], column]
        rows = pc.binary_join_element_wise(
            *glued,
            _texts(pa, [b"}\n"])[0],
            _texts(pa, [b""])[0],
            null_handling="replace",
            null_replacement=":null",
        )
        text, offsets = _text_of(rows)
        return [text[int(offsets[0]) : int(offsets[-1])]]
