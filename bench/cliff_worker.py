"""Workloads of issue 17's cliffs, one per subprocess (a fresh interpreter per figure).

Usage: ``python -m bench.cliff_worker WORKLOAD '<json args>'``; prints one JSON object. Each
workload checks what it measured (``problems``: empty when the data read back is right), so its
row can fail on correctness as well as on time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

HASH = "ab" * 20


def iteration_metrics(args: dict[str, Any]) -> dict[str, Any]:
    """``update_metrics_per_iteration`` (the Store's ``put_iteration_metrics``) on a hash linked
    to ``links`` epochs of one run, embedded on a fresh SQLite file: the first write and an
    overwrite, then every link's value checked."""
    from mltrail.store.sql import SqlStore

    n = int(args["links"])
    store = SqlStore.open(f"sqlite:///{args['path']}")
    try:
        p = store.create_project("cliff-iteration-metrics")
        e = store.create_experiment(p.id)
        for epoch in range(n):
            store.link_weights_hash(p.id, e.experiment_id, HASH, iteration=epoch * 100, epoch=epoch)
        seconds = []
        for value in (0.5, 0.9):
            started = time.perf_counter()
            touched = store.put_iteration_metrics(HASH, {"acc": value, "f1": value / 2})
            seconds.append(time.perf_counter() - started)
        got = store.read_iteration_metrics(p.id, e.experiment_id)
    finally:
        store.close()
    problems = []
    if touched != n:
        problems.append(f"{touched} links touched, not {n}")
    acc = sorted((m.epoch, m.value) for m in got if m.key == "ex_acc")
    if acc != [(epoch, 0.9) for epoch in range(n)] or len(got) != 2 * n:
        problems.append(f"{len(got)} values stored, not {2 * n} with ex_acc 0.9 at every epoch")
    return {"links": n, "first_s": seconds[0], "overwrite_s": seconds[1], "problems": problems}


WORKLOADS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "iteration_metrics": iteration_metrics,
}


def main() -> None:
    """Run the named workload and print its result as the last line of stdout."""
    result = WORKLOADS[sys.argv[1]](json.loads(sys.argv[2]))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
