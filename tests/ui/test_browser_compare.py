"""The compare view of a few runs: overlaid series under one shared legend, hyperparameters
side by side with the differences highlighted (the sweep-scale checks are in
test_browser_sweep_compare.py)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from ui_seed import add_demo_project, add_training_run

pytestmark = pytest.mark.browser


@pytest.fixture
def compare_url(page, ui_server) -> str:
    ids = add_demo_project(ui_server)
    third = add_training_run(ui_server.store, ids["project"], "resnet34-lr0.05", lr=0.05)
    url = f"{ui_server.url}/#/projects/{ids['project']}/compare?ids=1,2,{third}"
    page.goto(url)
    expect(page.locator(".metrics .chart-card canvas")).to_have_count(3)
    return url


def test_metrics_overlaid_one_line_per_experiment(page, compare_url) -> None:
    titles = page.locator(".metrics .chart-card").evaluate_all(
        "cards => cards.map(c => c.dataset.title)"
    )
    assert titles == ["train/loss", "validation/accuracy", "validation/loss"]
    card = page.locator(".chart-card[data-title='validation/loss']")
    expect(card).to_have_attribute("data-lines", "3")
    expect(card.locator(".chart-legend")).to_be_hidden()  # one legend for every chart
    labels = page.locator(".shared-legend .legend-chip .legend-label").all_inner_texts()
    assert labels == ["#1 resnet18-lr0.1", "#2 resnet18-lr0.01", "#3 resnet34-lr0.05"]
    expect(page.locator("main h1")).to_have_text("Compare 3 experiments")
    assert page.errors == []


def test_hyperparameters_side_by_side_with_differences_highlighted(page, compare_url) -> None:
    table = page.locator(".compare-table")
    lr = table.locator("tr[data-key='lr']")
    expect(lr).to_have_class("differs")
    assert lr.locator("td").all_inner_texts() == ["0.1", "0.01", "0.05"]
    expect(table.locator("tr[data-key='optimizer']")).to_have_class("same")
    expect(table.locator("tr[data-key='batch_size']")).to_have_class("same")
    expect(table.locator("tr[data-key='ex_cost']")).to_have_class("differs")
    assert table.locator("tr[data-key='ex_cost'] td").all_inner_texts() == ["12.5", "9.75", "—"]
    background = lr.locator("td").first.evaluate("el => getComputedStyle(el).backgroundColor")
    same = table.locator("tr[data-key='optimizer'] td").first.evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert background != same  # the highlight is visible, not just a class
    page.check("input[name=only-differences]")
    expect(table.locator("tr[data-key='optimizer']")).to_have_count(0)
    expect(table.locator("tr[data-key='lr']")).to_have_count(1)
    assert "diff=1" in page.url


def test_compare_axis_toggle_applies_to_every_chart(page, compare_url) -> None:
    page.click("button.axis-toggle[data-axis='epoch']")
    for card in page.locator(".metrics .chart-card").all():
        expect(card).to_have_attribute("data-x-axis", "epoch")
        expect(card).to_have_attribute("data-points", "10")


def test_compare_against_another_metric(page, compare_url) -> None:
    page.get_by_label("x axis: another metric").select_option("accuracy")
    validation = page.locator(".chart-card[data-title='validation/loss']")
    expect(validation).to_have_attribute("data-x-axis", "accuracy")
    expect(validation).to_have_attribute("data-lines", "3")  # each run against its own accuracy
    train = page.locator(".chart-card[data-title='train/loss']")  # no train/accuracy
    expect(train.locator(".empty-chart")).to_be_visible()
    expect(train.locator(".chart-note")).to_contain_text("Lines without accuracy are hidden.")
    assert "x=metric" in page.url and page.errors == []
