"""System metrics (series under the ``system/`` prefix, as the SDK's sampler stores them) stay
out of the training charts: a collapsed section of their own on the experiment page and in
compare, read only when opened; hidden columns of their own group in the experiments table."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_seed import metric_batch

from mltrail.core.types import Status

pytestmark = pytest.mark.browser

SYSTEM_KEYS = ("system/cpu_percent", "system/memory_percent", "system/gpu0_utilization")


@pytest.fixture
def runs(ui_server) -> tuple[int, list[int]]:
    store = ui_server.store
    project = store.create_project("with-system-metrics").id
    ids = []
    for n in range(2):
        e = store.create_experiment(
            project, display_name=f"sys-{n}", hyperparameters={"lr": 0.1 * (n + 1)}
        ).experiment_id
        it = np.arange(200)
        store.append_points(project, e, metric_batch("loss", "train", it, 1 / (1 + it)))
        samples = np.arange(0, 200, 10)
        for k, key in enumerate(SYSTEM_KEYS):
            values = 20 + 10 * k + 5 * np.sin(samples / 30 + n)
            store.append_points(project, e, metric_batch(key, "train", samples, values))
        store.update_experiment(project, e, status=Status.DONE)
        ids.append(e)
    return project, ids


def system_reads(requests: list[str]) -> list[str]:
    return [u for u in requests if "/series/read" in u and "key=system%2F" in u]


def test_system_metrics_have_a_collapsed_section_of_their_own(page, ui_server, runs) -> None:
    project, ids = runs
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{ids[0]}")
    training = page.locator(".metrics .chart-card")
    expect(training).to_have_count(1)
    expect(training.first).to_have_attribute("data-title", "loss")
    section = page.locator("details.system-metrics")
    expect(section).to_be_visible()
    expect(section).not_to_have_attribute("open", "")
    expect(section.locator("summary")).to_contain_text("System metrics (3 charts)")
    assert system_reads(requests) == []  # nothing read while collapsed
    section.locator("summary").click()
    cards = section.locator(".chart-card")
    expect(cards).to_have_count(3)
    for card in cards.all():
        expect(card.locator("canvas")).to_be_visible()
    titles = sorted(c.get_attribute("data-title") for c in cards.all())
    assert titles == sorted(SYSTEM_KEYS)
    expect(cards.first).to_have_attribute("data-points", "20")
    assert len(system_reads(requests)) == 3

    # the table: system columns are hidden by default, in a group of their own
    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(page.locator("th[data-column='train/loss']")).to_be_visible()
    expect(page.locator("th[data-column^='train/system/']")).to_have_count(0)
    page.locator(".columns-menu .popover-button").click()
    group = page.locator(".columns-list fieldset", has_text="System metrics")
    expect(group.locator("label.column-choice")).to_have_count(3)
    group.locator("label.column-choice", has_text="cpu_percent").locator("input").check()
    expect(page.locator("th[data-column='train/system/cpu_percent']")).to_be_visible()

    # compare: the same split
    requests.clear()
    page.goto(f"{ui_server.url}/#/projects/{project}/compare?ids={ids[0]},{ids[1]}")
    expect(page.locator(".metrics .chart-card")).to_have_count(1)
    expect(page.locator(".metrics .chart-card canvas")).to_be_visible()
    assert system_reads(requests) == []
    section = page.locator("details.system-metrics")
    section.locator("summary").click()
    expect(section.locator(".chart-card")).to_have_count(3)
    expect(section.locator(".chart-card canvas").first).to_be_visible()
    assert len(system_reads(requests)) == 6  # 3 charts x 2 runs
    assert page.errors == []
