"""A process forked while the writer's thread drains: the child's copy of the writer is never
drained (the buffer is the parent's to send) and closing it, at the child's exit, returns."""

from __future__ import annotations

import os
import threading

import pytest

from mltrail.core.types import MetricBatch
from mltrail.sdk.spool import Spool
from mltrail.sdk.writer import Writer


class _Held:
    """A store whose first call waits until released: the writer's thread is mid-drain."""

    def __init__(self) -> None:
        self.calling, self.release = threading.Event(), threading.Event()
        self.seqs: list[int] = []

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        self.seqs.append(batch.seq)
        self.calling.set()
        self.release.wait(30)
        return batch.point_count


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_child_forked_mid_drain_closes_its_writer_without_sending(tmp_path):
    store = _Held()
    writer = Writer(store, 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                    flush_interval=0.01).start()  # fmt: skip
    for i in range(300):
        writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
    try:
        assert store.calling.wait(30)
        pid = os.fork()
        if pid == 0:  # the child: what its atexit runs must return and send nothing
            store.release.set()  # the child's copy: the parent's thread is not here
            for i in range(300, 400):
                writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
            closing = threading.Thread(target=writer.close, kwargs={"timeout": 1}, daemon=True)
            closing.start()
            closing.join(10)
            os._exit(0 if not closing.is_alive() and store.seqs == [1] else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        store.release.set()
        writer.close()
    assert store.seqs == [1, 2, 3]  # the parent's own batches, each once
