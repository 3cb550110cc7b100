"""The experiments table: columns, sort, filter, column choice, selection, 10,000 rows."""

from __future__ import annotations

import math
import re

import pytest
from playwright.sync_api import expect
from ui_seed import add_demo_project, add_training_run, bulk_experiments, metric_batch

pytestmark = pytest.mark.browser


def column_texts(page, column: str) -> list[str]:
    """The texts of one column, in row order."""
    header = page.locator("table.experiments thead th")
    names = [header.nth(i).get_attribute("data-column") for i in range(header.count())]
    index = names.index(column) + 1  # nth-child counts from 1
    return page.locator(f"table.experiments tbody tr td:nth-child({index})").all_inner_texts()


@pytest.fixture
def project(page, ui_server) -> int:
    ids = add_demo_project(ui_server)
    add_training_run(ui_server.store, ids["project"], "resnet34-lr0.05", lr=0.05)
    page.goto(f"{ui_server.url}/#/projects/{ids['project']}")
    expect(page.locator("table.experiments tbody tr")).to_have_count(3)
    return ids["project"]


def test_table_has_a_column_per_field_metric_and_ex_metric(page, project) -> None:
    headers = page.locator("table.experiments thead th").all_inner_texts()
    for name in ("#", "Name", "Status", "Created", "Duration", "lr"):
        assert any(h.startswith(name) for h in headers), (name, headers)
    assert "batch_size" not in headers  # the same in every run: in the columns menu only
    for name in ("train/loss", "validation/loss", "validation/accuracy", "ex_cost"):
        assert name in headers, (name, headers)
    assert column_texts(page, "name") == ["resnet18-lr0.1", "resnet18-lr0.01", "resnet34-lr0.05"]
    assert column_texts(page, "ex_cost") == ["12.5", "9.75", ""]
    assert column_texts(page, "status") == ["done", "done", "done"]
    assert re.fullmatch(r"0\.0570\d*", column_texts(page, "train/loss")[0])


def test_sort_by_any_column_both_ways(page, project) -> None:
    page.click("table.experiments th[data-column='hp.lr']")
    assert column_texts(page, "hp.lr") == ["0.01", "0.05", "0.1"]
    expect(page.locator("th[data-column='hp.lr']")).to_contain_text("▲")
    page.click("table.experiments th[data-column='hp.lr']")
    assert column_texts(page, "hp.lr") == ["0.1", "0.05", "0.01"]
    page.focus("table.experiments th[data-column='ex_cost']")
    page.keyboard.press("Enter")  # headers sort from the keyboard too
    assert column_texts(page, "ex_cost") == ["9.75", "12.5", ""]  # missing values last
    expect(page.locator("th[data-column='ex_cost']")).to_have_attribute("aria-sort", "ascending")
    assert "sort=ex_cost" in page.url  # bookmarkable
    page.reload()
    expect(page.locator("th[data-column='ex_cost']")).to_contain_text("▲")
    assert column_texts(page, "ex_cost") == ["9.75", "12.5", ""]


def test_filter_by_metric_comparison_and_text(page, project) -> None:
    page.fill("input.filter", "validation/loss < 0.21")
    assert column_texts(page, "name") == ["resnet18-lr0.1"]
    page.fill("input.filter", "lr >= 0.05, ex_cost > 10")
    assert column_texts(page, "name") == ["resnet18-lr0.1"]
    page.fill("input.filter", "resnet34")
    assert column_texts(page, "name") == ["resnet34-lr0.05"]
    page.fill("input.filter", "optimizer = sgd")
    expect(page.locator("table.experiments tbody tr")).to_have_count(3)
    page.fill("input.filter", "nonsense_column > 3")
    expect(page.locator(".filter-error")).to_have_text('Unknown column "nonsense_column" in filter')
    page.fill("input.filter", "lr > 1")
    expect(page.locator("table.experiments tbody")).to_contain_text(
        "No experiment matches the filter."
    )


def test_choose_columns_and_keep_the_choice(page, project) -> None:
    page.click(".columns-menu .popover-button")
    page.uncheck(".columns-list input[value='ex_cost']")
    page.uncheck(".columns-list input[value='created']")
    expect(page.locator("th[data-column='ex_cost']")).to_have_count(0)
    expect(page.locator("th[data-column='created']")).to_have_count(0)
    page.check(".columns-list input[value='hp.model']")
    page.reload()
    expect(page.locator("table.experiments tbody tr")).to_have_count(3)
    expect(page.locator("th[data-column='ex_cost']")).to_have_count(0)
    expect(page.locator("th[data-column='hp.model']")).to_have_count(1)
    expect(page.locator("th[data-column='train/loss']")).to_have_count(1)


def test_select_rows_to_compare(page, project) -> None:
    compare = page.locator("button.compare")
    expect(compare).to_be_disabled()
    page.check("tr[data-experiment-id='1'] input[type=checkbox]")
    page.check("tr[data-experiment-id='3'] input[type=checkbox]")
    expect(compare).to_have_text("Compare (2)")
    compare.click()
    expect(page).to_have_url(re.compile(rf"#/projects/{project}/compare\?ids=1,3$"))
    expect(page.locator(".compare-table thead")).to_contain_text("#1 resnet18-lr0.1")
    expect(page.locator(".compare-table thead")).to_contain_text("#3 resnet34-lr0.05")


def test_ten_thousand_experiments_page_sort_and_filter(page, ui_server) -> None:
    project = ui_server.store.create_project("sweep").id
    bulk_experiments(ui_server.store.url, project, 10_000)
    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(page.locator(".row-count")).to_have_text("Rows 1–50 of 10,000", timeout=30_000)
    expect(page.locator(".progress")).to_have_text("")
    assert page.locator("table.experiments tbody tr").count() == 50  # one page in the DOM
    expect(page.locator(".page-info")).to_have_text("Page 1 of 200")
    page.click("th[data-column='hp.lr']")
    page.click("th[data-column='hp.lr']")  # descending over all 10,000, not one page
    assert column_texts(page, "hp.lr")[0] == "0.9999"
    page.fill("input.filter", "lr >= 0.999")
    expect(page.locator(".row-count")).to_have_text("Rows 1–10 of 10 (filtered from 10,000)")
    page.fill("input.filter", "")
    page.click("button.next")
    expect(page.locator(".page-info")).to_have_text("Page 2 of 200")
    assert "page=2" in page.url


def test_non_finite_values_are_shown_not_crashed_on(page, ui_server) -> None:
    store = ui_server.store
    project = store.create_project("nan-project").id
    e = store.create_experiment(project, display_name="diverged").experiment_id
    store.append_points(project, e, metric_batch("loss", "train", [0, 1, 2], [1.0, 2.0, math.nan]))
    store.append_points(project, e, metric_batch("loss", "validation", [2], [math.inf]))
    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(page.locator("table.experiments tbody tr")).to_have_count(1)
    assert column_texts(page, "train/loss") == ["NaN"]
    assert column_texts(page, "validation/loss") == ["Infinity"]
    page.click("td.name a")
    loss = page.locator(".chart-card[data-title='loss']")
    expect(loss.locator("canvas")).to_have_count(1)
    expect(page.locator(".metric-summaries")).to_contain_text("last NaN")
    assert page.errors == []
