"""Hyperparameters against metrics: parallel coordinates (an axis per swept hyperparameter,
the metric last, a line per run) and a scatter plot, in the compare and the project views.
Saves docs/screenshots/parallel-coordinates.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from ui_seed import SCREENSHOTS

pytestmark = pytest.mark.browser


def axis_names(plot) -> list[str]:
    return plot.locator(".pc-axis").evaluate_all("gs => gs.map(g => g.dataset.axis)")


def test_parallel_coordinates_and_scatter_in_compare(page, ui_server, sweep) -> None:
    ids = ",".join(map(str, sweep.ids))
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}/compare?ids={ids}")
    plot = page.locator(".parallel-coordinates")
    expect(plot).to_have_attribute("data-lines", "30")
    assert axis_names(plot) == ["hp.batch", "hp.lr", "hp.optimizer", "validation/accuracy"]
    lr_ticks = plot.locator(".pc-axis[data-axis='hp.lr'] .axis-tick").evaluate_all(
        "ts => ts.map(t => t.textContent)"
    )
    assert lr_ticks == ["0.0001", "0.0003", "0.001", "0.003", "0.01"]
    # each run's line passes through its own values: its tooltip says so
    run = sweep.ids[3]
    title = plot.locator(f".pc-line[data-id='{run}'] title").text_content()
    hp = sweep.hyperparameters[run]
    assert f"lr = {hp['lr']:g}" in title and f"optimizer = {hp['optimizer']}" in title
    colours = plot.locator(".pc-line").evaluate_all("ps => ps.map(p => p.getAttribute('stroke'))")
    chips = page.locator(".shared-legend .legend-chip").evaluate_all(
        "cs => cs.map(c => c.dataset.colour)"
    )
    assert colours == chips  # the runs keep their colours across the page
    scatter = page.locator(".scatter-plot")
    expect(scatter).to_have_attribute("data-points", "30")
    page.locator(".parallel-coordinates").scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".hparams").screenshot(path=str(SCREENSHOTS / "parallel-coordinates.png"))
    page.select_option("select[name=plot-metric]", "train/loss")
    expect(page.locator(".pc-axis").last).to_have_attribute("data-axis", "train/loss")
    page.select_option("select[name=plot-x]", "hp.lr")
    expect(page.locator(".scatter-plot")).to_have_attribute(
        "aria-label", "train/loss against lr for 30 runs"
    )
    assert page.errors == []


def test_plots_in_the_project_view_follow_the_filter(page, ui_server, sweep) -> None:
    page.goto(f"{ui_server.url}/#/projects/{sweep.project}")
    expect(page.locator("table.experiments tbody tr")).to_have_count(30)
    page.click(".plots-panel summary")
    plot = page.locator(".parallel-coordinates")
    expect(plot).to_have_attribute("data-lines", "30")
    assert axis_names(plot)[-1] == "validation/accuracy"
    page.fill("input.filter", "params.batch = 512")
    expect(plot).to_have_attribute("data-lines", "10")
    expect(page.locator(".scatter-plot")).to_have_attribute("data-points", "10")
    # coloured by the metric: the best run is at the bright end of the scale
    strokes = plot.locator(".pc-line").evaluate_all("ps => ps.map(p => p.getAttribute('stroke'))")
    assert len(set(strokes)) > 5 and all(s.startswith("rgb(") for s in strokes)
