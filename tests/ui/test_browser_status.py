"""Status and time: a running run's duration counts up from its start, the experiments table
follows new and live runs, failed (and crashed) runs say so at the top of their page with the
end of their log, and a live run can be stopped from its actions menu."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect
from ui_seed import add_running_run, append_logs, bulk_experiments, metric_batch, set_run_times

from mltrail.core.types import Status

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 12_000  # the table polls every 4 s


def seconds(text: str) -> float:
    """ "20m 13s" / "1h 02m" / "12.3s" as seconds."""
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)([dhms])", text):
        total += float(value) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
    return total


def test_a_running_run_counts_its_duration_from_its_start(page, ui_server, sweep) -> None:
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}/experiments/{sweep.running}")
    duration = page.locator(".experiment-head .facts .duration")
    expect(duration).to_have_text(re.compile(r"^2\dm \d\ds$"))  # started 20 minutes ago
    first = seconds(duration.inner_text())
    assert 20 * 60 <= first < 30 * 60
    expect(duration).not_to_have_text(duration.inner_text(), timeout=3_000)  # it ticks
    assert seconds(duration.inner_text()) > first
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}")
    row = page.locator(f"tr[data-experiment-id='{sweep.running}']")
    expect(row.locator("td[data-column='duration']")).to_have_text(re.compile(r"^2\dm \d\ds$"))
    done = page.locator(f"tr[data-experiment-id='{sweep.ids[0]}'] td[data-column='duration']")
    expect(done).to_have_text("10m 07s")  # ended runs: end - start, fixed


def test_the_experiments_table_follows_new_and_live_runs(page, ui_server) -> None:
    store = ui_server.store
    project, e = add_running_run(store, "live-table", "live")
    page.goto(f"{ui_server.url}/#/projects/{project}")
    rows = page.locator("table.experiments tbody tr")
    expect(rows).to_have_count(1)
    status = page.locator(f"tr[data-experiment-id='{e}'] .status")
    expect(status).to_have_text("running")

    # all of this happens after the page opened, without a reload
    store.append_points(project, e, metric_batch("loss", "train", [10], [0.25]))
    store.create_experiment(project, display_name="newcomer", hyperparameters={"lr": 0.3})
    expect(rows).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("td.name").nth(1)).to_have_text("newcomer")
    loss = page.locator(f"tr[data-experiment-id='{e}'] td[data-column='train/loss']")
    expect(loss).to_have_text("0.25", timeout=LIVE_TIMEOUT_MS)
    store.update_experiment(project, e, status=Status.DONE)
    expect(status).to_have_text("done", timeout=LIVE_TIMEOUT_MS)
    assert page.errors == []


def test_a_live_run_far_back_in_a_large_project_is_followed(page, ui_server) -> None:
    """Its page of the list is not re-read with all those after it: it is read on its own."""
    store = ui_server.store
    project = store.create_project("old-live-run").id
    bulk_experiments(store.url, project, 2_500, running=(3,))
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if "/experiments" in r.url else None)
    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(page.locator(".row-count")).to_have_text("Rows 1–50 of 2,500", timeout=30_000)
    status = page.locator("tr[data-experiment-id='3'] .status")
    expect(status).to_have_text("running")
    reads.clear()
    store.update_experiment(project, 3, status=Status.DONE)
    expect(status).to_have_text("done", timeout=LIVE_TIMEOUT_MS)
    assert any(u.endswith(f"/projects/{project}/experiments/3") for u in reads), reads
    offsets = [int(parse_qs(urlparse(u).query)["offset"][0]) for u in reads if "offset=" in u]
    assert offsets and min(offsets) >= 1_500, offsets  # only the tail is re-read in pages


def test_a_failed_run_shows_its_traceback_at_the_top(page, ui_server, sweep) -> None:
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}/experiments/{sweep.failed}")
    failure = page.locator(".failure")
    expect(failure).to_be_visible()
    expect(failure.locator("h2")).to_have_text("Failed")
    log = failure.locator(".failure-log")
    expect(log).to_contain_text("Traceback (most recent call last):")
    expect(log).to_contain_text("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "epoch 1/10" not in log.inner_text()  # from the traceback on, not the whole log
    top = failure.bounding_box()["y"]
    assert top < page.locator(".metrics").bounding_box()["y"]
    assert top < 400  # seen without scrolling
    expect(page.locator("main h1 .status")).to_have_class(re.compile("status-failure"))
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}/experiments/{sweep.ids[0]}")
    expect(page.locator(".metrics .chart-card canvas").first).to_be_visible()
    expect(page.locator(".failure")).to_be_hidden()  # a finished run has none


def test_crashed_is_shown_like_failed(page, ui_server, sweep) -> None:
    """The server's crashed status (heartbeats stopped) lands with the run-trust work; until
    then the experiment's JSON is answered with status 'crashed' by the browser itself."""
    path = f"/api/v1/projects/{sweep.project}/experiments/{sweep.failed}"

    def crashed(route) -> None:
        response = route.fetch()
        body = json.loads(response.text())
        body["status"] = "crashed"
        route.fulfill(response=response, body=json.dumps(body))

    page.route(re.compile(re.escape(path) + "$"), crashed)
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}/experiments/{sweep.failed}")
    pill = page.locator("main h1 .status")
    expect(pill).to_have_text("crashed")
    expect(page.locator(".failure h2")).to_have_text("Crashed")
    expect(page.locator(".failure")).to_contain_text("heartbeats stopped")
    expect(page.locator(".failure .failure-log")).to_contain_text("RuntimeError")
    crashed_colours = pill.evaluate(
        "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
    )
    page.unroute(re.compile(re.escape(path) + "$"))
    page.reload()
    expect(pill).to_have_text("failed")
    assert (
        pill.evaluate("el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]")
        == crashed_colours
    )


def test_stop_a_running_run_from_its_actions_menu(page, ui_server) -> None:
    store = ui_server.store
    project = store.create_project("stoppable").id
    e = store.create_experiment(
        project, display_name="long-job", status=Status.RUNNING
    ).experiment_id
    set_run_times(store.url, project, e, time.time() - 90, None)
    store.record_heartbeat(project, e)  # a live run heartbeats: a stop is asked, not recorded
    append_logs(store, project, e, [("INFO", "working")])
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    menu = page.locator(".actions-menu")
    menu.locator(".popover-button").click()
    stop = menu.locator(".menu-item.action-stop")
    expect(stop).to_be_enabled()
    stop.click()
    expect(page.locator(".stop-requested")).to_have_text("A stop was requested.")
    assert store.get_experiment(project, e).stop_requested
    menu.locator(".popover-button").click()
    expect(menu.locator(".menu-item.action-stop")).to_be_disabled()
    page.keyboard.press("Escape")
    expect(menu.locator(".popover-panel")).to_be_hidden()
    store.update_experiment(project, e, status=Status.STOPPED)
    expect(page.locator("main h1 .status")).to_have_text("stopped", timeout=5_000)
    assert page.errors == []
