"""Managing runs where they are seen: rename, description, tags and notes from the experiment
page; archive, trash and restore from its actions menu and from the table (several at once),
with the table's Active / Archived / Trash / All choice. Every change goes through the
server's lifecycle routes and is read back from the store."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from mltrail.core.types import Status

pytestmark = pytest.mark.browser

NOTES = "## Why it diverged\nlr too high <img src=x onerror=alert(1)>"


@pytest.fixture
def project(ui_server) -> int:
    store = ui_server.store
    project = store.create_project("lifecycle").id
    for n in range(4):
        store.create_experiment(
            project,
            display_name=f"run-{n}",
            hyperparameters={"lr": 0.1 * (n + 1)},
            status=Status.DONE,
        )
    return project


def open_action(page, action: str) -> None:
    page.locator(".actions-menu .popover-button").click()
    page.locator(f".actions-menu .menu-item.action-{action}").click()


def test_edit_name_description_tags_and_notes(page, ui_server, project) -> None:
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/2")
    expect(page.locator("main h1")).to_contain_text("run-1")
    open_action(page, "edit")
    form = page.locator("form.edit-form")
    expect(form.locator("input[name=display_name]")).to_be_focused()
    form.locator("input[name=display_name]").fill("run-1 (lr 0.2, diverged)")
    form.locator("input[name=description]").fill("the one that blew up")
    form.locator("input[name=tags]").fill("diverged, lr-sweep, diverged")
    form.locator("textarea[name=notes]").fill(NOTES)
    form.locator("button.save").click()
    expect(form).to_have_count(0)
    expect(page.locator("main h1")).to_contain_text("run-1 (lr 0.2, diverged)")
    expect(page.locator(".experiment-head .tag")).to_have_text(["diverged", "lr-sweep"])
    notes = page.locator(".notes-text")  # markdown; HTML in it shown as text, never markup
    expect(notes.locator("h4")).to_have_text("Why it diverged")  # under the h2 "Notes"
    expect(notes.locator("p")).to_have_text("lr too high <img src=x onerror=alert(1)>")
    expect(notes.locator("img")).to_have_count(0)
    expect(page).to_have_title(re.compile(r"^run-1 \(lr 0\.2, diverged\)"))
    saved = ui_server.store.get_experiment(project, 2)
    assert (saved.display_name, saved.description) == (
        "run-1 (lr 0.2, diverged)",
        "the one that blew up",
    )
    assert sorted(saved.tags) == ["diverged", "lr-sweep"] and saved.notes == NOTES

    # a value the server refuses is named under the form, and nothing is written
    open_action(page, "edit")
    form.locator("input[name=tags]").fill("x" * 300)
    form.locator("button.save").click()
    expect(form.locator(".edit-error")).to_contain_text("tags")
    assert sorted(ui_server.store.get_experiment(project, 2).tags) == ["diverged", "lr-sweep"]
    form.locator("button.cancel").click()
    expect(form).to_have_count(0)
    page.goto(f"{ui_server.url}/#/projects/{project}?q=lr-sweep")  # plain words find tags
    expect(page.locator("td[data-column='name']")).to_have_text(["run-1 (lr 0.2, diverged)"])
    assert [e for e in page.errors if "status of 422" not in e] == []  # the refused save


def test_archive_and_restore_from_the_experiment_page(page, ui_server, project) -> None:
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/3")
    open_action(page, "archive")
    banner = page.locator(".state-banner")
    expect(banner).to_contain_text("archived")
    assert ui_server.store.get_experiment(project, 3).state == "archived"
    page.locator(".actions-menu .popover-button").click()
    expect(page.locator(".menu-item.action-archive")).to_be_disabled()
    page.keyboard.press("Escape")

    page.goto(f"{ui_server.url}/#/projects/{project}")
    names = page.locator("td[data-column='name']")
    expect(names).to_have_text(["run-0", "run-1", "run-3"])  # archived runs leave the list
    page.select_option("select[name=include]", "archived")
    expect(names).to_have_text(["run-2"])
    expect(page.locator("tr[data-experiment-id='3'] .state-badge")).to_have_text("archived")
    expect(page).to_have_url(re.compile(r"show=archived"))

    page.locator("td[data-column='name'] a").click()
    page.locator(".state-banner button.restore").click()
    expect(banner).to_have_count(0)
    assert ui_server.store.get_experiment(project, 3).state == "active"
    assert page.errors == []


def test_trash_and_restore_several_from_the_table(page, ui_server, project) -> None:
    page.goto(f"{ui_server.url}/#/projects/{project}")
    names = page.locator("td[data-column='name']")
    expect(names).to_have_count(4)
    trash = page.locator("button.bulk-delete")
    expect(trash).to_be_disabled()
    page.check("tr[data-experiment-id='1'] td.select input")
    page.check("tr[data-experiment-id='4'] td.select input")
    trash.click()
    expect(names).to_have_text(["run-1", "run-2"])
    assert [ui_server.store.get_experiment(project, e).state for e in (1, 4)] == ["deleted"] * 2
    expect(page.locator("button.compare")).to_have_text("Compare (0)")  # done with them

    page.select_option("select[name=include]", "deleted")
    expect(names).to_have_text(["run-0", "run-3"])
    expect(page.locator(".state-badge")).to_have_text(["in trash", "in trash"])
    expect(page.locator("button.bulk-archive")).to_have_count(0)  # not offered for the trash
    page.locator("input.select-all").check()
    page.locator("button.bulk-restore").click()
    expect(page.locator("table.experiments tbody")).to_contain_text("No experiment matches")
    page.select_option("select[name=include]", "all")
    expect(names).to_have_count(4)
    expect(page.locator(".state-badge")).to_have_count(0)
    assert page.errors == []
