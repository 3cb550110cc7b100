"""Two claims of one batch at once on PostgreSQL (a client's retry while its first try is
still being stored): the second is a retry, never an error, whatever else commits between.
A log append claims before anything else locks the experiment (a points append has touched
it, which locks its row): the claim serialises the claims of an experiment itself."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Connection

from mltrail.store.sql import SqlStore
from mltrail.store.sql.batches import claim_batch


def test_a_retry_racing_its_first_try_past_a_run_just_extended_is_a_retry(
    migrated_db_url: str,
) -> None:
    if not migrated_db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time")
    store = SqlStore.open(migrated_db_url)
    db = store._db
    try:
        p = store.create_project("race").id
        number = store.create_experiment(p).experiment_id
        with db.write() as conn:
            pk = conn.exec_driver_sql(
                "SELECT id FROM experiments WHERE project_id = %s AND number = %s", (p, number)
            ).scalar()
            for seq in (0, 1):
                assert claim_batch(conn, db, pk, "logs", "c", seq)
        got: dict[str, object] = {}
        release = threading.Event()

        def claim(name: str, conn: Connection, seq: int, then: Callable[[], object]) -> None:
            try:
                with conn.begin():
                    got[name] = claim_batch(conn, db, pk, "logs", "c", seq)
                    then()
            except Exception as exc:  # the failure this test is about
                got[name] = exc

        with db.engine.connect() as c0, db.engine.connect() as c1, db.engine.connect() as c2:
            t0 = c0.begin()
            assert claim_batch(c0, db, pk, "logs", "c", 2)  # extends [0, 1] to [0, 2]
            # seq 3 while [0, 2] is not committed: a run [3, 3] of its own
            first = threading.Thread(target=claim, args=("first", c1, 3, release.wait))
            first.start()
            first.join(1.0)
            t0.commit()
            # seq 3 again, [0, 2] committed: extending it would collide with [3, 3]'s end
            second = threading.Thread(target=claim, args=("second", c2, 3, lambda: None))
            second.start()
            second.join(1.0)
            release.set()
            first.join(30)
            second.join(30)
        assert got == {"first": True, "second": False}, got
        with db.read() as conn:
            runs = conn.exec_driver_sql("SELECT low, high FROM ingest_ranges").all()
        assert sorted(s for lo, hi in runs for s in range(lo, hi + 1)) == [0, 1, 2, 3]
    finally:
        store.close()
