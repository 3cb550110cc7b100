"""Whole metric histories out of the store: as records, as pandas DataFrames, as files.

One data function (:func:`read_history`) feeds every renderer: ``api.experiments.history``
(records or a DataFrame), ``api.experiments.export`` and ``mltrail experiments export`` (CSV,
Parquet or JSON lines, written series by series by :mod:`mltrail.api.export`, so memory holds
a few series at a time: the one written and the next ones, read meanwhile).

A history is long-form ("tidy"): one row per point with the columns of :data:`COLUMNS`. ``epoch``
is None (pandas ``<NA>``) where the point had none; ``time`` is the point's wall-clock time in
unix seconds (NaN for points stored before times were kept). For one column per metric:
``df.pivot_table(index="iteration", columns=["phase", "key"], values="value")``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from mltrail.api import export
from mltrail.core import validation
from mltrail.core.errors import ValidationError
from mltrail.core.types import Series
from mltrail.store.base import Store

COLUMNS = export.COLUMNS
FORMATS = ("csv", "parquet", "jsonl")
OUTPUTS = ("records", "pandas")

Progress = Callable[[int, int], None]  # points written so far, points in all


@dataclass(frozen=True)
class SeriesOf:
    """One series read whole (or downsampled) with its experiment."""

    project: int
    experiment: int
    series: Series


def read_history(
    store: Store,
    project: int,
    experiment: int,
    keys: Sequence[str] | None = None,
    max_points: int | None = None,
) -> Iterator[SeriesOf]:
    """The experiment's series (those ``keys`` names, each a key or a ``phase/key`` name; all
    when None) one at a time, with wall-clock times, in (phase, key) order."""
    summaries = store.list_series(project, experiment)
    wanted = None if keys is None else set(keys)
    for summary in summaries:
        if wanted is not None and summary.key not in wanted and summary.name not in wanted:
            continue
        series = store.read_series(
            project, experiment, summary.key, summary.phase, max_points=max_points, times=True
        )
        yield SeriesOf(project, experiment, series)


def check_keys(keys: Any) -> builtins.list[str] | None:
    """``keys``: None, or a list of metric keys / ``phase/key`` names (a lone string is one)."""
    if keys is None:
        return None
    if isinstance(keys, str):
        keys = [keys]
    return [validation.metric_key(k, "keys") for k in validation.sequence_of(keys, "keys")]


def check_choice(value: Any, field: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValidationError(f"must be one of {', '.join(allowed)}, got {value!r}", field)
    return str(value)


def as_output(parts: Sequence[SeriesOf], to: str) -> Any:
    """Rows as ``to`` asks: ``records`` (a list of dicts) or ``pandas`` (a DataFrame)."""
    if to == "pandas":
        pd = import_optional("pandas", "to", "pandas")
        if _has("pyarrow"):
            frame = arrow_table(parts).to_pandas()
        else:
            frame = pd.DataFrame(records(parts), columns=builtins.list(COLUMNS))
        frame["epoch"] = frame["epoch"].astype("Int64")  # <NA> where a point had no epoch
        return frame
    return records(parts)


def experiments_output(rows: Sequence[dict[str, Any]], to: str) -> Any:
    """Experiment dicts (``api.experiments.list`` / ``search`` rows) as ``to`` asks:
    ``records`` returns them as they are; ``pandas`` a DataFrame of one row per experiment,
    hyperparameters flattened to ``params.NAME``, last metric values to ``metrics.NAME`` (ex_
    metrics included, as in the query grammar) and tags joined by commas."""
    if to != "pandas":
        return builtins.list(rows)
    pd = import_optional("pandas", "to", "pandas")
    nested = ("hyperparameters", "metrics", "ex_metrics", "environment", "source", "tags")
    flat = []
    for row in rows:
        item = {k: v for k, v in row.items() if k not in nested}
        item["tags"] = ",".join(row.get("tags") or ())
        item.update({f"params.{k}": v for k, v in (row.get("hyperparameters") or {}).items()})
        item.update({f"metrics.{k}": v for k, v in (row.get("metrics") or {}).items()})
        item.update({f"metrics.{k}": v for k, v in (row.get("ex_metrics") or {}).items()})
        flat.append(item)
    return pd.DataFrame(flat)


def records(parts: Sequence[SeriesOf]) -> builtins.list[dict[str, Any]]:
    rows: builtins.list[dict[str, Any]] = []
    for part in parts:
        s = part.series
        times = _times(s).tolist()
        for it, ep, value, t in zip(
            s.iterations.tolist(), s.epochs.tolist(), s.values.tolist(), times, strict=True
        ):
            rows.append(
                {
                    "project": part.project,
                    "experiment": part.experiment,
                    "key": s.key,
                    "phase": s.phase,
                    "iteration": it,
                    "epoch": None if ep < 0 else ep,
                    "value": value,
                    "time": t,
                }
            )
    return rows


def _times(s: Series) -> np.ndarray:
    return np.full(len(s.values), np.nan) if s.times is None else np.asarray(s.times)


# --- files ---------------------------------------------------------------------------------------
def write_export(
    reads: Sequence[Callable[[], SeriesOf]],
    sizes: Sequence[int],
    fmt: str,
    out: IO[bytes],
    progress: Progress | None,
) -> int:
    """Write the series that ``reads`` read (``sizes`` points each) to ``out`` in ``fmt``, in
    order, one at a time (the next ones read meanwhile, see
    :func:`mltrail.api.export.read_ahead`); returns the points written."""
    if fmt == "csv":
        writer: Any = export.CsvWriter(out)
    elif fmt == "parquet":
        writer = export.ParquetWriter(out, _arrow())
    else:
        writer = export.JsonLinesWriter(out)
    done, total = 0, sum(sizes)
    for part in map(_as_part, export.read_ahead(reads, sizes)):
        if len(part):
            writer.write(part)
        done += len(part)
        if progress is not None:
            progress(done, total)
    writer.close()
    return done


def _as_part(part: SeriesOf) -> export.Part:
    s = part.series
    arrays = (s.iterations, s.epochs, s.values, _times(s))
    return export.Part(part.project, part.experiment, s.key, s.phase, *arrays)


# --- arrow ---------------------------------------------------------------------------------------
def _arrow() -> Any:
    return import_optional("pyarrow", "format", "parquet")


def arrow_table(parts: Sequence[SeriesOf]) -> Any:
    """The points of ``parts`` as one Arrow table of :data:`COLUMNS` (columns built whole)."""
    pa = _arrow()
    tables = [export.arrow_part(pa, _as_part(part)) for part in parts]
    return pa.concat_tables(tables) if tables else export.arrow_schema(pa).empty_table()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def import_optional(module: str, field: str, extra: str) -> Any:
    """``module``, or a ValidationError naming ``field`` and the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValidationError(f"needs {module}: pip install 'mltrail[{extra}]'", field) from None


class HistoryMethods:
    """``api.experiments.history`` and ``api.experiments.export`` (mixed into ExperimentsApi)."""

    _store: Store

    def history(
        self,
        project: int,
        experiment: int,
        keys: Sequence[str] | None = None,
        max_points: int | None = None,
        *,
        to: str = "records",
    ) -> Any:
        """Every point of the experiment's series, one row per point.

        Args:
            project: project id.
            experiment: experiment id.
            keys: metric keys (``loss``: every phase) or series names (``validation/loss``);
                all series when None.
            max_points: downsample each series to at most this many points (min/max kept).
            to: ``records`` (a list of dicts) or ``pandas`` (a DataFrame; needs pandas:
                ``pip install 'mltrail[pandas]'``).

        Returns:
            Rows with the columns ``project, experiment, key, phase, iteration, epoch, value,
            time`` (unix seconds), in (phase, key, iteration) order.
        """
        pid, number = _ids(project, experiment)
        wanted = check_keys(keys)
        if max_points is not None:
            max_points = validation.require_int(max_points, "max_points", minimum=2)
        to = check_choice(to, "to", OUTPUTS)
        return as_output(
            builtins.list(read_history(self._store, pid, number, wanted, max_points)), to
        )

    def export(
        self,
        project: int,
        out: IO[bytes],
        *,
        experiment: int | None = None,
        format: str = "csv",
        progress: Progress | None = None,
    ) -> int:
        """Write whole histories (every experiment of the project, or one) to a binary file,
        series by series (memory holds the series written and the next ones, read meanwhile).

        Args:
            project: project id.
            out: a file opened for writing bytes.
            experiment: only this experiment.
            format: ``csv`` (fast with pyarrow, ``pip install 'mltrail[parquet]'``; slower
                without), ``parquet`` (needs pyarrow) or ``jsonl`` (one JSON object per
                point; non-finite values tagged ``{"$float": "NaN"}``).
            progress: called with (points written, points in all) after each series.

        Returns:
            The number of points written.
        """
        pid = _ids(project, 1)[0]
        fmt = check_choice(format, "format", FORMATS)
        if fmt == "parquet":
            _arrow()
        numbers = [experiment] if experiment is not None else self._experiment_numbers(pid)
        plan = [
            (ref, summary)
            for ref in (_ids(pid, n) for n in numbers)
            for summary in self._store.list_series(*ref)
            if summary.count  # a series rewound to nothing has no points to read
        ]
        store = self._store

        def reader(ref: tuple[int, int], key: str, phase: str) -> Callable[[], SeriesOf]:
            return lambda: SeriesOf(*ref, store.read_series(*ref, key, phase, times=True))

        reads = [reader(ref, summary.key, summary.phase) for ref, summary in plan]
        sizes = [summary.count for _, summary in plan]
        return write_export(reads, sizes, fmt, out, progress)

    def _experiment_numbers(self, project: int) -> builtins.list[int]:
        numbers: builtins.list[int] = []
        while True:
            page = self._store.list_experiments(project, offset=len(numbers), limit=1000)
            numbers.extend(e.experiment_id for e in page.items)
            if not page.items or len(numbers) >= page.total:
                return numbers


def _ids(project: Any, experiment: Any) -> tuple[int, int]:
    for value, field in ((project, "project"), (experiment, "experiment")):
        if value is None:
            raise ValidationError("is required", field)
    return (
        validation.require_int(project, "project", minimum=1),
        validation.require_int(experiment, "experiment", minimum=1),
    )
