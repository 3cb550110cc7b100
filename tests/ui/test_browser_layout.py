"""Every view: a dark theme under prefers-color-scheme: dark, no sideways scrolling on a
390 px phone, and no serious or critical accessibility violation (axe-core, vendored under
tests/ui/vendor and injected by the test browser only). Saves docs/screenshots/dark-mode.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect
from ui_seed import SCREENSHOTS, add_demo_project, open_page

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def views(ui_server, sweep) -> list[tuple[str, str, str]]:
    """(name, route, selector that shows the view is drawn) for every view."""
    demo = add_demo_project(ui_server)
    p, d = sweep.project, demo["project"]
    ids = ",".join(map(str, sweep.ids))
    job = ui_server.store.submit_job(d, ["python", "train.py", "--lr", "0.1"], queue="layout-q")
    archived = ui_server.store.create_experiment(d, display_name="archived")
    ui_server.store.update_experiment(d, archived.experiment_id, notes="why: see the log")
    ui_server.store.archive_experiment(d, archived.experiment_id)
    return [
        ("projects", "/#/", "table.projects"),
        ("experiments", f"/#/projects/{p}", "table.experiments tbody tr"),
        ("failed run", f"/#/projects/{p}/experiments/{sweep.failed}", ".failure-log"),
        ("running run", f"/#/projects/{p}/experiments/{sweep.running}", ".log-line"),
        ("custom charts", f"/#/projects/{d}/experiments/{demo['first']}", ".custom-charts canvas"),
        (
            "compare",
            f"/#/projects/{p}/compare?ids={ids}",
            # read (charts far below the screen are drawn when scrolled to)
            ".chart-card[data-title='validation/loss'][data-points]",
        ),
        ("archived run", f"/#/projects/{d}/experiments/{archived.experiment_id}", ".state-banner"),
        ("trash", f"/#/projects/{p}?show=deleted", "table.experiments tbody tr"),
        ("jobs", f"/#/jobs?project={d}", "table.jobs tbody tr[data-job-id]"),
        ("job", f"/#/jobs/{job.job_id}", ".job-command"),
        ("not found", "/#/projects/999999", ".not-found"),
    ]


# Every chart card has read its data (its data-points are set, or it says it has none): the
# charts of a view settle after their data arrives. Polled at each animation frame.
CHARTS_SETTLED = """() => [...document.querySelectorAll('.chart-card')].every(
    (card) => card.dataset.points !== undefined || card.dataset.drawn === 'empty')"""


def drawn(page, url: str, route: str, ready: str) -> None:
    page.goto(url + route)
    expect(page.locator(ready).first).to_be_visible(timeout=30_000)
    page.wait_for_function(CHARTS_SETTLED, timeout=30_000)


def luminance(css: str) -> float:
    r, g, b = (int(v) / 255 for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_dark_theme_follows_the_system(browser, ui_server, views) -> None:
    for page in open_page(browser, ui_server.token, color_scheme="dark"):
        for name, route, ready in views:
            drawn(page, ui_server.url, route, ready)
            body = page.evaluate(
                "[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]"
            )
            assert luminance(body[0]) < 0.1 and luminance(body[1]) > 0.7, (name, body)
            for cell in page.locator("table.data td, table.data th").all()[:5]:
                assert (
                    luminance(cell.evaluate("el => getComputedStyle(el).backgroundColor")) < 0.15
                ), name
            if name == "compare":
                expect(page.locator(".metrics canvas")).to_have_count(5)
                page.mouse.move(0, 0)
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "dark-mode.png"))
        assert [e for e in page.errors if "404" not in e] == []  # the not-found view's 404


def test_no_view_scrolls_sideways_on_a_phone(browser, ui_server, views) -> None:
    for page in open_page(browser, ui_server.token, viewport=PHONE):
        for name, route, ready in views:
            drawn(page, ui_server.url, route, ready)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (name, width)
    for page in open_page(browser, None, viewport=PHONE):
        drawn(page, ui_server.url, "/#/login", "form.login-form")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def serious_violations(page) -> list[str]:
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> {[n['target'] for n in v['nodes'][:3]]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violation_on_any_view(browser, ui_server, views, scheme) -> None:
    found = {}
    for page in open_page(browser, ui_server.token, color_scheme=scheme, scripts=(AXE,)):
        for name, route, ready in views:
            drawn(page, ui_server.url, route, ready)
            found[name] = serious_violations(page)
        drawn(page, ui_server.url, *views[1][1:])
        page.locator(".columns-menu .popover-button").click()  # an open menu too
        found["open menu"] = serious_violations(page)
        page.locator(".columns-menu .popover-button").click()
        page.locator(".saved-views .popover-button").click()  # saved views, with chart tools
        found["saved views"] = serious_violations(page)
        drawn(page, ui_server.url, *views[2][1:])
        page.locator(".actions-menu .popover-button").click()
        page.locator(".menu-item.action-edit").click()  # the edit form
        found["edit form"] = serious_violations(page)
    for page in open_page(browser, None, color_scheme=scheme, scripts=(AXE,)):
        drawn(page, ui_server.url, "/#/login", "form.login-form")
        found["login"] = serious_violations(page)
    assert {name: v for name, v in found.items() if v} == {}
