"""Projects list, project creation, the login form and the not-found page, in Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from ui_seed import add_demo_project, open_page

pytestmark = pytest.mark.browser


def test_projects_list_shows_counts_and_opens_a_project(page, ui_server) -> None:
    ids = add_demo_project(ui_server)
    ui_server.store.create_project("empty-project", "nothing yet")
    page.goto(ui_server.url + "/")
    row = page.locator(f"table.projects tr[data-project-id='{ids['project']}']")
    expect(row.locator("td.name")).to_have_text("cifar10-resnet")
    expect(row.locator("td.count")).to_have_text("2")
    expect(row.locator("td.description")).to_have_text("Image classification baselines")
    empty = page.locator("table.projects tr", has_text="empty-project")
    expect(empty.locator("td.count")).to_have_text("0")
    expect(page.locator("#user")).to_contain_text("admin")
    row.locator("td.name a").click()
    expect(page).to_have_url(re.compile(rf"#/projects/{ids['project']}$"))
    expect(page.locator("main h1")).to_have_text("cifar10-resnet")
    assert page.errors == []


def test_an_empty_server_says_how_to_start(browser, empty_ui_server) -> None:
    for page in open_page(browser, empty_ui_server.token):
        page.goto(empty_ui_server.url + "/")
        expect(page.locator(".empty")).to_contain_text("No projects yet")
        expect(page.locator("table.projects")).to_have_count(0)


def test_create_project_from_the_form(page, ui_server) -> None:
    page.goto(ui_server.url + "/")
    page.fill("input[name=display_name]", "speech-models")
    page.fill("input[name=description]", "wav2vec fine-tuning")
    page.click("button:has-text('Create project')")
    expect(page.locator("main h1")).to_have_text("speech-models")
    created = [p for p in ui_server.store.list_projects() if p.display_name == "speech-models"]
    assert len(created) == 1 and created[0].description == "wav2vec fine-tuning"


def test_create_project_shows_the_servers_message_with_the_field(page, ui_server) -> None:
    page.goto(ui_server.url + "/")
    page.fill("input[name=display_name]", "   ")
    page.click("button:has-text('Create project')")
    error = page.locator(".create-project .form-error")
    expect(error).to_contain_text("display_name")
    assert all(p.display_name.strip() for p in ui_server.store.list_projects())


def test_missing_token_shows_the_login_form_then_the_page(anonymous_page, ui_server) -> None:
    ids = add_demo_project(ui_server)
    page = anonymous_page
    page.goto(f"{ui_server.url}/#/projects/{ids['project']}")
    expect(page.locator("form.login-form")).to_be_visible()
    expect(page.locator(".login-reason")).to_contain_text("needs an API token")
    page.fill("input[name=token]", "mlt_not-a-real-token")
    page.click("form.login-form button")
    expect(page.locator("form.login-form .form-error")).to_have_text("That token was not accepted.")
    assert page.evaluate("localStorage.getItem('mltrail.token')") is None
    page.fill("input[name=token]", ui_server.token)
    page.click("form.login-form button")
    expect(page.locator("main h1")).to_have_text("cifar10-resnet")  # the page that asked
    assert page.evaluate("localStorage.getItem('mltrail.token')") == ui_server.token


def test_revoked_token_goes_back_to_the_login_form(browser, ui_server) -> None:
    token = ui_server.store.auth.create_token("admin")
    for page in open_page(browser, token):
        page.goto(ui_server.url + "/")
        expect(page.locator("main h1")).to_have_text("Projects")
        ui_server.store.auth.revoke_token(token)
        page.goto(ui_server.url + "/#/projects/1")
        expect(page.locator("form.login-form")).to_be_visible()
        expect(page.locator(".login-reason")).to_contain_text("rejected or has expired")


def test_sign_out_forgets_the_token(page, ui_server) -> None:
    page.goto(ui_server.url + "/")
    page.click("#user button:has-text('Sign out')")
    expect(page.locator("form.login-form")).to_be_visible()
    assert page.evaluate("localStorage.getItem('mltrail.token')") is None


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("/#/projects/9999", "9999"),
        ("/#/projects/{project}/experiments/9999", "9999"),
        ("/#/projects/{project}/compare?ids=9999", "9999"),
        ("/#/no/such/page", "/no/such/page"),
        ("/projects/9999", "9999"),
    ],
)
def test_unknown_project_or_experiment_shows_not_found(page, ui_server, route, message) -> None:
    project = ui_server.store.create_project("p").id
    page.goto(ui_server.url + route.format(project=project))
    expect(page.locator(".not-found h1")).to_have_text("Not found")
    expect(page.locator(".not-found .message")).to_contain_text(message)
    expect(page.locator(".not-found a")).to_have_text("Back to projects")
    assert not [e for e in page.errors if "pageerror" in e]


def test_embedded_mode_needs_no_token(browser, embedded_ui) -> None:
    embedded_ui.store.create_project("local-project")
    for page in open_page(browser, None):
        page.goto(embedded_ui.url + "/")
        expect(page.locator("table.projects td.name")).to_have_text("local-project")
        expect(page.locator("form.login-form")).to_have_count(0)
        expect(page.locator("#user button")).to_have_count(0)  # nothing to sign out of


def test_the_links_the_mlflow_client_prints_open_the_run_and_the_project(page, ui_server) -> None:
    ids = add_demo_project(ui_server)
    p, e = ids["project"], ids["first"]
    page.goto(f"{ui_server.url}/#/experiments/{p}/runs/{p}-{e}")  # "View run at ..."
    expect(page.locator("main h1")).to_contain_text("resnet18-lr0.1")
    page.goto(f"{ui_server.url}/#/experiments/{p}")  # "View experiment at ..."
    expect(page.locator("main h1")).to_have_text("cifar10-resnet")
    assert page.errors == []
