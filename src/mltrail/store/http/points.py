"""The metric points half of HttpStore: batches in, summaries and packed series out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mltrail.core import series_codec
from mltrail.core.errors import ValidationError
from mltrail.core.types import MetricBatch, MetricSummary, Series, SeriesAnswer, SeriesQuery
from mltrail.store.http.transport import HttpNoun
from mltrail.store.points import PointStore


class HttpPoints(HttpNoun, PointStore):
    """The points half of HttpStore: each :class:`PointStore` method is one request."""

    # the body forms tried in turn: a server that does not read one (older than it, answering
    # 422 on ``body``) gets the next from then on
    _FORMS = ("packed", "binary", "json")
    _form = 0

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        """One request: the chunks packed as stored (:func:`series_codec.metric_batch_to_packed`),
        or, to an older server, the raw columns as bytes or JSON."""
        self._require_client_id(batch)
        path = self._experiment_path(project_id, experiment_id) + "/points"
        while self._FORMS[self._form] != "json":
            packed = self._FORMS[self._form] == "packed"
            encode = series_codec.metric_batch_to_packed if packed else (
                series_codec.metric_batch_to_binary)  # fmt: skip
            try:
                answer = self._http.post_bytes(path, encode(batch), series_codec.POINTS_MEDIA_TYPE)
                return int(answer["stored"])
            except ValidationError as exc:
                if exc.field != "body":
                    raise
                self._form += 1
        body = series_codec.metric_batch_to_wire(batch)
        return int(self._http.call("POST", path, body=body, repeatable=True)["stored"])

    def list_series(self, project_id: int, experiment_id: int) -> list[MetricSummary]:
        found = self._get(self._experiment_path(project_id, experiment_id) + "/series")
        return [series_codec.summary_from_wire(s) for s in found]

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
        path = self._experiment_path(project_id, experiment_id) + "/series/read"
        params: dict[str, Any] = {"key": key, "phase": phase, "format": "packed"}
        params.update(max_points=max_points, start=start, end=end)
        if times:
            params["times"] = "true"
        content = self._http.call("GET", path, params=params, repeatable=True, raw=True)
        # a packed body is mostly base64 text, which the standard library parses as fast as
        # orjson: parse_json's digit scan would only add to a 100,000-point export
        return series_codec.series_from_packed(json.loads(content))

    def rewind_points(self, project_id: int, experiment_id: int, iteration: int) -> int:
        path = self._experiment_path(project_id, experiment_id) + "/points/rewind"
        # the run that rewinds logs nothing until this returns: a repeat discards nothing more
        answer = self._http.call("POST", path, body={"iteration": int(iteration)}, repeatable=True)
        return int(answer["removed"])

    def read_series_batch(
        self,
        queries: Sequence[SeriesQuery],
        *,
        max_points: int,
        start: int | None = None,
        end: int | None = None,
        times: bool = False,
    ) -> list[SeriesAnswer]:
        body: dict[str, Any] = {
            "series": [series_codec.series_query_to_wire(q) for q in queries],
            "max_points": max_points,
            "start": start,
            "end": end,
            "times": times,
            "format": "packed",
        }
        content = self._http.call("POST", "/series/read", body=body, repeatable=True, raw=True)
        return [series_codec.series_answer_from_wire(a) for a in json.loads(content)["series"]]
