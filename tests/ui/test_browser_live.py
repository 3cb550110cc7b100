"""Live updates: the log panel and charts follow a running experiment without a reload."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_seed import add_running_run, append_logs, metric_batch, open_page

from mltrail.core.types import Status

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 5_000  # the page polls at least every 2 s


def test_logs_and_charts_follow_a_running_experiment(page, ui_server) -> None:
    store = ui_server.store
    project, e = add_running_run(store, "live", "running")
    append_logs(store, project, e, [("INFO", "starting")])
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    lines = page.locator(".log-lines .log-line")
    expect(lines).to_have_count(1)
    expect(page.locator(".log-state")).to_have_text("following live output")
    loss = page.locator(".chart-card[data-title='loss']")
    expect(loss).to_have_attribute("data-points", "10")

    # everything below is written after the page opened
    append_logs(store, project, e, [("INFO", f"step {i}") for i in range(3)])
    expect(lines).to_have_count(4, timeout=LIVE_TIMEOUT_MS)
    append_logs(store, project, e, [("WARNING", "\x1b[33mgradient norm high\x1b[0m")])
    expect(lines.nth(4).locator(".ansi-fg-33")).to_have_text(
        "gradient norm high", timeout=LIVE_TIMEOUT_MS
    )
    expect(lines.nth(4)).to_have_class("log-line level-warning")
    store.append_points(project, e, metric_batch("loss", "train", np.arange(10, 25), np.ones(15)))
    expect(loss).to_have_attribute("data-points", "25", timeout=LIVE_TIMEOUT_MS)
    store.append_points(project, e, metric_batch("accuracy", "validation", [24], [0.5]))
    expect(page.locator(".chart-card[data-title='accuracy'] canvas")).to_have_count(
        1, timeout=LIVE_TIMEOUT_MS
    )

    store.update_experiment(project, e, status=Status.DONE)
    expect(page.locator("main h1 .status")).to_have_text("done", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator(".log-state")).to_have_text("", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("document.querySelectorAll('.log-line').length") == 5
    assert page.errors == []


TRAINING_SCRIPT = textwrap.dedent(
    """
    import logging, pathlib, sys, time
    import mltrail

    flag = pathlib.Path(sys.argv[1])
    logging.basicConfig(level=logging.INFO)
    with mltrail.start("sdk-live", display_name="sdk-run", hyperparams={"lr": 0.1}) as exp:
        step = 0
        while not flag.exists() and step < 600:
            exp.log({"loss": 1.0 / (step + 1)}, iteration=step)
            print(f"\\x1b[36mstep {step}\\x1b[0m", flush=True)
            if step >= 5:  # a progress bar redrawn with \\r on stderr, as tqdm draws it
                sys.stderr.write(f"\\rbatches {step}/600")
                sys.stderr.flush()
            if step == 3:
                logging.getLogger("train").warning("learning rate reduced")
            step += 1
            time.sleep(0.1)
    """
)


def test_log_panel_follows_a_training_script_using_the_sdk(page, ui_server, tmp_path) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAINING_SCRIPT)
    flag = tmp_path / "stop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env.update(MLTRAIL_URL=ui_server.url, MLTRAIL_TOKEN=ui_server.token, MLTRAIL_HOME=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(flag)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        project = _wait_for_project(ui_server.store, "sdk-live")
        page.goto(f"{ui_server.url}/#/projects/{project}/experiments/1")
        expect(page.locator("main h1 .status")).to_have_text("running")
        lines = page.locator(".log-lines .log-line")
        expect(lines.first).to_be_visible(timeout=10_000)
        seen = lines.count()
        expect(lines).not_to_have_count(seen, timeout=LIVE_TIMEOUT_MS)  # still growing
        expect(page.locator(".log-lines .ansi-fg-36").first).to_contain_text("step ")
        expect(page.locator(".log-line.level-warning")).to_contain_text("learning rate reduced")
        bar = page.locator(".log-line", has_text=re.compile(r"batches \d+/600"))
        expect(bar.first).to_be_visible(timeout=LIVE_TIMEOUT_MS)  # the bar shows while it runs
        expect(bar.first).to_have_class(re.compile(r"\blevel-info\b"))  # stderr is no warning
        expect(page.locator(".log-line.level-warning")).to_have_count(1)
        expect(page.locator(".chart-card[data-title='loss'] canvas")).to_have_count(1)
    finally:
        flag.touch()
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode(errors="replace")
    expect(page.locator("main h1 .status")).to_have_text("done", timeout=LIVE_TIMEOUT_MS)


def _wait_for_project(store, name: str, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        project = store.find_project(name)
        if project is not None and project.experiment_count:
            return project.id
        time.sleep(0.1)
    raise AssertionError(f"the training script did not create project {name!r}")


def test_zoom_and_scroll_position_survive_live_refreshes(page, ui_server) -> None:
    store = ui_server.store
    project = store.create_project("live-zoom").id
    e = store.create_experiment(project, display_name="zoomed", status=Status.RUNNING).experiment_id
    store.append_points(project, e, metric_batch("loss", "train", np.arange(100), np.ones(100)))
    append_logs(store, project, e, [("INFO", f"line {i}") for i in range(200)])
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    loss = page.locator(".chart-card[data-title='loss']")
    expect(loss).to_have_attribute("data-points", "100")
    box = loss.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 30)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + 30, steps=5)
    page.mouse.up()
    zoomed = (float(loss.get_attribute("data-x-min")), float(loss.get_attribute("data-x-max")))
    assert 30 < zoomed[0] < zoomed[1] < 90, zoomed

    logs = page.locator(".log-lines")
    logs.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    expect(page.locator("input[name=follow]")).not_to_be_checked()

    store.append_points(project, e, metric_batch("loss", "train", np.arange(100, 150), np.ones(50)))
    append_logs(store, project, e, [("INFO", "new line")])
    expect(page.locator(".log-line").last).to_have_text(
        re.compile("new line"), timeout=LIVE_TIMEOUT_MS
    )
    page.wait_for_timeout(2500)  # one more chart refresh: it re-reads the zoomed range only
    assert int(loss.get_attribute("data-read-start")) <= zoomed[0] + 1
    assert (
        float(loss.get_attribute("data-x-min")),
        float(loss.get_attribute("data-x-max")),
    ) == zoomed
    assert logs.evaluate("el => el.scrollTop") == 0  # the reader's place is kept

    loss.locator(".u-over").dblclick()
    expect(loss).to_have_attribute("data-x-max", "149")
    expect(loss).to_have_attribute("data-points", "150")
    page.check("input[name=follow]")
    assert logs.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") < 4
    store.update_experiment(project, e, status=Status.DONE)


def test_live_page_survives_a_server_restart(browser, server, empty_ui_server) -> None:
    store = empty_ui_server.store
    project = store.create_project("restart").id
    e = store.create_experiment(project, display_name="long", status=Status.RUNNING).experiment_id
    append_logs(store, project, e, [("INFO", "before restart")])
    for page in open_page(browser, empty_ui_server.token):
        page.goto(f"{empty_ui_server.url}/#/projects/{project}/experiments/{e}")
        expect(page.locator(".log-line")).to_have_count(1)
        server.kill()
        expect(page.locator(".live-state")).to_contain_text("retrying", timeout=LIVE_TIMEOUT_MS)
        expect(page.locator("main h1")).to_contain_text("long")  # the page stays
        server.start()
        append_logs(store, project, e, [("INFO", "after restart")])
        expect(page.locator(".log-line")).to_have_count(2, timeout=10_000)
        expect(page.locator(".live-state")).to_have_text("", timeout=LIVE_TIMEOUT_MS)
        expect(page.locator(".log-state")).to_have_text("following live output")
        store.update_experiment(project, e, status=Status.DONE)
        expect(page.locator("main h1 .status")).to_have_text("done", timeout=LIVE_TIMEOUT_MS)
