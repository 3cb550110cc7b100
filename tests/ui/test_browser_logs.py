"""The log panel: search, level filter, download of the whole log, full screen, a height the
reader drags, and progress bars (carriage returns) shown as a terminal would."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from ui_seed import append_logs

pytestmark = pytest.mark.browser

LINES = [
    ("DEBUG", "loading shard 1/4"),
    ("INFO", "epoch 1/3 loss=0.91"),
    ("INFO", "\x1b[32mcheckpoint saved\x1b[0m to ckpt-1.pt"),
    ("WARNING", "learning rate warm-up skipped"),
    ("INFO", "epoch 2/3 loss=0.52"),
    ("ERROR", "NaN in gradients of layer4, batch skipped"),
    ("INFO", "train 10%\rtrain 55%\rtrain 100%\r"),
    ("INFO", "epoch 3/3 loss=0.33"),
]


@pytest.fixture
def logs(page, ui_server):
    store = ui_server.store
    project = store.create_project("logs").id
    e = store.create_experiment(project, display_name="chatty").experiment_id
    append_logs(store, project, e, LINES)
    append_logs(store, project, e, [("INFO", f"step {i}") for i in range(300)])
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    lines = page.locator(".log-lines .log-line")
    expect(lines).to_have_count(len(LINES) + 300)
    return page.locator("section.logs")


def visible_messages(panel) -> list[str]:
    return panel.locator(".log-line:not([hidden]) .log-message").all_inner_texts()


def test_search_keeps_matching_lines_and_counts_them(logs) -> None:
    logs.locator("input[name=log-search]").fill("epoch")
    expect(logs.locator(".log-line:not([hidden])")).to_have_count(3)
    assert visible_messages(logs) == [
        "epoch 1/3 loss=0.91",
        "epoch 2/3 loss=0.52",
        "epoch 3/3 loss=0.33",
    ]
    expect(logs.locator(".log-matches")).to_have_text("3 of 308 lines")
    logs.locator("input[name=log-search]").fill("CHECKPOINT")  # case-insensitive, ANSI ignored
    assert visible_messages(logs) == ["checkpoint saved to ckpt-1.pt"]
    logs.locator("input[name=log-search]").fill("")
    expect(logs.locator(".log-line:not([hidden])")).to_have_count(308)
    expect(logs.locator(".log-matches")).to_have_text("")


def test_level_filter_shows_that_level_and_above(logs) -> None:
    logs.locator("select[name=log-level]").select_option("WARNING")
    assert visible_messages(logs) == [
        "learning rate warm-up skipped",
        "NaN in gradients of layer4, batch skipped",
    ]
    logs.locator("select[name=log-level]").select_option("ERROR")
    logs.locator("input[name=log-search]").fill("layer4")
    expect(logs.locator(".log-matches")).to_have_text("1 of 308 lines")
    logs.locator("input[name=log-search]").fill("warm-up")
    expect(logs.locator(".log-line:not([hidden])")).to_have_count(0)


def test_carriage_returns_show_the_last_state_of_the_line(logs) -> None:
    expect(logs.locator(".log-message").filter(has_text="train 100%")).to_have_text("train 100%")
    assert not any("10%" in m for m in logs.locator(".log-message").all_inner_texts())


def test_download_has_every_line(page, logs) -> None:
    logs.locator("input[name=log-search]").fill("epoch")  # the download ignores the filter
    with page.expect_download() as download:
        logs.locator("button.log-download").click()
    assert download.value.suggested_filename.endswith(".log")
    text = download.value.path().read_bytes().decode()  # no newline translation
    lines = text.rstrip("\n").split("\n")  # carriage returns kept as logged
    assert len(lines) == 308
    assert lines[6].endswith("stdout INFO train 10%\rtrain 55%\rtrain 100%\r")
    assert lines[0].endswith("stdout DEBUG loading shard 1/4")
    assert "stdout INFO checkpoint saved to ckpt-1.pt" in lines[2]  # colours stripped
    assert lines[-1].endswith("stdout INFO step 299")


def test_full_screen_and_back_with_escape(page, logs) -> None:
    button = logs.locator("button.log-fullscreen")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    box = logs.bounding_box()
    viewport = page.viewport_size
    assert box["x"] == 0 and box["y"] == 0
    assert box["width"] == viewport["width"] and box["height"] == viewport["height"]
    lines = logs.locator(".log-lines").bounding_box()
    assert lines["height"] > viewport["height"] * 0.7
    page.keyboard.press("Escape")
    expect(button).to_have_attribute("aria-pressed", "false")
    assert logs.bounding_box()["height"] < viewport["height"]


def test_the_reader_drags_the_panel_taller(page, logs) -> None:
    panel = logs.locator(".log-lines")
    panel.scroll_into_view_if_needed()
    box = panel.bounding_box()
    assert panel.evaluate("el => getComputedStyle(el).resize") == "vertical"
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] - 3)  # the grip
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] + 200, steps=8)
    page.mouse.up()
    assert panel.bounding_box()["height"] > box["height"] + 150
