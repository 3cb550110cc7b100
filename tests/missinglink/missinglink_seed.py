"""The MissingLink tests' world (:class:`Setup`) and the experiments they seed through mltrail's
own store."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

import numpy as np
from client_env import MissingLinkClient

from mltrail.api import Api
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk, Status
from support.servers import ServerProcess


@dataclass
class Setup:
    """One test's world: a user with a project, the client and mltrail's own API as that user."""

    server: ServerProcess
    token: str
    project: int
    mltrail: Api
    client: MissingLinkClient


def new_hash() -> str:
    """A weights hash no other test uses."""
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def experiment(api: Api, project: int, *, weights_hash: str | None = None, n: int = 20) -> int:
    """A finished experiment with hyperparameters, two series and, optionally, ``weights_hash``
    linked at iterations 9 (epoch 0) and 19 (epoch 1)."""
    store = api.store
    exp = store.create_experiment(
        project,
        display_name=f"run-{uuid.uuid4().hex[:6]}",
        description="seeded for the MissingLink client",
        hyperparameters={"lr": 0.1, "optimizer": "sgd", "batch": 32, "nesterov": True},
    )
    iterations = np.arange(n, dtype=np.int64)
    epochs, now = iterations // 10, np.full(n, time.time())
    chunks = (
        SeriesChunk("loss", "train", iterations, epochs, 1.0 / (iterations + 1), now),
        SeriesChunk("accuracy", "validation", iterations, epochs, iterations / n, now),
    )
    store.append_points(project, exp.experiment_id, MetricBatch(uuid.uuid4().hex, 1, chunks))
    if weights_hash is not None:
        for iteration, epoch in ((9, 0), (19, 1)):
            store.link_weights_hash(
                project, exp.experiment_id, weights_hash, iteration=iteration, epoch=epoch
            )
    store.update_experiment(project, exp.experiment_id, status=Status.DONE)
    return exp.experiment_id


def log_lines(
    api: Api, project: int, experiment_id: int, lines: list[LogLine], *, batch: int = 5000
) -> None:
    """Append lines in batches, in order."""
    client = uuid.uuid4().hex
    for seq, start in enumerate(range(0, len(lines), batch), start=1):
        chunk = tuple(lines[start : start + batch])
        api.store.append_logs(project, experiment_id, LogBatch(client, seq, chunk))
