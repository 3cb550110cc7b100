"""Search at scale (issues 15 and 17): a page of a project's experiments, plain and filtered
with a metric sort, through a real server, at 10^3, 10^4 and 10^5 experiments per project.

The projects live side by side in one database (so the small project is measured among the
big ones' rows). They are written straight into the tables in bulk, as the store writes them
(rows, searchable copies of the hyperparameters, metric summaries): creating 111,000
experiments one request at a time would measure ingest, not reads. Then a fresh ``mltrail
server`` on that database answers, through HttpStore (one request each):

* a plain list page: ``GET /projects/{p}/experiments?limit=100``
* a search page: ``filter=params.lr < 0.01 and metrics.validation/loss < 0.5``,
  ``order_by=metrics.validation/loss asc``, ``limit=100``

Rows: the search at the largest size (< 100 ms), its ratio to the plain page (<= 3x), and the
page's growth from the smallest to the largest project (<= 2x: "does not grow"). Every answer
is checked: a full page, sorted, every item matching the filter, and ``total`` equal to the
count made while writing.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench.mltrail_side import MltrailSide
from bench.report import Row, fmt_ms
from bench.workloads import Results

FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (300, 3_000)
PAGE = 100
FILTER = "params.lr < 0.01 and metrics.validation/loss < 0.5"
ORDER = "metrics.validation/loss asc"
SEARCH_LIMIT_S = 0.100
LIST_RATIO = 3.0
GROWTH = 2.0
LRS = (0.1, 0.03, 0.01, 0.003, 0.001)


def populate(db_url: str, sizes: tuple[int, ...], seed: int = 15) -> dict[int, dict[str, Any]]:
    """One project per size, filled in bulk; per size its project id and expected matches."""
    from sqlalchemy import update

    from mltrail.store.sql import SqlStore
    from mltrail.store.sql.tables import experiment_params, experiments, metric_series, projects

    rng = random.Random(seed)
    store = SqlStore.open(db_url)
    made: dict[int, dict[str, Any]] = {}
    try:
        for size in sizes:
            pid = store.create_project(f"search-{size}").id
            now = time.time()
            with store._db.write() as conn:
                first_pk = _next_pk(conn, experiments)
                rows, params, series, matches = [], [], [], 0
                for n in range(1, size + 1):
                    pk = first_pk + n - 1
                    lr, loss = rng.choice(LRS), rng.random()
                    hp = {"lr": lr, "batch": rng.choice((32, 64, 128)), "optimizer": "adam"}
                    rows.append(_experiment_row(pk, pid, n, now, hp))
                    params += [{"experiment_id": pk, "key": k, "num_value": float(v) if k != "optimizer" else None,
                                "text_value": v if k == "optimizer" else None, "bool_value": None}
                               for k, v in hp.items()]  # fmt: skip
                    series += [_series_row(pk, "loss", "train", rng.random() + 0.5),
                               _series_row(pk, "loss", "validation", loss)]  # fmt: skip
                    matches += lr < 0.01 and loss < 0.5
                for table, values in ((experiments, rows), (experiment_params, params),
                                      (metric_series, series)):  # fmt: skip
                    for start in range(0, len(values), 10_000):
                        conn.execute(table.insert(), values[start : start + 10_000])
                conn.execute(
                    update(projects).where(projects.c.id == pid).values(next_experiment=size + 1)
                )
            made[size] = {"project": pid, "matches": matches}
        with store._db.write() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        store.close()
    return made


def _next_pk(conn: Any, table: Any) -> int:
    from sqlalchemy import func, select

    return int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1


def _experiment_row(pk: int, pid: int, n: int, now: float, hp: dict[str, Any]) -> dict[str, Any]:
    return {"id": pk, "project_id": pid, "number": n, "display_name": f"run-{n}",
            "description": "", "status": "done", "created_at": now + n, "started_at": now + n,
            "ended_at": now + n + 60, "updated_at": now + n, "hyperparameters": json.dumps(hp),
            "environment": "{}", "source": "{}", "tags": "[]", "stop_requested": False,
            "log_count": 0, "notes": "", "state": "active"}  # fmt: skip


def _series_row(pk: int, key: str, phase: str, last: float) -> dict[str, Any]:
    return {"experiment_id": pk, "key": key, "phase": phase, "count": 100,
            "last_value": last, "last_iteration": 99, "last_epoch": -1,
            "min_value": last * 0.9, "max_value": last * 1.5}  # fmt: skip


def _timed(call: Any, repeats: int) -> tuple[float, Any]:
    call()  # warm the server's caches and the connection
    times, answer = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), answer


def _problems(page: Any, expected: int) -> list[str]:
    problems = []
    losses = [e.metrics.get("validation/loss") for e in page.items]
    if len(page.items) != min(PAGE, expected):
        problems.append(f"{len(page.items)} items, expected {min(PAGE, expected)}")
    if page.total_exact and page.total != expected:
        problems.append(f"total {page.total}, expected {expected}")
    if not page.total_exact and not len(page.items) < page.total <= expected:
        problems.append(
            f"total {page.total} (a lower bound) outside ({len(page.items)}, {expected}]"
        )
    if losses != sorted(losses):
        problems.append("not sorted by validation/loss")
    if any(
        e.hyperparameters["lr"] >= 0.01 or loss >= 0.5
        for e, loss in zip(page.items, losses, strict=True)
    ):
        problems.append("an item does not match the filter")
    return problems


def measure(side: MltrailSide, made: dict[int, dict[str, Any]], repeats: int) -> dict[str, Any]:
    """Median list and search page times per size, through the server."""
    from mltrail.core.query import parse_query
    from mltrail.store.http import HttpStore

    query = parse_query(FILTER, [ORDER])
    figures: dict[str, Any] = {"sizes": {}, "problems": []}
    with HttpStore(side.server.url, side.token) as store:
        for size, info in made.items():
            pid = info["project"]
            list_s, listed = _timed(partial(store.list_experiments, pid, limit=PAGE), repeats)
            search_s, found = _timed(
                partial(store.search_experiments, pid, query, limit=PAGE), repeats
            )
            if listed.total != size or len(listed.items) != PAGE:
                figures["problems"].append(f"{size}: list page {len(listed.items)}/{listed.total}")
            figures["problems"] += [f"{size}: {p}" for p in _problems(found, info["matches"])]
            figures["sizes"][size] = {"list_s": list_s, "search_s": search_s}
    return figures


def run(res: Results, workdir: Path, quick: bool) -> None:
    """Fill a database, serve it, and measure (the side's server is started on the filled file)."""
    sizes = QUICK_SIZES if quick else FULL_SIZES
    db_path = workdir / "mltrail-search.db"
    made = populate(f"sqlite:///{db_path}", sizes)
    side = MltrailSide(workdir, db_url=f"sqlite:///{db_path}", name="search")
    try:
        res.ours["search"] = measure(side, made, repeats=5 if quick else 20)
    finally:
        side.close()


def add_rows(res: Results) -> None:
    """The search rows, when the workload ran."""
    r = res.ours.get("search")
    if r is None:
        return
    sizes = sorted(r["sizes"])
    small, large = r["sizes"][sizes[0]], r["sizes"][sizes[-1]]
    ok = not r["problems"]
    if r["problems"]:
        res.notes.append("search: " + "; ".join(r["problems"][:5]))
    curve = " / ".join(f"{fmt_ms(r['sizes'][s]['search_s'])}" for s in sizes)
    res.add(Row(f"search page ({PAGE} of {sizes[-1]:,} experiments, 2-clause filter + metric sort, "
                "through the server)", fmt_ms(large["search_s"]),
                target=f"< {fmt_ms(SEARCH_LIMIT_S)}, answers checked",
                passed=ok and large["search_s"] < SEARCH_LIMIT_S))  # fmt: skip
    ratio = large["search_s"] / large["list_s"]
    res.add(Row(f"search page vs plain list page ({fmt_ms(large['list_s'])}) at {sizes[-1]:,}",
                f"{ratio:.1f}x", target=f"<= {LIST_RATIO:g}x", passed=ratio <= LIST_RATIO))  # fmt: skip
    growth = max(large["search_s"] / small["search_s"], large["list_s"] / small["list_s"])
    res.add(Row("page cost from " + " to ".join(f"{s:,}" for s in sizes) + f" experiments "
                f"(search {curve})", f"{growth:.1f}x", target=f"<= {GROWTH:g}x (flat)",
                passed=growth <= GROWTH))  # fmt: skip
