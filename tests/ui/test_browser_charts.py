"""Charts that tell the truth at sweep scale: point markers, a tooltip that names its
iteration, legend values, readable ticks, categories and bars, and zoom that re-reads the
visible range of a 5,000,000-point series at full resolution."""

from __future__ import annotations

import hashlib
import itertools
import re

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_checks import colour_pixels, drag_zoom, hover_rows, is_series_read, series_answer, ticks
from ui_seed import metric_batch

pytestmark = pytest.mark.browser


def chart(page, title: str):
    return page.locator(f".metrics .chart-card[data-title='{title}']")


def legend_colour(card, label: str) -> str:
    item = card.locator(".chart-legend .legend-item").filter(has_text=label).first
    return item.get_attribute("data-colour")


def open_run(page, url: str, project: int, experiment: int) -> None:
    page.goto(f"{url}/#/projects/{project}/experiments/{experiment}")
    expect(page.locator(".metrics .chart-card canvas").first).to_be_visible()


def test_a_single_point_series_is_drawn(page, ui_server, sweep) -> None:
    open_run(page, ui_server.url, sweep.project, sweep.ids[0])
    accuracy = chart(page, "accuracy")
    expect(accuracy.locator(".chart-legend .legend-label")).to_have_text(["validation", "test"])
    # test/accuracy holds one point: without a marker nothing of its colour is drawn
    assert colour_pixels(accuracy, legend_colour(accuracy, "test")) >= 12
    assert colour_pixels(accuracy, legend_colour(accuracy, "validation")) >= 60  # line + markers


def test_a_single_ex_point_sits_in_the_middle_of_its_frame(page, ui_server) -> None:
    store, api = ui_server.store, ui_server.api
    project = store.create_project("single-ex").id
    e = store.create_experiment(project, display_name="one-eval").experiment_id
    store.append_points(project, e, metric_batch("loss", "train", np.arange(300), np.ones(300)))
    digest = hashlib.sha1(b"single-ex").hexdigest()
    store.link_weights_hash(project, e, digest, iteration=120, epoch=1)
    api.experiments.update_metrics_per_iteration(digest, {"ex_holdout": 0.83})
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    card = page.locator(".iteration-metrics .chart-card[data-title='ex_holdout']")
    expect(card.locator("canvas")).to_have_count(1)
    x_min, x_max = float(card.get_attribute("data-x-min")), float(card.get_attribute("data-x-max"))
    assert x_min < 120 < x_max and abs((x_min + x_max) / 2 - 120) < 1 and x_max - x_min <= 40
    y = [float(t) for t in ticks(card, "y") if t]
    assert min(y) < 0.83 < max(y) and max(y) - min(y) < 1  # a frame around the value
    assert colour_pixels(card, card.locator(".legend-item").get_attribute("data-colour")) >= 12
    # iterations are whole: a frame of a few around one point has no tick between two
    single = store.create_experiment(project, display_name="single-step").experiment_id
    store.append_points(project, single, metric_batch("loss", "train", [0], [0.5]))
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{single}")
    one = page.locator(".metrics .chart-card[data-title='loss']")
    expect(one.locator("canvas")).to_have_count(1)
    x_ticks = [t for t in ticks(one, "x") if t]
    assert x_ticks and all(re.fullmatch(r"-?\d+", t) for t in x_ticks), x_ticks


def test_tooltip_names_its_iteration_and_flags_values_from_elsewhere(
    page, ui_server, sweep
) -> None:
    open_run(page, ui_server.url, sweep.project, sweep.ids[0])
    loss = chart(page, "loss")
    box = loss.locator(".u-over").bounding_box()
    flagged = 0
    for i in range(12):
        head, rows = hover_rows(loss, box["width"] * (0.04 + i * 0.08), box["height"] / 2)
        assert head.startswith("iteration ")
        shown = int(head.removeprefix("iteration ").replace(",", ""))
        assert rows
        for row in rows:
            if row["x"] != shown:  # a value from another iteration says which
                assert row["at"] == f"at iteration {row['x']}", (head, row)
                flagged += 1
            else:
                assert row["at"] is None
            assert row["value"] not in ("", "--")
    assert flagged  # validation has a point every 500 iterations: some hovers fall between


def test_legend_values_are_numbers_before_any_hover(page, ui_server, sweep) -> None:
    open_run(page, ui_server.url, sweep.project, sweep.ids[0])
    values = page.locator(".metrics .chart-legend .legend-value").all_inner_texts()
    assert len(values) == 4  # accuracy: validation, test; loss: train, validation
    for text in values:
        float(text)  # raises on "--" or ""


def test_ticks_are_distinct_and_log_axes_have_no_zero(page, ui_server) -> None:
    store = ui_server.store
    project = store.create_project("ticks").id
    e = store.create_experiment(project, display_name="tiny-values").experiment_id
    it = np.arange(200)
    store.append_points(project, e, metric_batch("lr", "train", it, 0.0031 + it * 0.0000015))
    store.append_points(project, e, metric_batch("loss", "train", it, 10.0 ** (-it / 40)))
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    lr = chart(page, "lr")
    expect(lr.locator("canvas")).to_have_count(1)
    labels = [t for t in ticks(lr, "y") if t]
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    values = [float(t) for t in labels]
    assert values == sorted(values) and values[0] >= 0.0031 and values[-1] <= 0.0034
    page.check("input[name=log-scale]")
    loss = chart(page, "loss")
    expect(loss).to_have_attribute("data-y-scale", "log")
    labels = [t for t in ticks(loss, "y") if t]
    assert labels and "0" not in labels, labels
    assert all(float(t) > 0 for t in labels)
    assert "1e-5" in labels or "1e-4" in labels  # the small decades are named, not rounded away


def test_x_tick_labels_of_a_long_series_do_not_touch(page, ui_server, sweep) -> None:
    open_run(page, ui_server.url, sweep.project, sweep.long)
    card = chart(page, "grad_norm")
    expect(card).to_have_attribute("data-lines", "1")
    labels = ticks(card, "x")
    assert labels[-1] in ("4M", "5M", "4.5M") and len(labels) >= 3, labels
    layout = card.evaluate(
        """(card, labels) => {
          const u = card.querySelector('.u-over');
          const ctx = document.createElement('canvas').getContext('2d');
          ctx.font = '12px system-ui, sans-serif';
          const [min, max] = [Number(card.dataset.xMin), Number(card.dataset.xMax)];
          const parse = (t) => Number(t.replace(/[kMGT]$/, '')) *
            ({k: 1e3, M: 1e6, G: 1e9, T: 1e12}[t.slice(-1)] ?? 1);
          return labels.filter(Boolean).map((t) => {
            const centre = (parse(t) - min) / (max - min) * u.clientWidth;
            const width = ctx.measureText(t).width;
            return [centre - width / 2, centre + width / 2];
          });
        }""",
        labels,
    )
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(layout)]
    assert min(gaps) >= 6, (labels, gaps)


def _category_run(ui_server, chart_type: str, names: list[str]) -> tuple[int, int]:
    store, api = ui_server.store, ui_server.api
    project = store.create_project(f"categories-{chart_type}").id
    e = store.create_experiment(project, display_name="per-class").experiment_id
    api.experiments.update_chart(
        "per class",
        project=project,
        experiment=e,
        chart_type=chart_type,
        chart_x=names,
        chart_y=[[0.5 + i / 40, 0.6 + i / 50] for i in range(len(names))],
        chart_x_name="class",
        chart_y_name=["precision", "recall"],
        chart_scope="validation",
    )
    return project, e


def test_every_category_keeps_its_label(page, ui_server) -> None:
    names = [
        f"class-{n}"
        for n in (
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
            "person",
            "bicycle",
        )
    ]
    project, e = _category_run(ui_server, "line", names)
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    card = page.locator(".custom-charts .chart-card")
    expect(card.locator("canvas")).to_have_count(1)
    assert ticks(card, "x") == names


def test_bar_chart_type_draws_bars(page, ui_server) -> None:
    project, e = _category_run(ui_server, "bar", ["cat", "dog", "ship", "truck"])
    page.goto(f"{ui_server.url}/#/projects/{project}/experiments/{e}")
    card = page.locator(".custom-charts .chart-card")
    expect(card.locator("canvas")).to_have_count(1)
    expect(card).to_have_attribute("data-kind", "bar")
    expect(card.locator(".badge")).to_have_text("validation · bar")
    assert ticks(card, "x") == ["cat", "dog", "ship", "truck"]
    colour = card.locator(".legend-item").first.get_attribute("data-colour")
    assert colour_pixels(card, colour, min_alpha=150) > 4000  # filled bars, not a 1.5 px line


def test_zoom_re_reads_the_visible_range_at_full_resolution(page, ui_server, sweep) -> None:
    def grad_norm_read(ranged: bool):
        return page.expect_response(
            lambda r: (
                is_series_read(r.request)
                and any(s.get("key") == "grad_norm" for s in r.request.post_data_json["series"])
                and (r.request.post_data_json.get("start") is not None) == ranged
            )
        )

    with grad_norm_read(False) as first:
        open_run(page, ui_server.url, sweep.project, sweep.long)
    whole = series_answer(first.value, "grad_norm")
    card = chart(page, "grad_norm")
    expect(card).to_have_attribute("data-downsampled", "true")
    assert whole["total"] == 5_000_000 and whole["downsampled"]

    with grad_norm_read(True) as read:
        drag_zoom(page, card, 0.40, 0.02)  # about 100,000 of the 5,000,000 iterations
    zoom = series_answer(read.value, "grad_norm")
    start, end = zoom["start"], zoom["end"]
    assert 50_000 < end - start < 200_000, (start, end)
    its = zoom["iterations"]
    assert its and start <= min(its) and max(its) <= end  # only the visible range
    assert len(its) >= 0.8 * zoom["max_points"]  # at the chart's resolution ...
    before = sum(1 for i in whole["iterations"] if start <= i <= end)
    assert len(its) > 10 * before  # ... not the whole read's handful of points stretched
    expect(card.locator(".chart-note")).to_contain_text("Zoomed to iterations")
    expect(card).to_have_attribute("data-points", str(len(its)))

    with grad_norm_read(True):
        drag_zoom(page, card, 0.30, 0.06)  # a few thousand iterations
    with grad_norm_read(True) as read:
        drag_zoom(page, card, 0.30, 0.06)  # a few hundred: fewer points than pixels
    last = series_answer(read.value, "grad_norm")
    assert last["downsampled"] is False and last["end"] - last["start"] < last["max_points"]
    assert last["iterations"] == list(range(last["start"], last["end"] + 1))  # every point
    expect(card.locator(".chart-note")).to_contain_text("every stored point shown")
    expect(card).to_have_attribute("data-downsampled", "false")

    with grad_norm_read(False) as read:
        card.locator(".u-over").dblclick()  # back to the whole series
    assert series_answer(read.value, "grad_norm")["downsampled"]
    expect(card).to_have_attribute("data-read-start", "")
    assert page.errors == []
