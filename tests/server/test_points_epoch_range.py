"""Epochs are stored in 32-bit columns (points: ``metric_series.last_epoch``, the rollups'
epochs; weights links; artifacts). For points:
a batch with a larger one is a 422 naming ``<key>.epoch`` on SQLite and PostgreSQL alike (on
PostgreSQL it failed mid-append, "integer out of range", answered as 422 ``body`` by the
catch-all handler; SQLite stored it), in any body form, and nothing of the batch is stored."""

from __future__ import annotations

import numpy as np
import pytest

from mltrail.core.series_codec import (
    POINTS_MEDIA_TYPE,
    metric_batch_to_binary,
    metric_batch_to_packed,
    metric_batch_to_wire,
)
from mltrail.core.types import MetricBatch, SeriesChunk
from support.clients import error_of, rest_client
from support.servers import ServerProcess, unique_name

MAX_EPOCH = 2**31 - 1


def _batch(epoch: int) -> MetricBatch:
    fine = SeriesChunk("acc", "train", np.arange(3), np.full(3, 1), np.ones(3), np.full(3, 1.7e9))
    loss = SeriesChunk("loss", "train", np.arange(3), np.array([0, 1, epoch]), np.ones(3),
                       np.full(3, 1.7e9))  # fmt: skip
    return MetricBatch("c", 1, (fine, loss))


@pytest.mark.parametrize("name", ["shared_server", "shared_pg_server"])
def test_an_epoch_past_32_bits_is_refused_on_every_backend(name: str, request) -> None:
    server: ServerProcess = request.getfixturevalue(name)
    with rest_client(server.url, server.make_token(unique_name())) as client:
        project = client.post("/projects", json={"display_name": "epochs"}).json()["id"]
        exp = client.post(f"/projects/{project}/experiments", json={}).json()["experiment_id"]
        path = f"/projects/{project}/experiments/{exp}/points"
        binary = {"Content-Type": POINTS_MEDIA_TYPE}
        for epoch in (MAX_EPOCH + 1, 2**63 - 1):
            batch = _batch(epoch)
            for answer in (
                client.post(path, content=metric_batch_to_packed(batch), headers=binary),
                client.post(path, content=metric_batch_to_binary(batch), headers=binary),
                client.post(path, json=metric_batch_to_wire(batch)),
            ):
                error = error_of(answer, 422)
                assert error["field"] == "loss.epoch", error
        assert client.get(path.removesuffix("/points") + "/series").json() == []
        stored = client.post(path, content=metric_batch_to_packed(_batch(MAX_EPOCH)),
                             headers=binary)  # fmt: skip
        assert stored.json() == {"stored": 6}, stored.text
        series = client.get(path.removesuffix("/points") + "/series").json()
        assert {s["key"]: s["last_epoch"] for s in series} == {"acc": 1, "loss": MAX_EPOCH}


@pytest.mark.parametrize("name", ["shared_server", "shared_pg_server"])
def test_a_weights_link_at_an_epoch_past_32_bits_is_refused(name: str, request) -> None:
    """``weights_links.epoch`` is a 32-bit column too: the link is a 422 naming ``epoch``, and
    the connection stays usable (PostgreSQL's refusal went through the catch-all handler,
    after which the server closed the keep-alive connection)."""
    server: ServerProcess = request.getfixturevalue(name)
    with rest_client(server.url, server.make_token(unique_name())) as client:
        project = client.post("/projects", json={"display_name": "links"}).json()["id"]
        exp = client.post(f"/projects/{project}/experiments", json={}).json()["experiment_id"]
        path = f"/projects/{project}/experiments/{exp}/weights"
        digest = "ab" * 20
        for epoch in (MAX_EPOCH + 1, 2**63 - 1):
            link = {"weights_hash": digest, "iteration": 5, "epoch": epoch}
            assert error_of(client.post(path, json=link), 422)["field"] == "epoch"
        assert client.get(path).json() == []
        link = {"weights_hash": digest, "iteration": 5, "epoch": MAX_EPOCH}
        assert client.post(path, json=link).json()["epoch"] == MAX_EPOCH


@pytest.mark.parametrize("name", ["shared_server", "shared_pg_server"])
def test_an_artifact_at_an_epoch_past_32_bits_is_refused(name: str, request) -> None:
    """``artifacts.epoch`` is a 32-bit column: an upload declaring a larger epoch is a 422
    naming ``epoch`` before a byte is stored (it was PostgreSQL's DataError)."""
    server: ServerProcess = request.getfixturevalue(name)
    with rest_client(server.url, server.make_token(unique_name())) as client:
        project = client.post("/projects", json={"display_name": "artifacts"}).json()["id"]
        exp = client.post(f"/projects/{project}/experiments", json={}).json()["experiment_id"]
        path = f"/projects/{project}/experiments/{exp}/artifacts"
        answer = client.put(path + "/a.bin", content=b"abc", params={"epoch": MAX_EPOCH + 1})
        assert error_of(answer, 422)["field"] == "epoch"
        assert client.get(path).json() == []
        answer = client.put(path + "/a.bin", content=b"abc", params={"epoch": MAX_EPOCH})
        assert answer.status_code == 201 and answer.json()["epoch"] == MAX_EPOCH, answer.text
