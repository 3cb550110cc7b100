"""The experiment page's Artifacts section in headless Chromium: the tree with sizes, previews
of JSON, CSV, text and images, a download, and a weights hash opening every experiment holding
it with its stored checkpoint; saves docs/screenshots/experiment-artifacts.png."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from playwright.sync_api import expect
from ui_seed import SCREENSHOTS

from mltrail.core.artifacts import artifact_upload
from mltrail.store.http import HttpStore

pytestmark = pytest.mark.browser

HASH = "5e" * 20


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG (red pixels), made by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def stored(ui_server) -> dict[str, int]:
    store = HttpStore(ui_server.url, ui_server.token)
    project = store.create_project("artifacts-ui").id
    first = store.create_experiment(project, display_name="with-files").experiment_id
    second = store.create_experiment(project, display_name="same-weights").experiment_id
    files = {
        "metrics/summary.json": b'{"accuracy": 0.93, "classes": ["<b>cat</b>", "dog"]}',
        "predictions/test.csv": b"id,label,score\n1,cat,0.9\n2,<img src=x onerror=alert(1)>,0.8\n",
        "plots/loss.png": tiny_png(),
        "notes.txt": b"trained on 4 GPUs\n",
    }
    for path, data in files.items():
        store.put_artifact(project, first, path, io.BytesIO(data))
    checkpoint = artifact_upload(
        "checkpoints/epoch-0001.pt", epoch=1, iteration=40, weights_hash_value=HASH
    )
    store.put_artifact(project, first, checkpoint, io.BytesIO(b"weights" * 1000))
    store.link_weights_hash(project, second, HASH, iteration=12, epoch=0)
    store.close()
    return {"project": project, "first": first, "second": second}


def test_artifact_tree_previews_downloads_and_weights_links(page, ui_server, stored) -> None:
    page.goto(f"{ui_server.url}/#/projects/{stored['project']}/experiments/{stored['first']}")
    tree = page.locator(".artifacts .artifact-tree")
    expect(tree.locator("li.file")).to_have_count(5)
    expect(tree.locator("li.folder summary").first).to_contain_text("checkpoints/")
    expect(tree.locator("li.file[data-path='checkpoints/epoch-0001.pt']")).to_contain_text(
        "6.8 KiB"
    )

    def show(path: str):
        tree.locator(f"li.file[data-path='{path}'] button.preview").click()
        return page.locator(".artifact-preview")

    expect(show("metrics/summary.json").locator("pre")).to_contain_text('"accuracy": 0.93')
    box = show("predictions/test.csv")
    expect(box.locator("table.csv-preview th")).to_have_text(["id", "label", "score"])
    expect(box.locator("table.csv-preview td").nth(4)).to_have_text("<img src=x onerror=alert(1)>")
    image = show("plots/loss.png").locator("img.artifact-image")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") == 4
    expect(show("notes.txt").locator("pre")).to_have_text("trained on 4 GPUs\n")

    with page.expect_download() as download:
        tree.locator("li.file[data-path='notes.txt'] button.download").click()
    assert download.value.suggested_filename == "notes.txt"
    with open(download.value.path(), "rb") as handle:
        assert handle.read() == b"trained on 4 GPUs\n"

    weights = page.locator(".table-card.weights")
    expect(weights.locator("td.checkpoint")).to_have_text("checkpoints/epoch-0001.pt")
    weights.locator("details.weights-links summary").click()
    holders = weights.locator("ul.holders li")
    expect(holders).to_have_count(2)
    expect(holders.nth(1)).to_contain_text(f"experiment {stored['second']}")
    expect(weights.locator("ul.checkpoints button")).to_have_text(
        "Download checkpoints/epoch-0001.pt"
    )
    # the running experiment's refresh (every 2 s: tables, then its artifacts read) keeps the
    # opened hash open with its holders (it rebuilt the card and closed it, a loaded machine's
    # test failing to click the link)
    with page.expect_response(lambda r: r.url.endswith("/artifacts"), timeout=30_000):
        pass
    expect(weights.locator("details.weights-links")).to_have_attribute("open", "")
    expect(holders.nth(1)).to_be_visible()
    holders.nth(1).locator("a").click()
    expect(page.locator("main h1")).to_contain_text("same-weights")
    page.go_back()
    expect(tree.locator("li.file")).to_have_count(5)
    show("metrics/summary.json")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".artifacts").screenshot(path=str(SCREENSHOTS / "experiment-artifacts.png"))
    assert page.errors == []
