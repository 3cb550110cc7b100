"""Status and time: a running run's duration counts up from its start, the experiments table
follows new and live runs, failed (and crashed) runs say so at the top of their page with the
end of their log, and a live run can be stopped from its actions menu."""

from __future__ import annotations

import os
import re
import textwrap
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect
from ui_seed import (
    SCREENSHOTS,
    add_running_run,
    append_logs,
    metric_batch,
    open_page,
    set_run_times,
)

from mltrail.core.types import Status
from support.bulk import bulk_experiments
from support.servers import ServerProcess
from support.trainers import launch_trainer

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


def test_the_table_of_a_large_project_follows_live_runs_one_page_at_a_time(page, ui_server) -> None:
    """Live updates re-read the page shown, never the project: 50 rows a read, whatever its size."""
    store = ui_server.store
    project = store.create_project("old-live-run").id
    bulk_experiments(store.url, project, 2_500, running=(3,))
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if "/experiments?" in r.url else None)
    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(page.locator(".row-count")).to_have_text("Rows 1–50 of 2,500")
    status = page.locator("tr[data-experiment-id='3'] .status")
    expect(status).to_have_text("running")
    reads.clear()
    store.update_experiment(project, 3, status=Status.DONE)
    expect(status).to_have_text("done", timeout=LIVE_TIMEOUT_MS)
    pages = [parse_qs(urlparse(u).query) for u in reads]
    assert pages and all((q["offset"], q["limit"]) == (["0"], ["50"]) for q in pages), reads


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


CRASH_AFTER = 3.0  # the crash test's server judges a run crashed after 3 s without heartbeats

TRAINER = textwrap.dedent(
    """
    import sys, time
    import mltrail
    with mltrail.start("crash-ui", "doomed", hyperparams={"lr": 0.1}) as exp:
        print("epoch 1/10: loss 0.52", flush=True)
        exp.log({"loss": 0.52})
        print("STARTED", exp.project_id, exp.experiment_id, flush=True)
        time.sleep(600)
    """
)


@pytest.fixture
def crash_server(server_factory, migrated_sqlite_url: str) -> ServerProcess:
    """A server of its own that judges runs after CRASH_AFTER seconds (the shared one: 300 s)."""
    return server_factory(migrated_sqlite_url, env={"MLTRAIL_CRASH_AFTER": str(CRASH_AFTER)})


def trainer_env(server: ServerProcess, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    return env | {
        "MLTRAIL_URL": server.url,
        "MLTRAIL_TOKEN": server.admin_token or "",
        "MLTRAIL_HOME": str(home),
    }


def test_a_sigkilled_trainer_shows_crashed_at_the_top_live(browser, crash_server, tmp_path) -> None:
    """The page is open while the run trains; the trainer is SIGKILLed; without a reload the
    page says crashed, like a failed run: red pill, a Crashed box with the end of its log above
    the charts, the last heartbeat, a duration that stopped counting; the table row too."""
    proc, p, e = launch_trainer(TRAINER, [], trainer_env(crash_server, tmp_path / "home"))
    pages = open_page(browser, crash_server.admin_token)
    page = next(pages)
    try:
        page.goto(f"{crash_server.url}/#/projects/{p}/experiments/{e}")
        pill = page.locator("main h1 .status")
        expect(pill).to_have_text("running")
        expect(page.locator(".log-line").first).to_contain_text("epoch 1/10")
        time.sleep(2 * CRASH_AFTER)  # heartbeats keep a live run running past crash_after
        expect(pill).to_have_text("running")
        proc.kill()
        proc.wait(10)
        expect(pill).to_have_text("crashed", timeout=(CRASH_AFTER + 15) * 1000)
        expect(pill).to_have_class(re.compile("status-failure"))
        failure = page.locator(".failure")
        expect(failure.locator("h2")).to_have_text("Crashed")
        expect(failure).to_contain_text("heartbeats stopped")
        expect(failure).to_contain_text("No heartbeat since ")
        expect(failure.locator(".failure-log")).to_contain_text("epoch 1/10: loss 0.52")
        top = failure.bounding_box()["y"]
        assert top < 400 and top < page.locator(".metrics").bounding_box()["y"]
        facts = page.locator(".experiment-head .facts")
        expect(facts).to_contain_text("Last heartbeat")
        duration = facts.locator(".duration")
        assert duration.get_attribute("data-live-since") is None  # no longer counting
        frozen = duration.inner_text()
        assert seconds(frozen) >= 2 * CRASH_AFTER
        page.mouse.move(0, 0)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "crashed-run.png"))
        failed_colours = pill.evaluate(
            "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
        )
        page.goto(f"{crash_server.url}/#/projects/{p}")
        row = page.locator(f"tr[data-experiment-id='{e}']")
        expect(row.locator(".status")).to_have_text("crashed")
        expect(row).to_have_class("run-failure")
        expect(row.locator("td[data-column='duration']")).to_have_text(frozen)
        assert (
            row.locator(".status").evaluate(
                "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
            )
            == failed_colours
        )
        assert page.errors == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        pages.close()


def test_crashed_and_failed_pills_look_alike(page, ui_server, sweep) -> None:
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}/experiments/{sweep.failed}")
    pill = page.locator("main h1 .status")
    expect(pill).to_have_text("failed")
    colours = pill.evaluate(
        "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
    )
    crashed = page.evaluate(
        """async () => { const m = await import('/ui/js/status.js');
           const el = m.statusPill('crashed'); document.body.append(el);
           const style = getComputedStyle(el); return [style.color, style.backgroundColor]; }"""
    )
    assert crashed == colours


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
