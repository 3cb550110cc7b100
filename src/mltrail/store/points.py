"""The metric points noun of the Store: columnar batch ingest, summaries, series reads."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from mltrail.core.types import MetricBatch, MetricSummary, Series, SeriesAnswer, SeriesQuery


class PointStore(abc.ABC):
    """Metric points of experiments, ingested in idempotent batches."""

    @abc.abstractmethod
    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        """Store a batch atomically; returns points stored, 0 when (client_id, seq) was seen
        (a batch without a client_id is always stored: it keeps no receipt)."""

    @abc.abstractmethod
    def list_series(self, project_id: int, experiment_id: int) -> list[MetricSummary]:
        """Summaries (count, last, min, max) of every series of the experiment."""

    @abc.abstractmethod
    def read_series(
        self,
        project_id: int,
        experiment_id: int,
        key: str,
        phase: str,
        *,
        max_points: int | None = None,
        start: int | None = None,
        end: int | None = None,
        times: bool = False,
    ) -> Series:
        """A series in iteration order; with ``max_points``, min/max downsampled to at most that
        many points (first and last kept), at a cost independent of the series length.
        ``start``/``end`` keep the iterations in that inclusive range (a chart's zoom), each
        open when None; ``max_points`` then applies to the points of the range. ``times``
        fills ``Series.times`` with each returned point's wall-clock time (unix seconds)."""

    @abc.abstractmethod
    def rewind_points(self, project_id: int, experiment_id: int, iteration: int) -> int:
        """Discard every point of the experiment after ``iteration`` (``exp.rewind``), in
        every series at once: all or nothing. Summaries and rollups are rebuilt from the
        points kept; the discarded points are not kept anywhere.

        Returns:
            How many points were discarded.
        """

    @abc.abstractmethod
    def read_series_batch(
        self,
        queries: Sequence[SeriesQuery],
        *,
        max_points: int,
        start: int | None = None,
        end: int | None = None,
        times: bool = False,
    ) -> list[SeriesAnswer]:
        """Many series in one call (a chart view's every line: an experiment page with 1,000
        keys, a compare of 100 runs), each read as :meth:`read_series` reads it with these
        options. A query without ``key`` names every series of its experiment (of ``phase``
        when given). An entry whose experiment or series is missing, or not the user's,
        answers its error in place (:class:`SeriesAnswer`); the others are read.

        Raises:
            ValidationError: more than ``MAX_BATCH_SERIES`` series named (field ``series``).
        """
