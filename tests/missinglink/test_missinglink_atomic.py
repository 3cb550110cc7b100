"""The client's by-hash writes are each one Store call, so all-or-nothing: when the database
refuses the last experiment holding the hash, no experiment keeps the write (SQLite and
PostgreSQL, a real server, the real client)."""

from __future__ import annotations

from collections.abc import Callable

import missinglink_seed as seed
from missinglink_seed import Setup

from mltrail.store.sql import SqlStore
from support.servers import ServerProcess
from support.stores import refuse_rows_of

REFUSED_TABLES = ("external_metrics", "charts", "iteration_metrics")


def test_a_refused_target_leaves_no_partial_write(
    migrated_db_url: str,
    server_factory: Callable[..., ServerProcess],
    setup_for: Callable[[ServerProcess], Setup],
) -> None:
    s = setup_for(server_factory(migrated_db_url))
    weights_hash = seed.new_hash()
    first, last = (seed.experiment(s.mltrail, s.project, weights_hash=weights_hash) for _ in "ab")
    with SqlStore.open(migrated_db_url) as sql:
        for table in REFUSED_TABLES:
            refuse_rows_of(sql, table, s.project, last)
    outcomes = s.client.api_calls(
        ("update_metrics", {"metrics": '{"ex_audit": "ok"}', "weights_hash": weights_hash}),
        (
            "update_chart",
            {"chart_name": "roc", "weights_hash": weights_hash, "chart_x": "[1, 2]", "chart_y": "[0.5, 0.7]"},
        ),
        ("update_metrics_per_iteration", {"metrics": '{"ex_acc": 0.9}', "weights_hash": weights_hash}),
    )  # fmt: skip
    assert [sorted(outcome) for outcome in outcomes] == [["error", "message"]] * 3, outcomes
    for experiment in (first, last):
        assert s.mltrail.experiments.get(s.project, experiment)["ex_metrics"] == {}
        assert s.mltrail.store.list_charts(s.project, experiment) == []
        assert s.mltrail.store.read_iteration_metrics(s.project, experiment) == []
