"""The experiment page: metric charts and their controls, per-iteration external metrics,
custom charts, tables and logs; saves docs/screenshots/experiment-page.png."""

from __future__ import annotations

import re
import time
import uuid

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_checks import SeriesReads
from ui_seed import SCREENSHOTS, add_demo_project, metric_batch

from mltrail.core.types import MetricBatch, SeriesChunk

pytestmark = pytest.mark.browser


def chart(page, title: str):
    return page.locator(f".chart-card[data-title='{title}']")


def legend_labels(card) -> list[str]:
    return card.locator(".chart-legend .legend-label").all_inner_texts()


def hover_rows(card, x: float, y: float) -> list[dict]:
    """Hover the plot at (x, y) px and read the tooltip's rows."""
    card.locator(".u-over").hover(position={"x": x, "y": y})
    expect(card.locator(".chart-tooltip")).to_be_visible()
    return card.locator(".chart-tooltip .tooltip-row").evaluate_all(
        """rows => rows.map(r => ({label: r.dataset.label, value:
             r.querySelector('.tooltip-value').textContent,
             raw: r.querySelector('.tooltip-raw')?.textContent ?? null}))"""
    )


@pytest.fixture
def demo(page, ui_server) -> dict[str, int]:
    ids = add_demo_project(ui_server)
    page.goto(f"{ui_server.url}/#/projects/{ids['project']}/experiments/{ids['first']}")
    expect(page.locator(".metrics .chart-card canvas")).to_have_count(2)
    return ids


def test_a_chart_per_metric_with_a_line_per_phase(page, demo) -> None:
    expect(page.locator("main h1")).to_contain_text("resnet18-lr0.1")
    expect(page.locator("main h1 .status")).to_have_text("done")
    loss = chart(page, "loss")
    assert legend_labels(loss) == ["train", "validation"]
    assert legend_labels(chart(page, "accuracy")) == ["validation"]
    expect(loss.locator(".axis-x")).to_have_text("x: iteration")
    rows = hover_rows(loss, 150, 60)
    train = next(r for r in rows if r["label"] == "train")
    assert re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", train["value"])  # hover shows values
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=str(SCREENSHOTS / "experiment-page.png"), full_page=True)
    assert page.errors == []


def test_series_are_requested_downsampled_to_the_chart_width(page, ui_server) -> None:
    project = ui_server.store.create_project("big-series").id
    exp = ui_server.store.create_experiment(project, display_name="long-run").experiment_id
    n = 200_000
    it = np.arange(n)
    ui_server.store.append_points(project, exp, metric_batch("loss", "train", it, 1 / (1 + it)))
    reads = SeriesReads(page)
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{exp}")
    card = chart(page, "loss")
    expect(card.locator(".chart-note")).to_contain_text("of 200,000 points")
    width = card.locator(".chart-body").evaluate("el => el.clientWidth")
    max_points = [line["max_points"] for line in reads.lines()]
    assert max_points and all(abs(m - width) <= 2 for m in max_points), (max_points, width)
    assert int(card.get_attribute("data-points")) <= 2 * width  # min/max pairs at most


def test_iteration_epoch_toggle_is_in_the_url(page, ui_server, demo) -> None:
    loss = chart(page, "loss")
    iteration_points = int(loss.get_attribute("data-points"))
    page.click("button.axis-toggle[data-axis='epoch']")
    expect(loss.locator(".axis-x")).to_have_text("x: epoch")
    expect(loss).to_have_attribute("data-x-axis", "epoch")
    expect(loss).to_have_attribute("data-x-axis", "epoch")
    assert int(loss.get_attribute("data-points")) == 10  # one point per epoch
    assert iteration_points > 10
    assert "x=epoch" in page.url
    page.reload()
    expect(chart(page, "loss").locator(".axis-x")).to_have_text("x: epoch")
    expect(page.locator("button.axis-toggle[data-axis='epoch']")).to_have_class(
        re.compile("active")
    )


def test_smoothing_slider_changes_the_plotted_values(page, demo) -> None:
    loss = chart(page, "loss")
    train = next(r for r in hover_rows(loss, 120, 60) if r["label"] == "train")
    raw = float(train["value"])
    expect(loss).to_have_attribute("data-raw-lines", "0")
    page.locator("input[name=smoothing]").evaluate(
        "el => { el.value = '0.95'; el.dispatchEvent(new Event('input', {bubbles: true})); }"
    )
    expect(page.locator(".smoothing-value")).to_have_text("0.95")
    expect(loss).to_have_attribute("data-smoothing", "0.95")
    expect(loss).to_have_attribute("data-raw-lines", "2")  # the raw lines stay, faded
    page.mouse.move(0, 0)
    smoothed_row = next(r for r in hover_rows(loss, 120, 60) if r["label"] == "train")
    assert float(smoothed_row["value"]) != pytest.approx(raw, rel=1e-3)
    assert smoothed_row["raw"] == f"raw {train['value']}"  # the tooltip keeps the raw value
    assert "smooth=0.95" in page.url


def test_log_scale_rebuilds_every_chart(page, demo) -> None:
    page.check("input[name=log-scale]")
    for title in ("loss", "accuracy", "Per-class accuracy", "ex_robust_acc"):
        expect(chart(page, title)).to_have_attribute("data-y-scale", "log")
        expect(chart(page, title).locator("canvas")).to_have_count(1)
    assert "log=1" in page.url
    assert page.errors == []


def test_custom_multi_line_chart_with_axis_names_and_scope(page, demo) -> None:
    card = page.locator(".custom-charts .chart-card[data-title='Per-class accuracy']")
    expect(card.locator("canvas")).to_have_count(1)
    assert legend_labels(card) == ["baseline", "augmented"]
    expect(card.locator(".axis-x")).to_have_text("x: class")
    expect(card.locator(".axis-y")).to_contain_text("baseline, augmented")
    expect(card.locator(".badge")).to_have_text("validation · line")
    assert card.get_attribute("data-x-ticks") == '["cat","dog","ship","truck"]'  # every category
    hover_rows(card, 2, 40)
    expect(card.locator(".chart-tooltip .tooltip-head")).to_have_text("class cat")
    single = page.locator(".custom-charts .chart-card[data-title='ROC']")
    assert legend_labels(single) == ["true positive rate"]
    expect(single.locator(".badge")).to_have_text("test · line")


def test_per_iteration_external_metrics_chart(page, demo) -> None:
    card = page.locator(".iteration-metrics .chart-card[data-title='ex_robust_acc']")
    expect(card.locator("canvas")).to_have_count(1)
    expect(card).to_have_attribute("data-points", "4")  # epochs 0, 3, 6, 9
    expect(card.locator(".axis-x")).to_have_text("x: iteration")


def test_tables_of_hyperparameters_ex_metrics_environment_source_weights(page, demo) -> None:
    hp = page.locator(".hyperparameters table.kv")
    expect(hp).to_contain_text("lr0.1")
    expect(hp).to_contain_text("optimizersgd")
    expect(page.locator(".ex-metrics")).to_contain_text("ex_cost12.5")
    expect(page.locator(".ex-metrics")).to_contain_text("ex_reviewedtrue")
    expect(page.locator(".environment")).to_contain_text("torch2.13.0")
    expect(page.locator(".source")).to_contain_text("git_commit3f2a9c1")
    rows = page.locator("table.weights tbody tr")
    expect(rows).to_have_count(10)
    first = rows.first.locator("td").all_inner_texts()
    assert re.fullmatch(r"[0-9a-f]{40}", first[0]) and first[1:3] == ["99", "0"]


def test_log_panel_colours_levels_and_ansi(page, demo) -> None:
    lines = page.locator(".log-lines .log-line")
    expect(lines).to_have_count(4)
    expect(lines.nth(0).locator(".log-message")).to_have_text("epoch 1/10 loss=1.2034")
    expect(lines.nth(1).locator(".ansi-fg-32")).to_have_text("validation improved")
    expect(lines.nth(1).locator(".log-message")).to_have_text("validation improved: acc=0.612")
    expect(lines.nth(2)).to_have_class(re.compile("level-warning"))
    expect(lines.nth(3)).to_have_class(re.compile("level-error"))
    expect(lines.nth(3).locator(".ansi-bold.ansi-fg-31")).to_have_text("CUDA OOM")
    assert "\x1b" not in page.locator(".log-lines").inner_text()


def test_a_thousand_metric_experiment_reads_once_and_draws_what_is_on_screen(
    page, ui_server
) -> None:
    store = ui_server.store
    project = store.create_project("thousand-keys").id
    e = store.create_experiment(project, display_name="wide").experiment_id
    it = np.arange(5, dtype=np.int64)
    chunks = tuple(
        SeriesChunk(
            f"metric_{k:04d}", "train", it, np.full(5, -1), it * 0.1 + k, np.full(5, time.time())
        )
        for k in range(1_000)
    )
    store.append_points(project, e, MetricBatch(uuid.uuid4().hex, 1, chunks))
    reads = SeriesReads(page)
    singles: list[str] = []
    page.on("request", lambda r: singles.append(r.url) if "/series/read?" in r.url else None)
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    cards = page.locator(".metrics .chart-card")
    expect(cards).to_have_count(1_000, timeout=30_000)
    expect(cards.last).to_have_attribute("data-points", "5", timeout=30_000)
    assert len(reads.bodies) == 1 and len(reads.lines()) == 1_000  # one request for the view
    assert singles == []
    # only the charts on or near the screen are drawn; the others wait for the scroll
    expect(cards.first).to_have_attribute("data-drawn", "true")
    expect(cards.first.locator("canvas")).to_have_count(1)
    drawn = page.locator(".metrics .chart-card[data-drawn=true]")
    assert 0 < drawn.count() < 60
    expect(cards.last).to_have_attribute("data-drawn", "false")
    cards.last.scroll_into_view_if_needed()
    expect(cards.last).to_have_attribute("data-drawn", "true")
    expect(cards.last.locator("canvas")).to_have_count(1)
    assert drawn.count() < 120  # the charts scrolled past are not built on the way
    assert len(reads.bodies) == 1  # drawing reads nothing more
