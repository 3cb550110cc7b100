"""The x axis of metric charts: step, epoch, wall time and relative time (from each point's
stored wall-clock time, read with ``times=true``), kept in the URL; a zoom on a time axis is
re-read as the iterations it covers."""

from __future__ import annotations

import csv
import io
import re
import time

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_checks import SeriesReads, drag_zoom, hover_rows, ticks
from ui_seed import metric_batch, set_run_times

from mltrail.core.types import Status

pytestmark = pytest.mark.browser

STEPS = 2_000
PAUSE = 3_600.0  # the run was suspended for an hour after iteration 999
DURATION_TICK = re.compile(r"^-?\d+(\.\d+)?[smhd]( \d+[smhd])?$")


def relative_time(iteration: int) -> float:
    return iteration * 0.5 + (PAUSE if iteration >= STEPS // 2 else 0.0)


@pytest.fixture
def paused_run(ui_server) -> tuple[int, int, float]:
    store = ui_server.store
    project = store.create_project("time-axes").id
    e = store.create_experiment(project, display_name="paused", status=Status.DONE).experiment_id
    start = time.time() - 3 * PAUSE
    it = np.arange(STEPS)
    times = start + np.array([relative_time(i) for i in it])
    loss = 1.0 / (1.0 + it / 100.0)
    store.append_points(project, e, metric_batch("loss", "train", it, loss, it // 200, times=times))
    set_run_times(store.url, project, e, start, float(times[-1]))
    return project, e, start


def test_step_epoch_wall_and_relative_time_axes(page, ui_server, paused_run) -> None:
    project, e, start = paused_run
    reads = SeriesReads(page)
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    card = page.locator(".chart-card[data-title='loss']")
    expect(card.locator("canvas")).to_be_visible()
    assert reads.lines() and not any(line["times"] for line in reads.lines())  # step: no times

    page.click("button.axis-toggle[data-axis='relative']")
    expect(card).to_have_attribute("data-x-axis", "relative time")
    expect(card.locator(".axis-x")).to_have_text("x: relative time")
    expect(page).to_have_url(re.compile(r"x=relative"))
    assert any(line["times"] for line in reads.lines())
    labels = [t for t in ticks(card, "x") if t]
    assert labels and all(DURATION_TICK.match(t) for t in labels), labels
    assert any("h" in t for t in labels), labels  # the hour's pause is on the axis
    assert float(card.get_attribute("data-x-max")) == pytest.approx(relative_time(STEPS - 1), abs=1)
    head, _ = hover_rows(card, 40, 60)
    assert head.startswith("relative time ")

    # a zoom in seconds is read again as the iterations it covers
    reads.clear()
    drag_zoom(page, card, 0.05, 0.15)
    expect(card).not_to_have_attribute("data-read-end", "", timeout=10_000)
    low, high = float(card.get_attribute("data-x-min")), float(card.get_attribute("data-x-max"))
    inside = [i for i in range(STEPS) if low <= relative_time(i) <= high]
    read_start, read_end = (
        int(card.get_attribute("data-read-start")),
        int(card.get_attribute("data-read-end")),
    )
    assert inside and read_start <= inside[0] and read_end >= inside[-1]
    assert read_end - read_start < STEPS // 2  # the zoomed part, not the whole run
    assert any(line["start"] == read_start and line["times"] for line in reads.lines())

    page.reload()  # the axis is in the URL
    expect(card).to_have_attribute("data-x-axis", "relative time")

    page.click("button.axis-toggle[data-axis='time']")
    expect(card).to_have_attribute("data-x-axis", "wall time")
    labels = [t for t in ticks(card, "x") if t]
    assert labels and all(re.match(r"^(\d\d-\d\d )?\d\d:\d\d(:\d\d)?$", t) for t in labels), labels
    assert float(card.get_attribute("data-x-min")) == pytest.approx(start, abs=60)

    page.click("button.axis-toggle[data-axis='iteration']")
    expect(card).to_have_attribute("data-x-axis", "iteration")
    expect(page).not_to_have_url(re.compile(r"x="))
    assert all(re.match(r"^[\d.]+k?$", t) for t in ticks(card, "x") if t)
    assert page.errors == []


def test_axis_helpers(page, ui_server) -> None:
    page.goto(ui_server.url + "/")
    out = page.evaluate(
        """async () => { const m = await import('/ui/js/axes.js');
           const s = {iterations: [0, 10, 20, 30], epochs: [0, 0, 1, null], times: [100, 105, null, 200]};
           return {
             rel: m.pointXs(s, 'relative', 90), epoch: m.pointXs(s, 'epoch'),
             range: m.iterationRange([s], {min: 104, max: 150}, 'time'),
             none: m.iterationRange([s], null, 'time'),
             labels: [0, 45, 90, 3600, 5400, 90000, 0.25].map((v) => m.durationLabel(v, v < 1 ? 0.05 : 1)),
             unknown: m.knownAxis('bogus'),
           }; }"""
    )
    assert out["rel"] == [10, 15, None, 110] and out["epoch"] == [0, 0, 1, None]
    assert out["range"] == {"min": 0, "max": 30}  # 105 inside, neighbours 100 and 200 kept
    assert out["none"] is None and out["unknown"] == "iteration"
    assert out["labels"] == ["0s", "45s", "1m 30s", "1h", "1h 30m", "1d 1h", "0.25s"]


def test_x_axis_can_be_another_metric(page, ui_server) -> None:
    store = ui_server.store
    project = store.create_project("metric-axis").id
    e = store.create_experiment(project, display_name="warm-up").experiment_id
    it = np.arange(0, 100, 2)
    store.append_points(project, e, metric_batch("lr", "train", it, (it + 2) / 1000))
    store.append_points(project, e, metric_batch("loss", "train", it, 1.0 / (it + 1)))
    store.append_points(project, e, metric_batch("loss", "validation", it[::10], np.ones(5)))
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    loss = page.locator(".chart-card[data-title='loss']")
    expect(loss).to_have_attribute("data-lines", "2")
    page.get_by_label("x axis: another metric").select_option("lr")
    expect(loss).to_have_attribute("data-x-axis", "lr")
    expect(loss).to_have_attribute("data-lines", "1")  # validation has no lr of its own
    expect(loss.locator(".chart-note")).to_contain_text("Lines without lr are hidden.")
    expect(page).to_have_url(re.compile(r"[?&]x=metric(:|%3A)lr\b"))
    expect(page.locator(".axis-toggle[aria-pressed=true]")).to_have_count(0)
    with page.expect_download() as download:
        loss.locator("button.chart-csv").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0] == ["lr", "train"] and len(rows) == 51
    stored = dict(zip((it + 2) / 1000, 1.0 / (it + 1), strict=True))
    for x, y in rows[1:]:  # each loss against the lr of its own iteration
        assert float(y) == pytest.approx(stored[min(stored, key=lambda k: abs(k - float(x)))])
    assert all(0 < float(t) <= 0.11 for t in ticks(loss, "x") if t)
    page.reload()
    expect(loss).to_have_attribute("data-x-axis", "lr")
    expect(page.get_by_label("x axis: another metric")).to_have_value("lr")
    page.locator(".axis-toggle[data-axis=iteration]").click()
    expect(loss).to_have_attribute("data-x-axis", "iteration")
    expect(loss).to_have_attribute("data-lines", "2")
    expect(page.get_by_label("x axis: another metric")).to_have_value("")
    assert page.errors == []
