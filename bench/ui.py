"""``python -m bench.ui [--sizes 1000,10000,100000] [--runs 5] [--charts] [--out FILE]``: the web UI's
experiments page in a real Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright)
against a real ``mltrail server`` on SQLite, for projects of growing size.

Per size, the median of ``--runs`` fresh browser contexts: the time from navigation to the
first rows in the table (a MutationObserver in the page stamps ``performance.now()``; it
includes loading the app's scripts), of which the table's one page read from the server, the API
requests and their bytes during that first paint (Resource Timing), then a sort by a metric
column (click to re-drawn rows) and the next page. The page must not grow with the project:
the table holds 50 rows and the server filters, sorts and pages, so the ratio of the largest
size to the smallest is the figure to read. Issue 16's target: first rows under 500 ms at
100,000 experiments. With ``--charts``: a compare of ``--compare-runs`` runs x 4 metrics x
``--compare-points`` points until every chart is drawn (target 2 s at 100 x 4 x 100,000), and a
zoom into 1% of a ``--long-points`` series until the re-read range is drawn (target 300 ms at
10^7). The projects are written straight into the database (100,000 runs through
the API would take the benchmark's whole budget; the UI reads them the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.mltrail_side import MltrailSide

CHROMIUM = "/usr/bin/chromium"
TARGET_MS = 500.0
RESULTS = Path(__file__).resolve().parent / "results"
ROWS_SEEN = """
new MutationObserver((_, observer) => {
  if (document.querySelector("table.experiments tbody tr[data-experiment-id]")) {
    window.__firstRows = performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""
TIMED_CLICK = """async ([selector, ready]) => {
  const t0 = performance.now();
  document.querySelector(selector).click();
  await new Promise((done) => {
    const check = () => (document.querySelector(ready) ? done() : requestAnimationFrame(check));
    check();
  });
  return performance.now() - t0;
}"""
NEXT_PAGE = """async () => {
  for (const tr of document.querySelectorAll("tr[data-experiment-id]")) tr.dataset.seen = "1";
  const t0 = performance.now();
  document.querySelector("button.next").click();
  await new Promise((done) => {
    const check = () => (document.querySelector("tr[data-experiment-id]:not([data-seen])")
      ? done() : requestAnimationFrame(check));
    check();
  });
  return performance.now() - t0;
}"""
SORT_COLUMN = "validation/accuracy"


def create_project(url: str, token: str, name: str) -> int:
    request = urllib.request.Request(
        f"{url}/api/v1/projects",
        data=json.dumps({"display_name": name}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        return int(json.load(answer)["id"])


def fill_project(db_url: str, project: int, count: int) -> None:
    """``count`` finished runs of a 4-way sweep, each with train/loss and validation/accuracy
    summaries and searchable hyperparameters, in one transaction."""
    from sqlalchemy import create_engine, select, update

    from mltrail.store.sql.query import param_rows
    from mltrail.store.sql.tables import experiment_params, experiments, metric_series, projects

    now = time.time() - count
    hps = {
        n: {
            "lr": 10 ** (-4 + (n % 7) / 2),
            "batch": 2 ** (5 + n % 4),
            "optimizer": "adam" if n % 2 else "sgd",
            "seed": n,
        }
        for n in range(1, count + 1)
    }
    rows = [
        {"project_id": project, "number": n, "display_name": f"run-{n:06d}", "description": "",
         "status": "done", "created_at": now + n, "started_at": now + n, "ended_at": now + n + 60 + n % 600,
         "updated_at": now + n, "hyperparameters": json.dumps(hp), "environment": "{}", "source": "{}",
         "tags": "[]", "stop_requested": False, "log_count": 0}
        for n, hp in hps.items()
    ]  # fmt: skip
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(experiments.insert(), rows)
        pks = dict(
            conn.execute(
                select(experiments.c.number, experiments.c.id).where(
                    experiments.c.project_id == project
                )
            ).all()
        )
        conn.execute(
            experiment_params.insert(), [p for n, pk in pks.items() for p in param_rows(pk, hps[n])]
        )
        series = []
        for n, pk in pks.items():
            loss, accuracy = 0.05 + (n * 7919 % 1000) / 1000, 0.5 + (n * 104729 % 500) / 1000
            for key, phase, value in (
                ("loss", "train", loss),
                ("accuracy", "validation", accuracy),
            ):
                series.append({"experiment_id": pk, "key": key, "phase": phase, "count": 5000, "last_value": value,
                               "last_iteration": 4999, "last_epoch": 9, "min_value": value, "max_value": value})  # fmt: skip
        conn.execute(metric_series.insert(), series)
        conn.execute(
            update(projects).where(projects.c.id == project).values(next_experiment=count + 1)
        )
    engine.dispose()


def measure_once(browser: Any, url: str, token: str, project: int) -> dict[str, float]:
    """One cold page (a fresh context): first rows, API requests and bytes, sort, next page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(f"localStorage.setItem('mltrail.token', {token!r});")
    context.add_init_script(ROWS_SEEN)
    page = context.new_page()
    page.goto(f"{url}/#/projects/{project}")
    page.wait_for_selector("table.experiments tbody tr[data-experiment-id]", timeout=60_000)
    first = page.evaluate("window.__firstRows")
    api = page.evaluate(
        """performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/v1/'))
             .map((e) => [e.name, e.encodedBodySize, e.responseEnd - e.requestStart])"""
    )
    table_read = next(ms for name, _, ms in api if "/experiments?" in name)
    page.wait_for_selector(f"th[data-column='{SORT_COLUMN}']")
    sort = page.evaluate(
        TIMED_CLICK,
        [f"th[data-column='{SORT_COLUMN}']", f"th[data-column='{SORT_COLUMN}'][aria-sort]"],
    )
    next_page = page.evaluate(NEXT_PAGE)
    context.close()
    return {
        "first": first,
        "read": table_read,
        "requests": len(api),
        "bytes": sum(b for _, b, _ in api),
        "sort": sort,
        "next": next_page,
    }


CHARTS_DRAWN = """
new MutationObserver(() => {
  const cards = document.querySelectorAll(".metrics .chart-card");
  const wanted = Number(localStorage.getItem("bench.lines"));
  if (cards.length && [...cards].every((c) => Number(c.dataset.lines) === wanted && c.querySelector("canvas"))) {
    window.__chartsDrawn ??= performance.now();
  }
}).observe(document, {childList: true, subtree: true, attributes: true, attributeFilter: ["data-lines"]});
"""


def fill_runs(
    db_url: str, project: int, runs: int, metrics: int, points: int, long_points: int
) -> list[int]:
    """``runs`` runs of ``metrics`` series of ``points`` each, and one more holding a
    ``long_points`` series (``grad_norm``), through the store's own append (rollups kept)."""
    import uuid

    import numpy as np

    from mltrail.core.types import MetricBatch, SeriesChunk
    from mltrail.store.sql import SqlStore

    store = SqlStore.open(db_url)
    admin = store.as_user(store.auth.get_user("admin"))
    ids = []
    for n in range(runs + 1):
        e = admin.create_experiment(
            project, display_name=f"run-{n:03d}", hyperparameters={"seed": n}
        ).experiment_id
        keys = (
            [("grad_norm", long_points)]
            if n == runs
            else [(f"metric_{k}", points) for k in range(metrics)]
        )
        for key, size in keys:
            for start in range(0, size, 200_000):
                part = np.arange(start, min(size, start + 200_000), dtype=np.int64)
                values = np.sin(part / 1000.0 + n) + 0.25 * np.sin(part / 7.0) + n / runs
                chunk = SeriesChunk(
                    key,
                    "train",
                    part,
                    np.full(len(part), -1),
                    values,
                    np.full(len(part), time.time()),
                )
                admin.append_points(project, e, MetricBatch(uuid.uuid4().hex, 1, (chunk,)))
        ids.append(e)
    store.close()
    return ids


def measure_charts(browser: Any, side: MltrailSide, args: argparse.Namespace) -> dict[str, float]:
    """Compare of ``--compare-runs`` runs (every chart drawn) and a zoom into the long series."""
    project = create_project(side.server.url, side.token, "ui-charts")
    started = time.monotonic()
    ids = fill_runs(
        side.db_url, project, args.compare_runs, 4, args.compare_points, args.long_points
    )
    filled = time.monotonic() - started
    drawn, zooms = [], []
    for _ in range(args.runs):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(f"localStorage.setItem('mltrail.token', {side.token!r});")
        context.add_init_script(f"localStorage.setItem('bench.lines', '{args.compare_runs}');")
        context.add_init_script(CHARTS_DRAWN)
        page = context.new_page()
        page.goto(
            f"{side.server.url}/#/projects/{project}/compare?ids={','.join(map(str, ids[:-1]))}"
        )
        page.wait_for_selector(
            f".metrics .chart-card[data-lines='{args.compare_runs}'] canvas", timeout=120_000
        )
        for _ in range(1200):
            value = page.evaluate("window.__chartsDrawn ?? null")
            if value is not None:
                drawn.append(value)
                break
            page.wait_for_timeout(100)
        page.goto(f"{side.server.url}/#/projects/{project}/experiments/{ids[-1]}")
        card = page.locator(".chart-card[data-title='grad_norm']")
        card.locator("canvas").wait_for(timeout=60_000)
        zooms.append(zoom_once(page, card))
        context.close()
    return {"filled_s": filled, "drawn": statistics.median(drawn), "zoom": statistics.median(zooms)}


def zoom_once(page: Any, card: Any) -> float:
    """Drag over 1% of the long series' chart; ms from the mouse release to the re-read drawn."""
    box = card.locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.41, y, steps=4)
    page.evaluate(
        """(el) => { window.__zoomDone = undefined;
             new MutationObserver((_, o) => { if (el.dataset.readEnd) { window.__zoomDone = performance.now(); o.disconnect(); } })
               .observe(el, {attributes: true, attributeFilter: ["data-read-end"]});
             window.__zoomStart = performance.now(); }""",
        card.element_handle(),
    )
    page.mouse.up()
    for _ in range(600):
        done = page.evaluate("window.__zoomDone ?? null")
        if done is not None:
            return float(done - page.evaluate("window.__zoomStart"))
        page.wait_for_timeout(50)
    raise RuntimeError("the zoomed chart was never re-read")


def measure(
    args: argparse.Namespace, workdir: Path
) -> tuple[list[dict[str, float]], dict[str, float] | None]:
    from playwright.sync_api import sync_playwright

    side = MltrailSide(workdir, name="ui")
    results, charts = [], None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            for size in args.sizes:
                project = create_project(side.server.url, side.token, f"ui-{size}")
                started = time.monotonic()
                fill_project(side.db_url, project, size)
                filled = time.monotonic() - started
                measure_once(
                    browser, side.server.url, side.token, project
                )  # warm the server's caches
                samples = [
                    measure_once(browser, side.server.url, side.token, project)
                    for _ in range(args.runs)
                ]
                row = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
                results.append({"size": size, "fill_s": filled, **row})
                print(format_row(results[-1]), flush=True)
            if args.charts:
                charts = measure_charts(browser, side, args)
            browser.close()
    finally:
        side.close()
    return results, charts


def format_row(r: dict[str, float]) -> str:
    return (f"| {r['size']:,} | {r['first']:.0f} | {r['read']:.0f} | {r['requests']:.0f} | "
            f"{r['bytes'] / 1024:.1f} | {r['sort']:.0f} | {r['next']:.0f} |")  # fmt: skip


def report(
    results: list[dict[str, float]], charts: dict[str, float] | None, args: argparse.Namespace
) -> str:
    runs = args.runs
    smallest, largest = results[0], results[-1]
    lines = [
        "# UI benchmark: the experiments page as the project grows",
        "",
        f"`python -m bench.ui --sizes {','.join(str(r['size']) for r in results)} --runs {runs}"
        f"{' --charts' if charts else ''}`, "
        f"Chromium {CHROMIUM}, server on SQLite; medians of {runs} cold page loads; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "| experiments | first rows (ms) | of which the page's read (ms) | API requests | API KiB "
        "| sort by a metric (ms) | next page (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(format_row(r) for r in results),
        "",
        f"First rows at {largest['size']:,} vs {smallest['size']:,} experiments: "
        f"x{largest['first'] / smallest['first']:.2f} time, x{largest['bytes'] / max(1, smallest['bytes']):.2f} bytes. "
        f"Target (issue 16): first rows under {TARGET_MS:.0f} ms at {largest['size']:,}: "
        f"{'met' if largest['first'] < TARGET_MS else 'MISSED'} ({largest['first']:.0f} ms).",
    ]
    if charts:
        points = args.compare_runs * 4 * args.compare_points
        lines += [
            "",
            f"Compare of {args.compare_runs} runs x 4 metrics x {args.compare_points:,} points ({points:,} points): "
            f"every chart drawn {charts['drawn']:.0f} ms after navigation (target 2,000 ms: "
            f"{'met' if charts['drawn'] < 2000 else 'MISSED'}). Zoom into 1% of a {args.long_points:,}-point series: "
            f"re-read and drawn {charts['zoom']:.0f} ms after the mouse release (target 300 ms: "
            f"{'met' if charts['zoom'] < 300 else 'MISSED'}). Medians of {runs}; data written in {charts['filled_s']:.0f} s.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__)
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="project sizes, comma-separated"
    )
    parser.add_argument("--runs", type=int, default=5, help="cold page loads per size (median)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ui-latest.md", help="results file")
    parser.add_argument(
        "--charts", action="store_true", help="also time compare and a zoom re-read"
    )
    parser.add_argument("--compare-runs", type=int, default=100)
    parser.add_argument(
        "--compare-points", type=int, default=100_000, help="points per compared series"
    )
    parser.add_argument(
        "--long-points", type=int, default=10_000_000, help="points of the zoomed series"
    )
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    print(
        "| experiments | first rows (ms) | page read (ms) | API requests | API KiB | sort (ms) | next (ms) |"
    )
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-ui-") as tmp:
        results, charts = measure(args, Path(tmp))
    text = report(results, charts, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
