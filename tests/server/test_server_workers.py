"""``mltrail server --workers N``: several processes on one port, stateless over the database."""

from __future__ import annotations

import threading

import numpy as np
import psutil
import pytest

from mltrail.core.types import SeriesQuery
from mltrail.store.http import HttpStore
from support.factories import batch, chunk


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_workers_share_the_port_and_the_data(request, server_factory, backend: str) -> None:
    """Eight clients write and read at once through two workers; every point is stored once,
    each client reads what the others wrote, and SIGTERM ends every process."""
    db_url = request.getfixturevalue(f"migrated_{'sqlite' if backend == 'sqlite' else 'pg'}_url")
    server = server_factory(db_url, extra_args=("--workers", "2"))
    workers = psutil.Process(server.proc.pid).children()
    assert len(workers) == 2 and all(w.is_running() for w in workers)
    with HttpStore(server.url, server.admin_token) as admin:
        project = admin.create_project("workers").id
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            with HttpStore(server.url, server.admin_token) as store:
                exp = store.create_experiment(project, display_name=f"c{index}").experiment_id
                for seq in range(10):
                    part = chunk("loss", range(seq * 50, seq * 50 + 50), np.full(50, index))
                    assert store.append_points(project, exp, batch(seq, part)) == 50
                    store.append_points(project, exp, batch(seq, part))  # a retry: stored once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with HttpStore(server.url, server.admin_token) as store:
        answers = store.read_series_batch(
            [SeriesQuery(project, e) for e in range(1, 9)], max_points=1000
        )
        names = {e.experiment_id: e.display_name for e in store.list_experiments(project).items}
    assert len(answers) == 8
    for a in answers:
        assert a.series is not None and a.series.iterations.tolist() == list(range(500))
        assert set(a.series.values.tolist()) == {float(names[a.experiment_id][1:])}
    server.stop()
    assert server.proc.returncode == 0
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
