"""The export writers on their own: CSV and JSON-lines text identical with and without pyarrow,
values read back bit for bit (NaN, infinities, -0.0, subnormals, missing epochs and times),
slices and row groups cut inside a series, and CSV without pyarrow installed."""

from __future__ import annotations

import io
import sys

import numpy as np
import orjson
import pandas as pd
import pytest

from mltrail.api import export

SPECIAL = [
    float("nan"),
    float("inf"),
    -float("inf"),
    -0.0,
    0.0,
    5e-324,
    1e300,
    0.1 + 0.2,
    123456789012.0,
    1e21,
    1e-7,
    -2.5,
]


def _parts() -> list[export.Part]:
    n = 1000
    rng = np.random.default_rng(7)
    values = rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)
    values[: len(SPECIAL)] = SPECIAL
    epochs = np.where(np.arange(n) % 3 == 0, -1, np.arange(n) // 10)  # every third has none
    times = np.round((1.7e9 + np.arange(n) * 0.013) * 1000) / 1000
    times[5] = np.nan  # a point stored before times were kept
    it = np.arange(n, dtype=np.int64) * 7 - 50
    return [
        export.Part(3, 12, 'odd "key", with comma', "train", it, epochs, values, times),
        export.Part(3, 13, "loss", "validation", it[:10], np.full(10, -1), values[:10], times[:10]),
        export.Part(3, 13, "acc", "test", it[:1], np.zeros(1), values[20:21], times[:1]),
    ]


def _expected() -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {
                "project": p.project,
                "experiment": p.experiment,
                "key": p.key,
                "phase": p.phase,
                "iteration": p.iterations,
                "epoch": pd.array([None if e < 0 else e for e in p.epochs], dtype="Int64"),
                "value": p.values,
                "time": p.times,
            }
        )
        for p in _parts()
    ]
    return pd.concat(frames, ignore_index=True)


def _same(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(frame) == len(expected)
    for column in ("project", "experiment", "iteration", "epoch"):
        assert frame[column].astype("Int64").tolist() == expected[column].tolist(), column
    for column in ("key", "phase"):
        assert frame[column].astype(str).tolist() == expected[column].tolist(), column
    for column in ("value", "time"):  # bit for bit
        got = np.asarray(frame[column], dtype=np.float64).view(np.int64)
        assert np.array_equal(got, expected[column].to_numpy().view(np.int64)), column


def _write(writer: object) -> None:
    for part in _parts():
        writer.write(part)  # type: ignore[attr-defined]
    writer.close()  # type: ignore[attr-defined]


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "SLICE_ROWS", 64)  # many slices per series, pending queue full
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 300)


def _read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(data),
        dtype={"key": str, "phase": str},
        keep_default_na=False,
        na_values={"epoch": [""], "value": ["nan"], "time": ["nan"]},
    )


def test_csv_is_the_same_text_with_and_without_pyarrow_and_reads_back_bit_for_bit(small_slices):
    fast, pure = io.BytesIO(), io.BytesIO()
    _write(export.CsvWriter(fast))
    _write(export.CsvWriter(pure, pure=True))
    assert fast.getvalue() == pure.getvalue()
    lines = fast.getvalue().split(b"\n")
    assert lines[0] == b'"project","experiment","key","phase","iteration","epoch","value","time"'
    assert lines[1] == b'3,12,"odd ""key"", with comma","train",-50,,nan,1700000000.0'
    assert lines[2:5] == [
        b'3,12,"odd ""key"", with comma","train",-43,0,inf,1700000000.013',
        b'3,12,"odd ""key"", with comma","train",-36,0,-inf,1700000000.026',
        b'3,12,"odd ""key"", with comma","train",-29,,-0.0,1700000000.039',
    ]
    assert lines[-1] == b"" and len(lines) == 1 + 1011 + 1
    _same(_read_csv(fast.getvalue()), _expected())


TRICKY = [0.1, 1e-300, 5e-324, -0.0, 1e16, 123456789.123456789, 1e21, 1e-7, float("nan")]
TRICKY += [float("inf"), -float("inf"), 2.0**53, -1.5, 1700000000.013]


def _oracle_row(part: export.Part, i: int) -> bytes:
    """One CSV row written field by field, independently of the writers' column formatting."""

    def number(x: float) -> bytes:
        return orjson.dumps(float(x)) if np.isfinite(x) else str(float(x)).encode()

    epoch = b"" if part.epochs[i] < 0 else b"%d" % part.epochs[i]
    head = b'%d,%d,"%s","%s",%d,' % (
        part.project,
        part.experiment,
        part.key.encode(),
        part.phase.encode(),
        part.iterations[i],
    )
    return head + epoch + b"," + number(part.values[i]) + b"," + number(part.times[i])


@pytest.mark.parametrize("pure", [False, True])
@pytest.mark.parametrize("epochs", ["all", "none", "some"])
def test_csv_rows_equal_a_field_by_field_oracle_on_tricky_floats(small_slices, pure, epochs):
    """Values and times (both non-finite in one row too) formatted column-wise, pairs of columns
    interleaved, across slices: every row equals the row built one field at a time, and every
    float reads back bit for bit."""
    n = 300
    rng = np.random.default_rng(11)
    values = rng.choice(TRICKY, n)
    times = rng.choice(TRICKY, n)
    values[:3], times[:3] = float("nan"), [float("inf"), -float("inf"), float("nan")]
    it = np.arange(n, dtype=np.int64) * 10 ** rng.integers(0, 15, n) - 7
    ep = {"all": np.arange(n) // 7, "none": np.full(n, -1), "some": np.where(it % 3, 1, -1)}
    part = export.Part(4, 9, "k", "train", it, ep[epochs], values, times)
    out = io.BytesIO()
    writer = export.CsvWriter(out, pure=pure)
    writer.write(part)
    writer.close()
    lines = out.getvalue().split(b"\n")[1:-1]
    assert lines == [_oracle_row(part, i) for i in range(n)]
    read = _read_csv(out.getvalue())
    for column, expected in (("value", values), ("time", times)):
        got = np.asarray(read[column], dtype=np.float64)
        same = (got.view(np.int64) == expected.view(np.int64)) | (
            np.isnan(got) & np.isnan(expected)
        )
        assert same.all(), column


@pytest.mark.parametrize("pure", [False, True])
def test_csv_text_that_a_spreadsheet_would_run_as_a_formula_starts_with_a_quote(pure):
    """OWASP's CSV injection: a key beginning with = + - @ (tab or CR) is written after a single
    quote, so a spreadsheet shows it as text; numbers (-1.5) and other keys are untouched."""
    keys = ['=HYPERLINK("http://x")', "+1", "-loss", "@SUM(A1)", "\tk", "\rk", "lo=ss", "'q"]
    ones = np.ones(1)
    out = io.BytesIO()
    writer = export.CsvWriter(out, pure=pure)
    for key in keys:
        writer.write(export.Part(1, 2, key, "train", [-3], [-1], -1.5 * ones, -ones))
    writer.close()
    assert out.getvalue().split(b"\n")[1:-1] == [
        b'1,2,"\'=HYPERLINK(""http://x"")","train",-3,,-1.5,-1.0',
        b'1,2,"\'+1","train",-3,,-1.5,-1.0',
        b'1,2,"\'-loss","train",-3,,-1.5,-1.0',
        b'1,2,"\'@SUM(A1)","train",-3,,-1.5,-1.0',
        b'1,2,"\'\tk","train",-3,,-1.5,-1.0',
        b'1,2,"\'\rk","train",-3,,-1.5,-1.0',
        b'1,2,"lo=ss","train",-3,,-1.5,-1.0',
        b'1,2,"\'q","train",-3,,-1.5,-1.0',
    ]


def test_parquet_reads_back_bit_for_bit_in_row_groups(small_slices):
    import pyarrow.parquet as pq

    out = io.BytesIO()
    _write(export.ParquetWriter(out, pytest.importorskip("pyarrow")))
    meta = pq.ParquetFile(io.BytesIO(out.getvalue())).metadata
    assert meta.num_rows == 1011 and meta.num_row_groups == 4 + 1 + 1  # 1000 rows cut at 300
    _same(pd.read_parquet(io.BytesIO(out.getvalue())), _expected())


def test_jsonl_is_the_same_text_with_and_without_pyarrow_and_tags_non_finite_values(
    small_slices,
):
    out, pure = io.BytesIO(), io.BytesIO()
    _write(export.JsonLinesWriter(out))
    _write(export.JsonLinesWriter(pure, pure=True))
    assert out.getvalue() == pure.getvalue()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1011
    assert lines[0] == (
        b'{"project":3,"experiment":12,"key":"odd \\"key\\", with comma","phase":"train",'
        b'"iteration":-50,"epoch":null,"value":{"$float":"NaN"},"time":1700000000.0}'
    )
    assert lines[1].endswith(b'"epoch":0,"value":{"$float":"Infinity"},"time":1700000000.013}')
    assert lines[5].endswith(b'"time":null}')  # stored before times were kept
    frame = pd.DataFrame([orjson.loads(line) for line in lines])
    frame["value"] = [float(v["$float"]) if isinstance(v, dict) else v for v in frame["value"]]
    frame["time"] = frame["time"].astype(float)  # null: NaN
    _same(frame, _expected())


def test_csv_without_pyarrow_joins_rows_in_python(small_slices, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # pyarrow is an optional dependency
    out = io.BytesIO()
    writer = export.CsvWriter(out)
    assert writer._pool is None  # no pyarrow: the rows are joined in Python
    _write(writer)
    _same(_read_csv(out.getvalue()), _expected())


def test_reads_ahead_in_order_within_the_points_budget():
    held: list[int] = []  # points read and not yet handed out, seen at each read
    out: list[int] = []

    def reader(i: int, size: int):
        def read() -> int:
            held.append(size)
            return i

        return read

    sizes = [5, 5, 30, 5, 5, 5, 1]
    reads = [reader(i, n) for i, n in enumerate(sizes)]
    for i in export.read_ahead(reads, sizes, depth=2, budget=12):
        out.append(i)
        # what was read so far minus what was handed out: the budget, or one longer read
        ahead = sum(held) - sum(sizes[: len(out)])
        assert ahead <= 12 or ahead == max(sizes), (i, ahead)
    assert out == list(range(len(sizes))) and len(held) == len(sizes)
