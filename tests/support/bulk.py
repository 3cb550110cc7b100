"""Rows written straight into the store's own tables, for tests that need many of them and
not the per-call path that writes them (the store suite covers that)."""

from __future__ import annotations

import json
import time


def bulk_experiments(
    db_url: str, project_id: int, count: int, running: tuple[int, ...] = ()
) -> None:
    """Insert ``count`` finished experiments (those numbered in ``running`` still running) in
    one transaction.

    Creating 10,000 experiments one store call at a time takes about a minute on SQLite; the
    UI's table and the list's paging need the rows, not the per-call path (which the store
    suite covers), so this writes them straight into the store's own tables.
    """
    from sqlalchemy import create_engine, select, update

    from mltrail.store.sql.query import param_rows
    from mltrail.store.sql.tables import experiment_params, experiments, projects

    now = time.time()
    rows = [
        {
            "project_id": project_id,
            "number": n,
            "display_name": f"sweep-{n:05d}",
            "description": "",
            "status": "running" if n in running else "done",
            "created_at": now + n,
            "started_at": now + n,
            "ended_at": now + n + (n % 97),
            "updated_at": now + n,
            "hyperparameters": json.dumps({"lr": ((n * 7919) % count) / count, "seed": n}),
            "environment": "{}",
            "source": "{}",
            "tags": "[]",
            "stop_requested": False,
            "log_count": 0,
        }
        for n in range(1, count + 1)
    ]
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(experiments.insert(), rows)
        c = experiments.c
        numbers = select(c.id, c.number).where(c.project_id == project_id)
        hp = {r["number"]: json.loads(r["hyperparameters"]) for r in rows}
        params = [p for pk, n in conn.execute(numbers) for p in param_rows(pk, hp[n])]
        conn.execute(experiment_params.insert(), params)  # the searchable copies the store keeps
        conn.execute(
            update(projects).where(projects.c.id == project_id).values(next_experiment=count + 1)
        )
    engine.dispose()
