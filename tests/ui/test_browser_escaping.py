"""User text is shown literally: HTML in names, keys, chart labels and log lines never runs."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_seed import append_logs, metric_batch

pytestmark = pytest.mark.browser

PROJECT = """<img src=x onerror="window.__xss='project'">"""
EXPERIMENT = """<script>window.__xss='experiment'</script>"""
DESCRIPTION = "<b onmouseover=alert(1)>bold?</b>"
HP_KEY = "<img src=x onerror=alert('hp')>"
HP_VALUE = "<svg onload=alert('hp-value')>"
METRIC = """<img src=x onerror="window.__xss='metric'">"""
EX_KEY = "ex_<script>alert('ex')</script>"
CHART = """<img src=x onerror="window.__xss='chart'">"""
AXIS = "<script>alert('axis')</script>"
LINE_NAMES = ["<b>base</b>", "<i onclick=alert(1)>aug</i>"]
LOG_SCRIPT = "<script>window.__xss='log'</script>"
LOG_IMG = """\x1b[31m<img src=x onerror="window.__xss='log-img'">\x1b[0m done"""


@pytest.fixture
def hostile(ui_server) -> dict[str, int]:
    store, api = ui_server.store, ui_server.api
    project = store.create_project(PROJECT, "<script>alert('d')</script>").id
    ids = []
    for lr in (0.1, 0.2):
        exp = store.create_experiment(
            project,
            display_name=EXPERIMENT,
            description=DESCRIPTION,
            hyperparameters={HP_KEY: f"{HP_VALUE}{lr}", "lr": lr},  # varies: shown everywhere
            tags=["<i>tag</i>"],
        ).experiment_id
        store.append_points(project, exp, metric_batch(METRIC, "train", np.arange(5), np.ones(5)))
        api.experiments.update_metrics({EX_KEY: "<img src=x onerror=alert('v')>"}, project, exp)
        ids.append(exp)
    api.experiments.update_chart(
        CHART,
        project=project,
        experiment=ids[0],
        chart_x_name=AXIS,
        chart_y_name=LINE_NAMES,
        chart_x=["<b>cat</b>", "dog"],
        chart_y=[[1, 2], [3, 4]],
    )
    append_logs(store, project, ids[0], [("INFO", LOG_SCRIPT), ("ERROR", LOG_IMG)])
    return {"project": project, "first": ids[0], "second": ids[1]}


def assert_inert(page) -> None:
    assert page.evaluate("window.__xss") is None
    injected = (
        "main img, main script, main svg:not(.parallel-coordinates, .scatter-plot), main b, main i"
    )
    assert page.locator(injected).count() == 0
    assert [e for e in page.errors if not e.startswith("console: Failed to load")] == []


def test_projects_and_table_show_html_as_text(page, ui_server, hostile) -> None:
    page.goto(ui_server.url + "/")
    row = page.locator(f"table.projects tr[data-project-id='{hostile['project']}']")
    expect(row.locator("td.name")).to_have_text(PROJECT)
    assert_inert(page)
    page.goto(f"{ui_server.url}/#/projects/{hostile['project']}")
    expect(page.locator("table.experiments tbody tr")).to_have_count(2)
    expect(page.locator("table.experiments td.name").first).to_have_text(EXPERIMENT)
    headers = page.locator("table.experiments thead th").all_inner_texts()
    assert HP_KEY in headers and f"train/{METRIC}" in headers and EX_KEY in headers
    expect(page.locator("main h1")).to_have_text(PROJECT)
    assert_inert(page)


def test_experiment_page_shows_html_as_text(page, ui_server, hostile) -> None:
    page.goto(f"{ui_server.url}/#/projects/{hostile['project']}/experiments/{hostile['first']}")
    expect(page.locator(".log-lines .log-line")).to_have_count(2)
    expect(page.locator("main h1")).to_contain_text(EXPERIMENT)
    expect(page.locator(".experiment-head .description")).to_have_text(DESCRIPTION)
    expect(page.locator(".metrics .chart-card .chart-title")).to_have_text(METRIC)
    custom = page.locator(".custom-charts .chart-card")
    expect(custom.locator(".chart-title")).to_contain_text(CHART)
    expect(custom.locator(".axis-x")).to_have_text(f"x: {AXIS}")
    labels = custom.locator(".chart-legend .legend-label").all_inner_texts()
    assert labels == LINE_NAMES
    expect(page.locator(".hyperparameters")).to_contain_text(HP_KEY + HP_VALUE)
    expect(page.locator(".ex-metrics")).to_contain_text(EX_KEY)
    messages = page.locator(".log-message").all_inner_texts()
    assert messages == [LOG_SCRIPT, """<img src=x onerror="window.__xss='log-img'"> done"""]
    expect(page.locator(".log-message .ansi-fg-31")).to_have_text(
        """<img src=x onerror="window.__xss='log-img'">"""
    )
    assert page.title() == f"{EXPERIMENT} · mltrail"
    assert_inert(page)


def test_compare_view_shows_html_as_text(page, ui_server, hostile) -> None:
    page.goto(f"{ui_server.url}/#/projects/{hostile['project']}/compare?ids=1,2")
    expect(page.locator(".metrics .chart-card canvas")).to_have_count(1)
    expect(page.locator(".compare-table thead")).to_contain_text(f"#1 {EXPERIMENT}")
    assert HP_KEY in page.locator(".compare-table tbody th").all_inner_texts()
    labels = page.locator(".shared-legend .legend-label").all_inner_texts()
    assert labels == [f"#1 {EXPERIMENT}", f"#2 {EXPERIMENT}"]
    page.locator(".chart-card .u-over").first.hover(position={"x": 30, "y": 30})
    expect(page.locator(".chart-tooltip .tooltip-label").first).to_contain_text(EXPERIMENT)
    expect(page.locator(".parallel-coordinates text.axis-name").first).to_have_text(HP_KEY)
    assert_inert(page)


HOSTILE_NOTES = """# Findings
**lr 0.2** diverged, see [the report](https://example.com/report) and `grad_norm`.
<script>window.__xss='notes'</script>
<img src=x onerror="window.__xss='notes-img'">
- [click me](javascript:window.__xss='link')
- [tabbed](java\tscript:window.__xss='tab')
- [data](data:text/html,<script>alert(1)</script>)

```
<b>code stays text</b>
```
"""


def test_notes_render_markdown_and_run_nothing(page, ui_server) -> None:
    store = ui_server.store
    project = store.create_project("hostile-notes").id
    e = store.create_experiment(project, display_name="noted").experiment_id
    store.update_experiment(project, e, notes=HOSTILE_NOTES)
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    notes = page.locator(".notes-text")
    expect(notes.locator("h3")).to_have_text("Findings")
    expect(notes.locator("strong")).to_have_text("lr 0.2")
    expect(notes.locator("code").first).to_have_text("grad_norm")
    expect(notes.locator("a")).to_have_count(1)  # the https link only
    expect(notes.locator("a")).to_have_attribute("href", "https://example.com/report")
    expect(notes.locator("a")).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(notes.locator("li")).to_have_count(3)
    expect(notes.locator("li").first).to_have_text("[click me](javascript:window.__xss='link')")
    expect(notes.locator("pre code")).to_have_text("<b>code stays text</b>")
    expect(notes).to_contain_text("<script>window.__xss='notes'</script>")
    assert (
        notes.locator("script, img, b, [onerror], [href^='javascript'], [href^='data']").count()
        == 0
    )
    notes.locator("li").first.click()
    assert_inert(page)
