"""SqlStore-specific behaviour: users and membership, tokens, migrations, read cost, processes."""

from __future__ import annotations

import ast
import itertools
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import IntegrityError

from mltrail.core.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import (
    SqlStore,
    engine,
    migrate,
    rollup_blocks,
    rollup_levels,
    rollups,
    series,
)
from mltrail.store.sql.tables import (
    ingest_ranges,
    metric_chunks,
    metric_rollup_blocks,
    metric_series,
    users,
)
from support.factories import chunk
from support.rollup_rows import tail_rows


def _chunk(key: str, start: int, n: int, rng: np.random.Generator) -> SeriesChunk:
    it = np.arange(start, start + n, dtype=np.int64)
    return chunk(key, it, rng.normal(size=n), epochs=it // 1000)


# --- users and membership -------------------------------------------------------------------------
def test_members_see_only_their_projects(sql_store: SqlStore) -> None:
    alice = sql_store.as_user(sql_store.auth.create_user("alice"))
    bob = sql_store.as_user(sql_store.auth.create_user("bob"))
    admin = sql_store.as_user(sql_store.auth.create_user("root", is_admin=True))
    mine = alice.create_project("alice's")
    alice.create_experiment(mine.id)
    assert [p.id for p in bob.list_projects()] == []
    assert bob.find_project("alice's") is None
    for call in (
        lambda: bob.get_project(mine.id),
        lambda: bob.get_experiment(mine.id, 1),
        lambda: bob.create_experiment(mine.id),
        lambda: bob.list_experiments(mine.id),
        lambda: bob.read_logs(mine.id, 1),
    ):
        with pytest.raises(PermissionDeniedError) as err:
            call()
        assert err.value.field == "project"
        assert str(mine.id) in err.value.message
    assert [p.id for p in admin.list_projects()] == [mine.id]
    assert [p.id for p in sql_store.list_projects()] == [mine.id]  # embedded: sees all
    # membership needs the invited user's consent: an invitation, until accepted
    assert alice.add_project_member(mine.id, "bob") == "invited"
    with pytest.raises(PermissionDeniedError):
        bob.get_experiment(mine.id, 1)
    assert [(i.project_id, i.invited_by) for i in bob.list_invitations()] == [(mine.id, "alice")]
    assert bob.accept_invitation(mine.id).id == mine.id
    assert bob.get_experiment(mine.id, 1).experiment_id == 1
    assert bob.list_invitations() == []
    with pytest.raises(NotFoundError):
        bob.accept_invitation(mine.id)  # nothing pending any more
    # a member learns nothing about which user names exist
    assert alice.add_project_member(mine.id, "nobody") == "invited"
    assert alice.add_project_member(mine.id, "bob") == "invited"
    # an administrator adds at once, and may be told a name does not exist
    carol = sql_store.as_user(sql_store.auth.create_user("carol"))
    assert admin.add_project_member(mine.id, "carol") == "added"
    assert carol.get_project(mine.id).id == mine.id
    with pytest.raises(NotFoundError) as err:
        admin.add_project_member(mine.id, "nobody")
    assert err.value.field == "user_name"


def test_a_name_lookup_finds_only_the_members_projects(sql_store: SqlStore) -> None:
    # a refusal of a shared name lists their ids: never those of a project the user cannot see
    alice = sql_store.as_user(sql_store.auth.create_user("alice"))
    bob = sql_store.as_user(sql_store.auth.create_user("bob"))
    mine = alice.create_project("shared name")
    bob.create_project("shared name")
    assert [p.id for p in alice.find_projects("shared name")] == [mine.id]


def test_only_members_and_administrators_rename_delete_and_restore(sql_store: SqlStore) -> None:
    alice = sql_store.as_user(sql_store.auth.create_user("alice"))
    bob = sql_store.as_user(sql_store.auth.create_user("bob"))
    admin = sql_store.as_user(sql_store.auth.create_user("root", is_admin=True))
    mine = alice.create_project("alice's")
    for call in (
        lambda: bob.update_project(mine.id, display_name="bob's"),
        lambda: bob.delete_project(mine.id),
        lambda: bob.restore_project(mine.id),
    ):
        with pytest.raises(PermissionDeniedError) as err:
            call()
        assert err.value.field == "project"
    assert alice.get_project(mine.id).display_name == "alice's"
    assert alice.delete_project(mine.id).deleted_at is not None
    assert bob.list_projects("all") == []
    assert admin.restore_project(mine.id).deleted_at is None
    assert admin.update_project(mine.id, display_name="renamed").display_name == "renamed"
    alice.add_project_member(mine.id, "bob")
    bob.accept_invitation(mine.id)  # a member, not the creator, may too
    assert bob.delete_project(mine.id).deleted_at is not None
    assert [p.id for p in alice.list_projects("deleted")] == [mine.id]


def test_a_declined_invitation_grants_nothing(sql_store: SqlStore) -> None:
    alice = sql_store.as_user(sql_store.auth.create_user("alice"))
    bob = sql_store.as_user(sql_store.auth.create_user("bob"))
    mine = alice.create_project("alice's")
    alice.add_project_member(mine.id, "bob")
    bob.decline_invitation(mine.id)
    assert bob.list_invitations() == []
    with pytest.raises(NotFoundError):
        bob.accept_invitation(mine.id)
    assert bob.list_projects() == []


def test_weights_hash_lookups_respect_membership(sql_store: SqlStore) -> None:
    alice = sql_store.as_user(sql_store.auth.create_user("alice"))
    bob = sql_store.as_user(sql_store.auth.create_user("bob"))
    p = alice.create_project("p")
    alice.create_experiment(p.id)
    alice.link_weights_hash(p.id, 1, "d" * 40, iteration=1, epoch=1)
    assert bob.find_weights_hash("d" * 40) == []
    with pytest.raises(NotFoundError):
        bob.put_iteration_metrics("d" * 40, {"acc": 1})
    assert alice.put_iteration_metrics("d" * 40, {"acc": 1}) == 1


# --- auth ----------------------------------------------------------------------------------------
def test_tokens_authenticate_and_revoke(sql_store: SqlStore) -> None:
    auth = sql_store.auth
    user = auth.create_user("carol")
    with pytest.raises(ValidationError) as err:
        auth.create_user("carol")
    assert err.value.field == "name"
    token = auth.create_token("carol", label="laptop")
    assert token.startswith("mlt_") and len(token) > 40
    assert auth.authenticate(token) == user
    for bad in (None, "", "mlt_wrong", token + "x"):
        with pytest.raises(AuthenticationError):
            auth.authenticate(bad)
    auth.revoke_token(token)
    with pytest.raises(AuthenticationError):
        auth.authenticate(token)
    with pytest.raises(NotFoundError):
        auth.revoke_token(token)
    assert [u.name for u in auth.list_users()] == ["carol"]
    assert auth.get_user("carol") == user


def test_a_token_check_on_sqlite_is_one_statement(sqlite_url: str) -> None:
    """Every request checks its token: on SQLite one SELECT, without BEGIN and COMMIT (a lone
    statement reads one snapshot), and a token revoked meanwhile is refused at once."""
    store = SqlStore.open(sqlite_url)
    store.auth.create_user("dan", is_admin=True)
    token = store.auth.create_token("dan")
    seen: list[str] = []

    def record(_c: object, _cur: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(store._db.engine, "before_cursor_execute", record)
    user = store.auth.authenticate(token)
    event.remove(store._db.engine, "before_cursor_execute", record)
    assert (user.name, user.is_admin) == ("dan", True) and isinstance(user.is_admin, bool)
    assert len(seen) == 1 and seen[0].lstrip().startswith("SELECT"), seen
    store.auth.revoke_token(token)
    with pytest.raises(AuthenticationError):
        store.auth.authenticate(token)
    store.close()


def test_ensure_admin_only_on_an_empty_database(sql_store: SqlStore) -> None:
    token = sql_store.auth.ensure_admin()
    assert token is not None
    admin = sql_store.auth.authenticate(token)
    assert admin.name == "admin" and admin.is_admin
    assert sql_store.auth.ensure_admin() is None


def test_raw_token_is_nowhere_in_the_database(sql_store: SqlStore) -> None:
    sql_store.auth.create_user("dave")
    token = sql_store.auth.create_token("dave", label="ci")
    engine = sql_store._db.engine
    with engine.connect() as conn:
        dump = [
            repr(row)
            for table in inspect(engine).get_table_names()
            for row in conn.execute(text(f'SELECT * FROM "{table}"'))
        ]
    assert dump, "the dump should contain rows"
    assert not any(token in row or token[4:] in row for row in dump)


# --- migrations and engine ---------------------------------------------------------------------------
def test_migrations_are_idempotent(db_url: str) -> None:
    first = SqlStore.open(db_url)
    project = first.create_project("kept")
    first.close()
    second = SqlStore.open(db_url)
    try:
        assert second.get_project(project.id).display_name == "kept"
        with second._db.engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert len(versions) == 1 and versions[0] != ""
    finally:
        second.close()


def test_head_revision_is_the_one_alembic_finds() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    assert migrate.head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_migrations_import_no_live_mltrail_code() -> None:
    """A migration is a snapshot: what it writes must not change when a live module does (a
    database upgraded later would get the new format under the old revision)."""
    found = {}
    for path in sorted((migrate.MIGRATIONS_DIR / "versions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n == "mltrail" or n.startswith("mltrail.") for n in names):
                found.setdefault(path.name, []).extend(names)
    assert found == {}


def test_a_migrated_database_opens_without_importing_alembic(migrated_db_url: str) -> None:
    SqlStore.open(migrated_db_url).close()
    code = (
        "import sys; from mltrail.store.sql import SqlStore; "
        "SqlStore.open(sys.argv[1]).close(); "
        "print(sorted(m for m in sys.modules if 'alembic' in m))"
    )
    opened = subprocess.run(
        [sys.executable, "-c", code, migrated_db_url], capture_output=True, text=True, timeout=60
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == "[]"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(migrated_sqlite_url: str) -> None:
    store = SqlStore.open(migrated_sqlite_url)
    try:
        with store._db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30_000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            # a bounded page cache per pooled connection (negative: KiB), not SQLite's 2 MB
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -512
    finally:
        store.close()


def test_sqlite_synchronous_full_is_a_url_parameter(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    store = SqlStore.open(f"sqlite:///{path}?synchronous=full")
    try:
        store.create_project("durable")
        with store._db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()
    assert path.exists() and not (tmp_path / "full.db?synchronous=full").exists()
    with pytest.raises(ValidationError) as err:
        SqlStore.open(f"sqlite:///{path}?synchronous=off")
    assert err.value.field == "db_url" and "synchronous" in str(err.value)


def test_unsupported_url_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        SqlStore.open("mysql://localhost/x")
    assert err.value.field == "db_url"


_CREATE_MANY = """
import sys
from mltrail.store.sql import SqlStore
store = SqlStore.open(sys.argv[1])
for _ in range(15):
    store.create_experiment(1)
store.close()
"""


def test_writer_processes_share_a_sqlite_file(migrated_sqlite_url: str, tmp_path: Path) -> None:
    store = SqlStore.open(migrated_sqlite_url)
    store.create_project("shared")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    procs = [
        subprocess.Popen([sys.executable, "-c", _CREATE_MANY, migrated_sqlite_url], env=env)
        for _ in range(3)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    page = store.list_experiments(1)
    assert [e.experiment_id for e in page.items] == list(range(1, 46))
    store.close()


# --- read cost ---------------------------------------------------------------------------------------
def test_chart_read_of_a_million_points_reads_a_bounded_level(sql_store: SqlStore) -> None:
    rng = np.random.default_rng(3)
    p = sql_store.create_project("big")
    sql_store.create_experiment(p.id)
    n, per = 1_000_000, 100_000
    for seq, start in enumerate(range(0, n, per)):
        batch = MetricBatch("c", seq, (_chunk("loss", start, per, rng),))
        sql_store.append_points(p.id, 1, batch)
    with sql_store._db.read() as conn:
        for max_points in (100, 2000):
            read = series.read_series(
                conn, sql_store._scope, (p.id, 1), "loss", "train", max_points
            )
            assert read.level >= 1
            assert read.rows <= rollups.ITEMS_PER_POINT * max_points
            assert len(read.series.values) <= max_points
            assert read.series.iterations[-1] == n - 1
        full = series.read_series(conn, sql_store._scope, (p.id, 1), "loss", "train", None)
    assert full.series.total == n and len(full.series.values) == n


def test_appending_one_point_is_a_few_indexed_statements(migrated_sqlite_url: str) -> None:
    """What an MLflow ``log_metric`` costs the store: on a series that exists, a handful of
    statements, none scanning a table that grows with the data (the rollups lookup once did)."""
    rng = np.random.default_rng(5)
    store = SqlStore.open(migrated_sqlite_url)
    p = store.create_project("one point")
    store.create_experiment(p.id)
    store.append_points(p.id, 1, MetricBatch("c", 0, (_chunk("loss", 0, 5_000, rng),)))
    seen: list[tuple[str, object]] = []

    def record(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        seen.append((statement, params))

    event.listen(store._db.engine, "before_cursor_execute", record)
    store.append_points(p.id, 1, MetricBatch("c", 1, (_chunk("loss", 5_000, 1, rng),)))
    event.remove(store._db.engine, "before_cursor_execute", record)
    writes = [s for s, _ in seen if not s.startswith(("BEGIN", "COMMIT"))]
    assert len(writes) <= 8, writes
    with store._db.engine.connect() as conn:
        for statement, params in seen:
            if statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
                scans = [row[-1] for row in plan if str(row[-1]).startswith("SCAN metric")]
                assert scans == [], (statement, plan)
    store.close()


def test_statements_through_the_driver_behave_as_through_sqlalchemy(
    migrated_sqlite_url: str,
) -> None:
    """The driver path (an append's statements on SQLite) is seen by a statement listener and
    raises SQLAlchemy's wrapped errors, which the server maps (a locked database is a 503)."""
    store = SqlStore.open(migrated_sqlite_url)
    seen: list[tuple[str, object, bool]] = []

    def record(_c: object, _cur: object, statement: str, params: object, _x: object,
               many: bool) -> None:  # fmt: skip
        seen.append((statement, params, many))

    event.listen(store._db.engine, "before_cursor_execute", record)
    with store._db.write() as conn:
        names = ["name", "is_admin", "created_at"]
        store._db.insert_rows(conn, users, names, [("a", 0, 1.0), ("b", 0, 2.0)])
        found = engine.driver_tuples(conn, 'SELECT "name" FROM "users" WHERE "created_at" > ?',
                                     (1.5,))  # fmt: skip
    with pytest.raises(IntegrityError), store._db.write() as conn:  # SQLAlchemy's error class
        store._db.insert_rows(conn, users, names, [("c", 0, 3.0)])
        store._db.insert_rows(conn, users, names, [("a", 0, 4.0)])  # a unique name twice
    event.remove(store._db.engine, "before_cursor_execute", record)
    assert found == [("b",)]
    inserts = [(p, many) for s, p, many in seen if s.startswith('INSERT INTO "users"')]
    assert inserts == [([("a", 0, 1.0), ("b", 0, 2.0)], True), ([("c", 0, 3.0)], True),
                       ([("a", 0, 4.0)], True)]  # fmt: skip
    assert [s for s, _, _ in seen].count("BEGIN IMMEDIATE") == 2
    with store._db.read() as conn:  # the failed transaction rolled back: nothing of it stays
        assert conn.execute(select(users.c.name)).scalars().all() == ["a", "b"]
    store.close()


def test_incremental_rollups_equal_one_shot_rollups(migrated_sqlite_url: str) -> None:
    rng = np.random.default_rng(11)
    store = SqlStore.open(migrated_sqlite_url)
    p = store.create_project("r")
    store.create_experiment(p.id)
    store.create_experiment(p.id)
    n = 40_000
    whole = _chunk("x", 0, n, rng)
    values = whole.values.copy()
    values[100:300] = np.nan  # a whole level-1 bucket of NaN, and partial ones
    whole = SeriesChunk("x", "train", whole.iterations, whole.epochs, values, whole.times)
    store.append_points(p.id, 1, MetricBatch("c", 0, (whole,)))
    cuts = np.unique(np.r_[0, rng.integers(1, n, 40), 63, 64, 65, n])
    for seq, (a, b) in enumerate(itertools.pairwise(cuts)):
        part = SeriesChunk(
            "x", "train", whole.iterations[a:b], whole.epochs[a:b], values[a:b], whole.times[a:b]
        )
        store.append_points(p.id, 2, MetricBatch("c", seq, (part,)))
    with store._db.read() as conn:
        by_series = [
            [tuple(math.nan if x is None else x for x in row[1:]) for row in tail_rows(conn, [sid])]
            for sid in (1, 2)
        ]
        blocks = [
            conn.execute(
                select(metric_rollup_blocks.c.level, metric_rollup_blocks.c.block)
                .where(metric_rollup_blocks.c.series_id == sid)
                .order_by("level", "block")
            ).all()
            for sid in (1, 2)
        ]
        levels = [
            [rollup_levels.level_tables(conn, level, [sid])[sid] for level in range(1, 6)]
            for sid in (1, 2)
        ]
    store.close()
    assert len(by_series[0]) > 20  # buckets after the last complete block of each level
    # each level's complete blocks are packed (level 1: 39 blocks of 16 of its 625 buckets)
    sealed = sum(n // size // rollup_blocks.BLOCK_BUCKETS for size in rollups.LEVEL_SIZES)
    assert len(blocks[0]) == sealed > 39
    assert blocks[0] == blocks[1]
    assert np.array_equal(
        np.array(by_series[0], float), np.array(by_series[1], float), equal_nan=True
    )
    for size, one, other in zip(rollups.LEVEL_SIZES, *levels, strict=True):
        assert np.array_equal(one["bucket"], np.arange(-(-40_000 // size)))
        for name, column in one.items():
            assert np.array_equal(column, other[name], equal_nan=True), name


def test_measure_ingest_throughput_and_size(tmp_path: Path) -> None:
    """Prints in-process ingest throughput and bytes per point (run with -s); not a timing test."""
    path = tmp_path / "bench.db"
    store = SqlStore.open(f"sqlite:///{path}")
    p = store.create_project("bench")
    store.create_experiment(p.id)
    rng = np.random.default_rng(0)
    keys, iterations, per = [f"metric_{i}" for i in range(20)], 50_000, 2_500
    started = time.perf_counter()
    for seq, start in enumerate(range(0, iterations, per)):
        chunks = tuple(_chunk(k, start, per, rng) for k in keys)
        assert store.append_points(p.id, 1, MetricBatch("c", seq, chunks)) == 20 * per
    elapsed = time.perf_counter() - started
    with store._db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    total = 20 * iterations
    size = path.stat().st_size + sum(f.stat().st_size for f in tmp_path.glob("bench.db-*"))
    print(
        f"\nSqlStore SQLite ingest: {total / elapsed:,.0f} points/s, {size / total:.1f} bytes/point"
    )
    assert size > 0


def test_iteration_metrics_by_hash_reach_only_the_writers_projects(sql_store: SqlStore) -> None:
    """The set-based write keeps to the projects its user sees: the same hash in another
    user's project is neither counted nor written."""
    digest = "cd" * 20
    alice = sql_store.as_user(sql_store.auth.create_user("alice"))
    bob = sql_store.as_user(sql_store.auth.create_user("bob"))
    pa, pb = alice.create_project("a"), bob.create_project("b")
    for store, p in ((alice, pa), (bob, pb)):
        store.create_experiment(p.id)
        for epoch in range(3):
            store.link_weights_hash(p.id, 1, digest, iteration=epoch, epoch=epoch)
    bob.put_iteration_metrics(digest, {"owner": "bob"})
    assert alice.put_iteration_metrics(digest, {"owner": "alice"}) == 3
    assert {m.value for m in bob.read_iteration_metrics(pb.id, 1)} == {"bob"}
    assert [m.value for m in alice.read_iteration_metrics(pa.id, 1)] == ["alice"] * 3


def test_small_flushes_are_compacted_into_few_chunks(sql_store: SqlStore) -> None:
    """10-point flushes of 3 keys: each series ends with one chunk per complete 4,096-point
    window plus a bounded tail, and SDK-sized batches are never merged."""
    p = sql_store.create_project("compact")
    sql_store.create_experiment(p.id)
    sql_store.create_experiment(p.id)
    rng = np.random.default_rng(4)
    n = 10_000
    for seq, start in enumerate(range(0, n, 10)):
        parts = [_chunk(key, start, 10, rng) for key in ("a", "b", "c")]
        sql_store.append_points(p.id, 1, MetricBatch("c", seq, tuple(parts)))
    for seq, start in enumerate(range(0, n, 2500)):
        sql_store.append_points(p.id, 2, MetricBatch("c", seq, (_chunk("a", start, 2500, rng),)))
    chunks, series = metric_chunks.c, metric_series.c
    with sql_store._db.read() as conn:
        found = conn.execute(
            select(series.experiment_id, series.key, chunks.start)
            .join(metric_series, series.id == chunks.series_id)
            .order_by(chunks.start)
        ).all()
    starts: dict[tuple[int, str], list[int]] = {}
    for pk, key, start in found:
        starts.setdefault((pk, key), []).append(start)
    # 2 merged windows of 4,096 (ending on the flush crossing their end), 7 of 256, 1 flush
    assert [len(starts[(1, k)]) for k in "abc"] == [2 + 7 + 1] * 3
    assert starts[(1, "a")][:3] == [0, 4100, 8200]
    assert starts[(2, "a")] == [0, 2500, 5000, 7500]  # SDK-sized batches stay as they came
    for key in "abc":
        assert sql_store.read_series(p.id, 1, key, "train").total == n


def test_a_batch_without_a_client_id_keeps_no_receipt(sql_store: SqlStore) -> None:
    """An MLflow request's batch (nobody sends it again under an id): stored each time it
    comes, leaving no ingest receipt behind; a numbered batch still lands once."""
    project = sql_store.create_project("receipts").id
    number = sql_store.create_experiment(project).experiment_id
    lone = MetricBatch(None, 0, (chunk("loss", [0], [1.0]),))
    assert sql_store.append_points(project, number, lone) == 1
    assert sql_store.append_points(project, number, lone) == 1
    numbered = MetricBatch("sdk", 1, (chunk("loss", [1], [2.0]),))
    assert sql_store.append_points(project, number, numbered) == 1
    assert sql_store.append_points(project, number, numbered) == 0
    series = sql_store.read_series(project, number, "loss", "train")
    assert series.iterations.tolist() == [0, 0, 1] and series.values.tolist() == [1.0, 1.0, 2.0]
    with sql_store._db.engine.connect() as conn:
        receipts = conn.execute(select(ingest_ranges.c.client_id)).scalars().all()
    assert receipts == ["sdk"]


def test_a_postgresql_url_without_its_driver_names_the_extra_to_install(monkeypatch, tmp_path):
    # a fresh `pip install -e .` has no psycopg: the README's `mltrail server --db
    # postgresql+psycopg://...` printed a ModuleNotFoundError traceback instead of one line
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(ValidationError) as info:
        SqlStore.open("postgresql+psycopg://postgres@127.0.0.1:5432/nothing")
    assert info.value.field == "db_url"
    assert "pip install 'mltrail[postgres]'" in str(info.value)
