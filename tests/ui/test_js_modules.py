"""The UI's pure JavaScript modules, imported in the real browser and called directly."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture
def js(page, ui_server):
    """``js(module, body)`` runs ``body`` with the module imported as ``m``; returns its value."""
    page.goto(ui_server.url + "/")
    page.wait_for_selector("main h1")

    def run(module: str, body: str):
        return page.evaluate(f"async () => {{ const m = await import('/ui/js/{module}'); {body} }}")

    return run


def test_decode_floats_restores_non_finite_values(js) -> None:
    out = js(
        "api.js",
        """const v = m.decodeFloats({a: {"$float": "NaN"}, b: [1, {"$float": "-Infinity"}],
            c: {"$float": "Infinity"}, d: [1, 2, null], e: {"$float": "x", "y": 1}});
           return [Number.isNaN(v.a), v.b[1], v.c, v.d, v.e];""",
    )
    assert out[0] is True and out[1] == -math.inf and out[2] == math.inf
    assert out[3] == [1, 2, None] and out[4] == {"$float": "x", "y": 1}


def test_filter_language(js) -> None:
    out = js(
        "table.js",
        """const rows = [
             {experiment_id: 1, display_name: "a", status: "done", tags: ["x"],
              hyperparameters: {lr: 0.1, opt: "sgd"}, metrics: {"train/loss": 0.4}, ex_metrics: {}},
             {experiment_id: 2, display_name: "b", status: "failed", tags: [],
              hyperparameters: {lr: 0.01, opt: "adam"}, metrics: {"train/loss": 0.7},
              ex_metrics: {ex_ok: true}},
             {experiment_id: 3, display_name: "c", status: "done", tags: [],
              hyperparameters: {}, metrics: {"train/loss": NaN}, ex_metrics: {}}];
           const cols = m.buildColumns(rows);
           const ids = (q) => { const f = m.parseFilter(q, cols);
             return f.error || rows.filter(f.test).map((e) => e.experiment_id); };
           return {
             lt: ids("train/loss < 0.5"), ge: ids("lr >= 0.05"), eq: ids("opt = ADAM"),
             ne: ids("status != done"), like: ids("opt ~ ad"), text: ids("x"), both: ids("done, lr > 0"),
             loss: ids("loss > 0.5"), bool: ids("ex_ok = true"), bad: ids("nope < 1"),
             sorted: m.sortRows(rows, cols.find((c) => c.id === "train/loss"), true)
               .map((e) => e.experiment_id),
           };""",
    )
    assert out["lt"] == [1] and out["ge"] == [1] and out["eq"] == [2] and out["ne"] == [2]
    assert out["like"] == [2] and out["text"] == [1] and out["both"] == [1]
    assert out["loss"] == [2]  # a unique metric can be named without its phase
    assert out["bool"] == [2]
    assert out["bad"] == 'Unknown column "nope" in filter'
    assert out["sorted"] == [2, 1, 3]  # NaN sorts with the missing values, last


def test_smoothing_is_debiased_and_keeps_gaps(js) -> None:
    out = js("charts.js", "return m.smooth([2, 2, null, 2, 4], 0.9);")
    assert out[:2] == [2, 2] and out[2] is None
    assert 2 < out[4] < 4
    assert js("charts.js", "return m.smooth([1, 5], 0);") == [1, 5]


def test_epoch_axis_takes_the_last_value_of_each_epoch(js) -> None:
    out = js(
        "charts.js",
        """return m.seriesPoints({iterations: [0, 1, 2, 3, 4], epochs: [0, 0, 1, 1, null],
             values: [5, 6, 7, 8, 9]}, "epoch");""",
    )
    assert out == {"xs": [0, 1], "ys": [6, 8]}


def test_custom_chart_with_string_x_becomes_categories(js) -> None:
    out = js(
        "charts.js",
        """const c = m.customChartLines({name: "n", scope: "test", type: "line", x_name: "cls",
             y_names: ["a", "b"], x: ["cat", "dog"], y: [[1, 2], [3, 4]]});
           return [c.options.categories, c.lines.map((l) => [l.label, l.xs, l.ys])];""",
    )
    assert out == [["cat", "dog"], [["a", [0, 1], [1, 3]], ["b", [0, 1], [2, 4]]]]


def test_ansi_rendering(js) -> None:
    out = js(
        "ansi.js",
        r"""const f = m.renderAnsi("\x1b[1;32mok\x1b[0m plain \x1b[38;5;196mred\x1b[39m"
             + " \x1b[38;2;1;2;3mrgb\x1b[0m\x1b[2K<b>x</b>");
           const d = document.createElement("div"); d.append(f);
           return [d.textContent, [...d.children].map((s) => [s.className, s.style.color,
             s.textContent])];""",
    )
    text, spans = out
    assert text == "ok plain red rgb<b>x</b>"
    assert spans == [
        ["ansi-bold ansi-fg-32", "", "ok"],
        ["", "rgb(255, 0, 0)", "red"],
        ["", "rgb(1, 2, 3)", "rgb"],
    ]


def test_value_formatting(js) -> None:
    out = js(
        "format.js",
        """return [NaN, Infinity, -Infinity, 3, 0.123456789, 1.5e-7, true, "s", null, {a: 1}]
             .map(m.formatValue).concat([m.formatDuration(5.25), m.formatDuration(125),
             m.formatDuration(7322)]);""",
    )
    assert out == [
        "NaN",
        "Infinity",
        "-Infinity",
        "3",
        "0.123457",
        "1.5000e-7",
        "true",
        "s",
        "",
        '{"a":1}',
        "5.3s",
        "2m 05s",
        "2h 02m",
    ]
