"""HttpStore refuses a batch without a ``client_id`` before sending it: a receipt-less batch
is an embedded-only feature (the MLflow surface's), and the REST surface numbers every batch."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from mltrail.core.errors import ValidationError
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk
from mltrail.store.http import HttpStore


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def store(sent: list[httpx.Request]) -> HttpStore:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"stored": 1})

    return HttpStore("http://mltrail.test", "token", transport=httpx.MockTransport(answer))


def _chunk() -> SeriesChunk:
    n = 3
    return SeriesChunk(
        "loss", "train", np.arange(n, dtype=np.int64), np.full(n, -1), np.ones(n), np.ones(n)
    )


def test_a_metric_batch_without_client_id_is_refused_unsent(store, sent) -> None:
    with pytest.raises(ValidationError, match="embedded-only") as caught:
        store.append_points(1, 1, MetricBatch(client_id=None, seq=0, chunks=(_chunk(),)))
    assert caught.value.field == "client_id"
    assert sent == []
    assert store.append_points(1, 1, MetricBatch("client-a", 1, (_chunk(),))) == 1
    assert len(sent) == 1  # the same store sends a numbered batch


def test_a_log_batch_without_client_id_is_refused_unsent(store, sent) -> None:
    line = LogLine(time=1.7e9, stream="stdout", level="INFO", message="hello")
    batch = LogBatch(client_id=None, seq=1, lines=(line,))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="client_id") as caught:
        store.append_logs(1, 1, batch)
    assert caught.value.field == "client_id"
    assert sent == []
