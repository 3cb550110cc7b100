"""The experiments table: columns, sort, filter, column choice, selection, 10,000 rows."""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect
from ui_seed import add_demo_project, add_training_run, metric_batch

from support.bulk import bulk_experiments

pytestmark = pytest.mark.browser


def column(page, name: str):
    """The cells of one column, in row order (expect(...).to_have_text([...]) waits for them)."""
    return page.locator(f"table.experiments tbody tr td[data-column='{name}']")


def column_texts(page, name: str) -> list[str]:
    return column(page, name).all_inner_texts()


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
    expect(column(page, "hp.lr")).to_have_text(["0.01", "0.05", "0.1"])
    expect(page.locator("th[data-column='hp.lr']")).to_contain_text("▲")
    page.click("table.experiments th[data-column='hp.lr']")
    expect(column(page, "hp.lr")).to_have_text(["0.1", "0.05", "0.01"])
    page.focus("table.experiments th[data-column='ex_cost']")
    page.keyboard.press("Enter")  # headers sort from the keyboard too
    expect(column(page, "ex_cost")).to_have_text(["9.75", "12.5", ""])  # missing values last
    expect(page.locator("th[data-column='ex_cost']")).to_have_attribute("aria-sort", "ascending")
    assert "sort=ex_cost" in page.url  # bookmarkable
    page.reload()
    expect(page.locator("th[data-column='ex_cost']")).to_contain_text("▲")
    expect(column(page, "ex_cost")).to_have_text(["9.75", "12.5", ""])
    expect(page.locator("th[data-column='tags']")).not_to_have_class(
        "sortable"
    )  # not server-sortable


def test_filter_with_the_servers_grammar_and_plain_words(page, project) -> None:
    names = column(page, "name")
    page.fill("input.filter", "metrics.validation/loss < 0.21")
    expect(names).to_have_text(["resnet18-lr0.1"])
    page.fill("input.filter", "params.lr >= 0.05 and metrics.ex_cost > 10")
    expect(names).to_have_text(["resnet18-lr0.1"])
    page.fill("input.filter", "resnet34")  # plain words: name or tag
    expect(names).to_have_text(["resnet34-lr0.05"])
    page.fill("input.filter", "params.optimizer = 'sgd'")
    expect(names).to_have_count(3)
    page.fill("input.filter", "params.lr >")
    expect(page.locator(".filter-error")).to_contain_text("filter: expected a value")
    expect(page.locator(".filter-error")).to_contain_text("position 11: end of input")
    page.fill("input.filter", "params.lr > 1")
    expect(page.locator("table.experiments tbody")).to_contain_text(
        "No experiment matches the filter."
    )
    expect(page.locator(".filter-error")).to_have_text("")


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


def test_ten_thousand_experiments_page_sort_and_filter_on_the_server(page, ui_server) -> None:
    project = ui_server.store.create_project("sweep").id
    bulk_experiments(ui_server.store.url, project, 10_000)
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if "/experiments?" in r.url else None)
    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(page.locator(".row-count")).to_have_text("Rows 1–50 of 10,000")
    assert page.locator("table.experiments tbody tr").count() == 50  # one page in the DOM
    expect(page.locator(".page-info")).to_have_text("Page 1 of 200")
    page.click("th[data-column='hp.lr']")
    expect(page.locator("th[data-column='hp.lr']")).to_contain_text("▲")
    page.click("th[data-column='hp.lr']")  # descending over all 10,000, not one page
    expect(column(page, "hp.lr").first).to_have_text("0.9999")
    page.fill("input.filter", "params.lr >= 0.999")
    expect(page.locator(".row-count")).to_have_text("Rows 1–10 of 10 matching the filter")
    page.fill("input.filter", "")
    expect(page.locator(".row-count")).to_have_text("Rows 1–50 of 10,000")
    page.click("button.next")
    expect(page.locator(".page-info")).to_have_text("Page 2 of 200")
    expect(column(page, "hp.lr").first).to_have_text("0.9949")
    assert "page=2" in page.url
    # the page never downloads the project: every read is one page of the server's answer
    limits = [int(parse_qs(urlparse(u).query)["limit"][0]) for u in reads]
    assert limits and max(limits) == 50, limits
    assert any("order_by=params" in u and "desc" in u for u in reads)


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


def test_a_live_refresh_racing_the_filters_read_clears_its_error(page, ui_server) -> None:
    """The table's live refresh and the filter's read in flight at once: the later one (the
    refresh) answers for the filter, so its answer clears the error the last filter showed."""
    ids = add_demo_project(ui_server)
    page.clock.install()
    page.goto(f"{ui_server.url}/#/projects/{ids['project']}")
    expect(page.locator("table.experiments tbody tr")).to_have_count(2)
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)  # timers fire only when run
    page.fill("input.filter", "params.lr >")
    page.clock.run_for(400)  # the typing pause (300 ms): the read answers 422
    expect(page.locator(".filter-error")).to_contain_text("expected a value")
    page.fill("input.filter", "params.lr > 1")
    # one step fires the typing pause's read and then the live refresh (every 4 s): both in flight
    page.clock.run_for(4500)
    expect(page.locator("table.experiments tbody")).to_contain_text(
        "No experiment matches the filter."
    )
    expect(page.locator(".filter-error")).to_have_text("")
