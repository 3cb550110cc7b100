"""The experiments table at sweep scale: the swept hyperparameters first (constant ones in
the columns menu), pinned checkbox and name columns, select-all, long names cut with a
title, a columns menu that behaves, CSV downloads of the table and of a chart."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_seed import SWEEP_CONSTANTS, metric_batch

pytestmark = pytest.mark.browser


def headers(page) -> list[str]:
    return page.locator("table.experiments thead th").evaluate_all(
        "ths => ths.map(th => th.dataset.column).filter(Boolean)"
    )


@pytest.fixture
def table(page, ui_server, sweep):
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}")
    expect(page.locator("table.experiments tbody tr")).to_have_count(30)
    return page.locator("table.experiments")


def test_swept_hyperparameters_come_first_and_constant_ones_wait_in_the_menu(page, table) -> None:
    shown = headers(page)
    hps = [c for c in shown if c.startswith("hp.")]
    assert hps == ["hp.batch", "hp.lr", "hp.optimizer"]  # the three swept, nothing constant
    assert shown.index("hp.batch") < shown.index("train/loss")
    page.click(".columns-menu .popover-button")
    menu = page.locator(".columns-menu .popover-panel")
    choices = menu.locator("fieldset").filter(has_text="Hyperparameters").locator("input")
    order = choices.evaluate_all("els => els.map(e => e.value)")
    constants = [f"hp.{k}" for k in sorted(SWEEP_CONSTANTS)]
    assert order == ["hp.batch", "hp.lr", "hp.optimizer", *constants]
    for key in constants:
        expect(menu.locator(f"input[value='{key}']")).not_to_be_checked()
    expect(menu.locator("label[data-column='hp.model']")).to_contain_text("(same in every run)")


def test_checkbox_and_name_stay_while_the_table_scrolls_sideways(page, table) -> None:
    page.set_viewport_size({"width": 700, "height": 900})
    scroll = page.locator(".table-scroll").first
    first = page.locator("table.experiments tbody tr").first
    box, name = first.locator("td.select").bounding_box(), first.locator("td.name").bounding_box()
    assert scroll.evaluate("el => el.scrollWidth > el.clientWidth")
    scroll.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    assert abs(first.locator("td.select").bounding_box()["x"] - box["x"]) < 1
    assert abs(first.locator("td.name").bounding_box()["x"] - name["x"]) < 1
    header = page.locator("table.experiments th.pinned-name").bounding_box()
    assert abs(header["x"] - name["x"]) < 1


def test_select_all_selects_the_page_the_filter_keeps(page, table) -> None:
    select_all = page.locator("input.select-all")
    select_all.check()
    expect(page.locator("button.compare")).to_have_text("Compare (30)")
    select_all.uncheck()
    expect(page.locator("button.compare")).to_have_text("Compare (0)")
    page.fill("input.filter", "params.optimizer = 'adam'")
    expect(page.locator("table.experiments tbody tr")).to_have_count(15)
    page.locator("input.select-all").check()
    expect(page.locator("button.compare")).to_have_text("Compare (15)")
    page.fill("input.filter", "")
    expect(page.locator("input.select-all")).to_have_js_property("indeterminate", True)
    page.locator("button.compare").click()
    expect(page.locator(".shared-legend .legend-chip")).to_have_count(15)


def test_a_long_name_is_cut_and_kept_in_its_title(page, ui_server) -> None:
    store = ui_server.store
    project = store.create_project("long-names").id
    name = "resnet50-" + "-".join(f"block{i}" for i in range(28))
    for n, lr in enumerate((0.1, 0.2)):
        e = store.create_experiment(
            project, display_name=name if n == 0 else "short", hyperparameters={"lr": lr}
        ).experiment_id
        store.append_points(project, e, metric_batch("loss", "train", np.arange(3), np.ones(3)))
    page.goto(f"{ui_server.url}/#/projects/{project}")
    cell = page.locator("tr[data-experiment-id='1'] td.name")
    expect(cell).to_have_attribute("title", name)
    assert cell.bounding_box()["width"] <= 260
    loss = page.locator("tr[data-experiment-id='1'] td[data-column='train/loss']").bounding_box()
    assert loss["x"] + loss["width"] <= page.viewport_size["width"]  # metrics stay on screen


def test_columns_menu_closes_on_escape_and_outside_and_fits_the_viewport(page, table) -> None:
    button = page.locator(".columns-menu .popover-button")
    panel = page.locator(".columns-menu .popover-panel")
    button.click()
    expect(panel).to_be_visible()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(button).to_be_focused()
    button.click()
    expect(panel).to_be_visible()
    page.mouse.click(5, page.viewport_size["height"] - 5)
    expect(panel).to_be_hidden()
    page.set_viewport_size({"width": 390, "height": 640})
    button.click()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert box["y"] + box["height"] <= 640
    panel.locator("input[name=column-search]").fill("drop")
    expect(panel.locator("label.column-choice:not([hidden])")).to_have_count(1)
    panel.locator("input[value='hp.dropout']").check()
    expect(page.locator("th[data-column='hp.dropout']")).to_have_count(1)


def test_csv_download_of_the_table(page, table, sweep) -> None:
    page.fill("input.filter", "params.optimizer = 'sgd'")
    expect(page.locator("table.experiments tbody tr")).to_have_count(15)
    with page.expect_download() as download:
        page.click("button.download-csv")
    assert download.value.suggested_filename.endswith("-experiments.csv")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(rows) == 15  # what the filter keeps, every page of it
    by_id = {int(r["#"]): r for r in rows}
    for run, row in by_id.items():
        hp = sweep.hyperparameters[run]
        assert float(row["hp.lr"]) == hp["lr"] and int(row["hp.batch"]) == hp["batch"]
        assert row["hp.optimizer"] == "sgd"
    assert by_id[sweep.failed]["Status"] == "failed"
    assert float(by_id[sweep.ids[15]]["train/loss"]) > 0  # exact value, not rounded text


def test_csv_download_of_a_chart(page, ui_server, sweep) -> None:
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}/experiments/{sweep.ids[0]}")
    card = page.locator(".metrics .chart-card[data-title='loss']")
    expect(card.locator("canvas")).to_have_count(1)
    with page.expect_download() as download:
        card.locator("button.chart-csv").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0] == ["iteration", "train", "validation"]
    validation = [(int(r[0]), float(r[2])) for r in rows[1:] if r[2]]
    assert [x for x, _ in validation] == list(range(499, 5000, 500))
    assert len(rows) - 1 == int(card.get_attribute("data-points"))
