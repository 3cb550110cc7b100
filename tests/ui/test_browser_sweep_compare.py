"""Compare at sweep scale: 100 runs under one compact legend with 100 distinct colours and
charts that keep most of their card; 30 runs coloured and grouped by a hyperparameter (mean
line, min/max band); the side-by-side table's first column pinned. Saves
docs/screenshots/compare-view.png (30 runs)."""

from __future__ import annotations

import csv
import io
import itertools
import math

import pytest
from playwright.sync_api import expect
from ui_checks import SeriesReads
from ui_seed import SCREENSHOTS

pytestmark = pytest.mark.browser


def _oklab(colour: str) -> tuple[float, float, float]:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    lms = [
        math.cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b),
        math.cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b),
        math.cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b),
    ]
    matrix = [
        (0.2104542553, 0.7936177850, -0.0040720468),
        (1.9779984951, -2.4285922050, 0.4505937099),
        (0.0259040371, 0.7827717662, -0.8086757660),
    ]
    return tuple(sum(m * v for m, v in zip(row, lms, strict=True)) for row in matrix)


def compare_url(url: str, project: int, ids: list[int], extra: str = "") -> str:
    return f"{url}/#/projects/{project}/compare?ids={','.join(map(str, ids))}{extra}"


def test_100_runs_one_legend_distinct_colours_and_room_for_the_plot(
    page, ui_server, many_runs
) -> None:
    project, ids = many_runs
    api_reads: list[str] = []
    page.on("request", lambda r: api_reads.append(r.url) if "/api/v1/" in r.url else None)
    series = SeriesReads(page)
    page.goto(compare_url(ui_server.url, project, ids))
    cards = page.locator(".metrics .chart-card")
    expect(cards.locator("canvas")).to_have_count(2, timeout=30_000)
    for card in cards.all():
        expect(card).to_have_attribute("data-lines", "100", timeout=30_000)
        expect(card.locator(".chart-legend")).to_be_hidden()  # no legend of 100 names per chart
        canvas = card.locator(".u-wrap").bounding_box()
        box = card.bounding_box()
        assert canvas["height"] / box["height"] >= 0.6, (canvas, box)
    # the view costs a few requests, not one per run or per line: one search, one series read
    runs = [u for u in api_reads if f"/projects/{project}/experiments" in u]
    assert len(runs) == 1 and "filter=id+in" in runs[0], runs
    assert len(series.bodies) == 1 and len(series.lines()) == 200
    chips = page.locator(".shared-legend .legend-chip")
    expect(chips).to_have_count(100)
    legend = page.locator(".shared-legend").bounding_box()
    assert legend["height"] <= 140  # compact: it scrolls instead of pushing the charts down
    colours = chips.evaluate_all("els => els.map(e => e.dataset.colour)")
    assert len(set(colours)) == 100
    labs = [_oklab(c) for c in colours]
    nearest = min(math.dist(a, b) for a, b in itertools.combinations(labs, 2))
    assert nearest >= 0.03, nearest  # no two runs share a look-alike colour
    card = cards.first
    box = card.locator(".u-over").bounding_box()
    card.locator(".u-over").hover(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5})
    rows = card.locator(".chart-tooltip .tooltip-row")
    expect(rows).to_have_count(10)  # the runs nearest the pointer, not all 100
    expect(card.locator(".chart-tooltip .tooltip-more")).to_have_text("… 90 more")
    assert page.errors == []


def test_colour_and_group_runs_by_a_hyperparameter(page, ui_server, sweep) -> None:
    page.goto(compare_url(ui_server.url, sweep.project, sweep.ids))
    loss = page.locator(".chart-card[data-title='train/loss']")
    expect(loss).to_have_attribute("data-lines", "30", timeout=30_000)
    page.select_option("select[name=colour-by]", "optimizer")
    chips = page.locator(".shared-legend .legend-chip")
    colours = chips.evaluate_all("els => els.map(e => e.dataset.colour)")
    by_optimizer: dict[str, set[str]] = {}
    for run, colour in zip(sweep.ids, colours, strict=True):
        by_optimizer.setdefault(sweep.hyperparameters[run]["optimizer"], set()).add(colour)
    assert [len(c) for c in by_optimizer.values()] == [1, 1]  # one colour per value ...
    assert by_optimizer["adam"] != by_optimizer["sgd"]  # ... and different values differ

    page.check("input[name=group]")
    expect(loss).to_have_attribute("data-lines", "2")
    expect(loss).to_have_attribute("data-bands", "2")
    expect(chips).to_have_text(["optimizer=adam (15)", "optimizer=sgd (15)"])
    assert "colour=optimizer" in page.url and "group=1" in page.url
    with page.expect_download() as download:
        loss.locator("button.chart-csv").click()
    table = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert table[0] == [
        "iteration",
        "optimizer=adam (15 runs)",
        "optimizer=adam (15 runs) (min)",
        "optimizer=adam (15 runs) (max)",
        "optimizer=sgd (15 runs)",
        "optimizer=sgd (15 runs) (min)",
        "optimizer=sgd (15 runs) (max)",
    ]
    spread = 0.0
    for row in table[1:]:
        for mean, low, high in (row[1:4], row[4:7]):
            if mean:
                assert float(low) <= float(mean) <= float(high)
                spread = max(spread, float(high) - float(low))
    assert spread > 0.5  # a real band: the runs of a group differ
    page.reload()
    expect(page.locator(".chart-card[data-title='train/loss']")).to_have_attribute(
        "data-lines", "2", timeout=30_000
    )


def test_side_by_side_table_keeps_its_first_column(page, ui_server, sweep) -> None:
    page.goto(compare_url(ui_server.url, sweep.project, sweep.ids))
    scroll = page.locator(".compare-scroll")
    expect(scroll.locator("tr[data-key='lr'] td")).to_have_count(30)
    key = scroll.locator("tr[data-key='lr'] th")
    before = key.bounding_box()["x"]
    width = scroll.evaluate("el => el.scrollWidth - el.clientWidth")
    assert width > 1000  # 30 runs side by side do not fit
    scroll.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    assert abs(key.bounding_box()["x"] - before) < 1
    expect(key).to_be_visible()
    header = scroll.locator("thead th.run").first.bounding_box()
    assert header["width"] <= 210  # long run names are cut, with a title


def test_compare_view_screenshot_at_30_runs(page, ui_server, sweep) -> None:
    page.goto(compare_url(ui_server.url, sweep.project, sweep.ids, "&colour=lr"))
    expect(page.locator(".chart-card[data-title='train/loss']")).to_have_attribute(
        "data-lines", "30", timeout=30_000
    )
    expect(page.locator(".parallel-coordinates")).to_have_attribute("data-lines", "30")
    page.mouse.move(0, 0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare-view.png"), full_page=True)
    assert page.errors == []
