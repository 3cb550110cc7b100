"""System metrics (series under the ``system/`` prefix, recorded by the SDK's sampler in real
training processes) stay out of the training charts: a collapsed section of their own on the experiment page and in
compare, read only when opened; hidden columns of their own group in the experiments table."""

from __future__ import annotations

import os
import textwrap

import pytest
from playwright.sync_api import expect
from ui_checks import SeriesReads

from support.trainers import launch_trainer

pytestmark = pytest.mark.browser

TRAINER = textwrap.dedent(
    """
    import sys, time
    import mltrail
    with mltrail.start("with-system-metrics", sys.argv[1], hyperparams={"lr": float(sys.argv[2])}) as exp:
        print("STARTED", exp.project_id, exp.experiment_id, flush=True)
        for step in range(20):
            exp.log({"loss": 1.0 / (1 + step)})
            time.sleep(0.1)
    """
)


@pytest.fixture
def runs(ui_server, tmp_path) -> tuple[int, list[int]]:
    """Two real training runs with the SDK's system-metrics sampler on (every 0.2 s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {
        "MLTRAIL_URL": ui_server.url,
        "MLTRAIL_TOKEN": ui_server.token,
        "MLTRAIL_HOME": str(tmp_path),
        "MLTRAIL_SYSTEM_METRICS_INTERVAL": "0.2",
    }
    ids, project = [], 0
    for n in range(2):
        proc, project, e = launch_trainer(TRAINER, [f"sys-{n}", str(0.1 * (n + 1))], env)
        assert proc.wait(60) == 0, proc.stderr.read()  # type: ignore[union-attr]
        ids.append(e)
    return project, ids


def system_keys(ui_server, project: int, experiment: int) -> list[str]:
    summaries = ui_server.store.list_series(project, experiment)
    return sorted(s.key for s in summaries if s.key.startswith("system/"))


def test_system_metrics_have_a_collapsed_section_of_their_own(page, ui_server, runs) -> None:
    project, ids = runs
    reads = SeriesReads(page)
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{ids[0]}")
    training = page.locator(".metrics .chart-card")
    expect(training).to_have_count(1)
    expect(training.first).to_have_attribute("data-title", "loss")
    keys = system_keys(ui_server, project, ids[0])
    assert len(keys) >= 5, keys  # CPU, memory, disk, network at least
    section = page.locator("details.system-metrics")
    expect(section).to_be_visible()
    expect(section).not_to_have_attribute("open", "")
    expect(section.locator("summary")).to_contain_text(f"System metrics ({len(keys)} charts)")
    assert reads.lines("system/") == []  # nothing read while collapsed
    section.locator("summary").click()
    cards = section.locator(".chart-card")
    expect(cards).to_have_count(len(keys))
    for card in cards.all():
        expect(card.locator("canvas")).to_be_visible()
    assert sorted(c.get_attribute("data-title") for c in cards.all()) == keys
    assert int(cards.first.get_attribute("data-points")) >= 2
    assert len(reads.lines("system/")) == len(keys)

    # the table: system columns are hidden by default, in a group of their own
    page.goto(f"{ui_server.url}/#/projects/{project}")
    expect(page.locator("th[data-column='train/loss']")).to_be_visible()
    expect(page.locator("th[data-column^='train/system/']")).to_have_count(0)
    page.locator(".columns-menu .popover-button").click()
    group = page.locator(".columns-list fieldset", has_text="System metrics")
    expect(group.locator("label.column-choice")).to_have_count(len(keys))
    group.locator("input[value='train/system/cpu/percent']").check()
    expect(page.locator("th[data-column='train/system/cpu/percent']")).to_be_visible()

    # compare: the same split
    reads.clear()
    page.goto(f"{ui_server.url}/#/projects/{project}/compare?ids={ids[0]},{ids[1]}")
    expect(page.locator(".metrics .chart-card")).to_have_count(1)
    expect(page.locator(".metrics .chart-card canvas")).to_be_visible()
    assert reads.lines("system/") == []
    section = page.locator("details.system-metrics")
    section.locator("summary").click()
    expect(section.locator(".chart-card")).to_have_count(len(keys))
    expect(section.locator(".chart-card canvas")).to_have_count(len(keys))
    for card in section.locator(".chart-card").all():
        expect(card).to_have_attribute("data-lines", "2")
    assert len(reads.lines("system/")) == 2 * len(keys)  # a line per run
    assert page.errors == []
