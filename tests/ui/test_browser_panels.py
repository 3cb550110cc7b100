"""Chart panels sized and reordered from their own tools, kept in the browser; saved views of
the experiments table and the compare view, reopened from a list (localStorage, per project)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_seed import metric_batch

from mltrail.core.types import Status

pytestmark = pytest.mark.browser


def panel_order(page) -> list[str]:
    return page.locator(".metrics .chart-grid > .chart-card").evaluate_all(
        "cards => cards.map(c => c.dataset.panel)"
    )


@pytest.fixture
def project(ui_server) -> int:
    store = ui_server.store
    project = store.create_project("panels").id
    for n in range(3):
        e = store.create_experiment(
            project, display_name=f"run-{n}", hyperparameters={"lr": n}, status=Status.DONE
        ).experiment_id
        for key in ("acc", "loss", "lr"):
            store.append_points(project, e, metric_batch(key, "train", np.arange(50), np.ones(50)))
    return project


def test_chart_panels_resize_and_reorder_and_keep_their_layout(page, ui_server, project) -> None:
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/1")
    cards = page.locator(".metrics .chart-card")
    expect(cards.locator("canvas")).to_have_count(3)
    assert panel_order(page) == ["acc", "loss", "lr"]
    page.get_by_role("button", name="Move loss earlier").click()
    assert panel_order(page) == ["loss", "acc", "lr"]
    expect(page.get_by_role("button", name="Move loss earlier")).to_be_focused()
    page.get_by_role("button", name="Move acc later").click()
    assert panel_order(page) == ["loss", "lr", "acc"]
    medium = page.locator(".chart-card[data-panel=lr] canvas").bounding_box()
    page.get_by_label("Size of acc").select_option("l")
    acc = page.locator(".chart-card[data-panel=acc]")
    expect(acc).to_have_attribute("data-size", "l")
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-panel=acc] canvas')"
        ".getBoundingClientRect().height > 380"
    )
    large = acc.locator("canvas").bounding_box()
    assert large["width"] > 1.5 * medium["width"]  # a whole row
    page.get_by_label("Size of lr").select_option("s")
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-panel=lr] canvas')"
        ".getBoundingClientRect().height < 200"
    )
    # the layout is the project's: another experiment's page opens with it, after a reload too
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/2")
    page.reload()
    expect(page.locator(".metrics .chart-card canvas")).to_have_count(3)
    assert panel_order(page) == ["loss", "lr", "acc"]
    expect(page.locator(".chart-card[data-panel=acc]")).to_have_attribute("data-size", "l")
    expect(page.get_by_label("Size of lr")).to_have_value("s")
    assert page.errors == []


def open_saved(page) -> None:
    page.locator(".saved-views .popover-button").click()
    expect(page.locator(".saved-views .popover-panel")).to_be_visible()


def test_saved_views_reopen_a_table_filter_and_a_compare_view(page, ui_server, project) -> None:
    rows = page.locator("table.experiments tbody tr")
    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(rows).to_have_count(3)
    page.locator("input.filter").fill("run-1")
    expect(rows).to_have_count(1)
    open_saved(page)
    expect(page.locator(".saved-list")).to_contain_text("No saved views yet.")
    page.get_by_label("Name of the current view").fill("only run-1")
    page.locator(".saved-save").click()
    expect(page.locator(".saved-list .saved-open")).to_have_text(["only run-1"])

    page.goto(f"{ui_server.url}/#/projects/{project}/compare?ids=1,3&colour=lr")
    expect(page.locator(".metrics .chart-card canvas")).to_have_count(3)
    open_saved(page)
    page.get_by_label("Name of the current view").fill("first and last")
    page.keyboard.press("Enter")
    expect(page.locator(".saved-list .saved-open")).to_have_text(["first and last", "only run-1"])

    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(rows).to_have_count(3)
    open_saved(page)
    page.locator(".saved-open", has_text="only run-1").click()
    expect(rows).to_have_count(1)
    expect(page.locator("input.filter")).to_have_value("run-1")
    open_saved(page)
    page.locator(".saved-open", has_text="first and last").click()
    expect(page.locator("main h1")).to_have_text("Compare 2 experiments")
    expect(page.locator("select[name=colour-by]")).to_have_value("lr")
    open_saved(page)
    page.get_by_role("button", name="Delete the saved view only run-1").click()
    expect(page.locator(".saved-list .saved-open")).to_have_text(["first and last"])
    page.reload()
    open_saved(page)
    expect(page.locator(".saved-list .saved-open")).to_have_text(["first and last"])
    assert page.errors == []


def test_metric_filter_and_full_screen_chart(page, ui_server, project) -> None:
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/1")
    cards = page.locator(".metrics .chart-card")
    expect(cards.locator("canvas")).to_have_count(3)
    page.get_by_label("Show only the charts whose metric name contains").fill("L")
    expect(cards.filter(visible=True)).to_have_count(2)  # loss, lr
    page.get_by_label("Show only the charts whose metric name contains").fill("lo")
    expect(cards.filter(visible=True)).to_have_count(1)
    expect(cards.filter(visible=True)).to_have_attribute("data-panel", "loss")
    expect(page).to_have_url(re.compile(r"[?&]metrics=lo\b"))
    page.reload()
    expect(cards.filter(visible=True)).to_have_count(1)
    expect(page.get_by_label("Show only the charts whose metric name contains")).to_have_value("lo")

    loss = page.locator(".chart-card[data-panel=loss]")
    expect(loss.locator("canvas")).to_have_count(1)
    small = loss.locator("canvas").bounding_box()
    page.get_by_role("button", name="Full screen: loss").click()
    expect(page.get_by_role("button", name="Full screen: loss")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-panel=loss] canvas')"
        ".getBoundingClientRect().height > 600"
    )
    box = loss.bounding_box()
    assert box["x"] == 0 and box["y"] == 0 and box["width"] == page.viewport_size["width"]
    assert loss.locator("canvas").bounding_box()["width"] > 2 * small["width"]
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-panel=loss] canvas')"
        ".getBoundingClientRect().height < 300"
    )
    assert page.errors == []
