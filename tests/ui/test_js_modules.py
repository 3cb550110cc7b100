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


def test_table_queries_are_the_servers_grammar(js) -> None:
    out = js(
        "experiment-list.js",
        """return {
             free: m.serverFilter("resnet 50%"), typed: m.serverFilter("metrics.train/loss < 0.5"),
             quote: m.serverFilter("bob's"), none: m.serverFilter("  "),
             like: m.serverFilter("name like 'a%'"),
             orders: ["id", "tags", "hp.batch size", "train/loss", "ex_cost", "hp.a`b"]
               .map((id) => m.orderField({id})),
           };""",
    )
    # in the grammar's string a doubled backslash is one: the LIKE pattern escapes the % sign
    assert out["free"] == r"name ilike '%resnet 50\\%%' or tags ilike '%resnet 50\\%%'"
    assert out["typed"] == "metrics.train/loss < 0.5" and out["like"] == "name like 'a%'"
    assert out["quote"] == r"name ilike '%bob\'s%' or tags ilike '%bob\'s%'"
    assert out["none"] is None
    assert out["orders"] == [
        "id",
        None,
        "params.`batch size`",
        "metrics.`train/loss`",
        "metrics.`ex_cost`",
        "params.`a``b`",
    ]


def test_smoothing_is_debiased_and_keeps_gaps(js) -> None:
    out = js("charts.js", "return m.smooth([2, 2, null, 2, 4], 0.9);")
    assert out[:2] == [2, 2] and out[2] is None
    assert 2 < out[4] < 4
    assert js("charts.js", "return m.smooth([1, 5], 0);") == [1, 5]


def test_epoch_axis_takes_the_last_value_of_each_epoch(js) -> None:
    out = js(
        "chart-data.js",
        """return m.seriesPoints({iterations: [0, 1, 2, 3, 4], epochs: [0, 0, 1, 1, null],
             values: [5, 6, 7, 8, 9]}, "epoch");""",
    )
    assert out == {"xs": [0, 1], "ys": [6, 8]}


def test_custom_chart_with_string_x_becomes_categories(js) -> None:
    out = js(
        "chart-data.js",
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


def test_palette_gives_distinct_colours_that_do_not_move(js) -> None:
    out = js(
        "palette.js",
        """const a = m.palette(100, "light"), b = m.palette(10, "light");
           const labs = a.map((c) => m.oklab([1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16) / 255)));
           let nearest = Infinity;
           for (let i = 0; i < labs.length; i++) for (let j = i + 1; j < labs.length; j++)
             nearest = Math.min(nearest, Math.hypot(...labs[i].map((v, k) => v - labs[j][k])));
           return {unique: new Set(a).size, stable: b.every((c, i) => c === a[i]), nearest,
                   dark: m.palette(100, "dark").length, alpha: m.withAlpha("#ff8000", 0.5)};""",
    )
    assert out["unique"] == 100 and out["stable"] and out["dark"] == 100
    assert out["nearest"] >= 0.035  # OKLab distance: no two of the first 100 look alike
    assert out["alpha"] == "rgba(255,128,0,0.5)"


def test_tick_labels_are_distinct_exact_and_short(js) -> None:
    out = js(
        "ticks.js",
        """return [m.tickLabels([0.0031, 0.0032, 0.0033], 0.0001),
                   m.tickLabels([0, 0.25, 0.5, 0.75], 0.25),
                   m.tickLabels([0, 1e6, 2e6, 3e6], 1e6),
                   m.tickLabels([4e6, 4.5e6, 5e6], 5e5),
                   m.tickLabels([1e-5, 2e-5, 3e-5], 1e-5),
                   m.logTickLabels([1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1]),
                   m.niceTicks(0.247, 0.969).values,
                   m.paddedRange(120, 120, {integer: true}), m.paddedRange(0.83, 0.83)];""",
    )
    assert out[0] == ["0.0031", "0.0032", "0.0033"]
    assert out[1] == ["0", "0.25", "0.5", "0.75"]  # not 0.3 for 0.25
    assert out[2] == ["0", "1M", "2M", "3M"] and out[3] == ["4M", "4.5M", "5M"]
    assert out[4] == ["1e-5", "2e-5", "3e-5"]
    assert out[5] == ["1e-5", "1e-4", "0.001", "0.01", "0.1", "1"] and "0" not in out[5]
    assert out[6] == [0.4, 0.6, 0.8]
    assert out[7] == [114, 126] and out[8][0] < 0.83 < out[8][1]


def test_csv_quotes_and_keeps_exact_values(js) -> None:
    out = js(
        "csv.js",
        """return m.toCsv(["a", "b,c"], [[0.1 + 0.2, 'say "hi"'], [NaN, "=cmd()"], [null, -1.5]]);""",
    )
    assert out == 'a,"b,c"\r\n0.30000000000000004,"say ""hi"""\r\nNaN,\'=cmd()\r\n,-1.5\r\n'


def test_groups_average_runs_read_at_different_iterations(js) -> None:
    out = js(
        "groups.js",
        """const g = m.aggregate([{xs: [0, 10], ys: [0, 10]}, {xs: [0, 5, 20], ys: [2, 2, 2]}]);
           const groups = m.groupRuns([{experiment_id: 1, hyperparameters: {opt: "sgd"}},
             {experiment_id: 2, hyperparameters: {opt: "adam"}}, {experiment_id: 3,
             hyperparameters: {}}], "opt");
           return [g, groups.map((x) => [x.label, x.ids])];""",
    )
    agg, groups = out
    assert agg["xs"] == [0, 5, 10, 20]
    assert agg["mean"] == [1, 3.5, 6, 2]  # the first run ends at 10: not extended to 20
    assert (
        agg["lo"] == [0, 2, 2, 2] and agg["hi"] == [2, 5, 10, 2] and agg["counts"] == [2, 2, 2, 1]
    )
    assert groups == [["opt=adam", [2]], ["opt=sgd", [1]], ["opt=—", [3]]]


def test_logs_show_what_a_terminal_shows_and_find_the_traceback(js) -> None:
    out = js(
        "logs.js",
        """const lines = ["start", "Traceback (most recent call last):", "  File x", "ValueError: bad"]
             .map((message, i) => ({seq: i + 1, message}));
           return [m.visibleText("a 10%\\rb 50%\\rc 100%\\r"), m.visibleText("plain"),
                   m.failureTail(lines).map((l) => l.message), m.failureTail(lines.slice(0, 1)).length];""",
    )
    assert out[0] == "c 100%" and out[1] == "plain"
    assert out[2] == ["Traceback (most recent call last):", "  File x", "ValueError: bad"]
    assert out[3] == 1


def test_status_knows_crashed_and_counts_running_time(js) -> None:
    out = js(
        "status.js",
        """const pill = m.statusPill("crashed");
           return [pill.className, m.isFinal("crashed"), m.isFailure("crashed"), m.isFinal("running"),
             m.runDuration({status: "running", started_at: 1000, ended_at: null, duration: 0}, 2200),
             m.runDuration({status: "done", started_at: 1000, ended_at: 1600}, 9999),
             m.runDuration({status: "running", started_at: 3000, ended_at: null}, 2000),
             m.statusPill("paused").className,
             m.runDuration({status: "crashed", started_at: 1000, ended_at: null, last_heartbeat: 1450,
               duration: 0}, 9999)];""",
    )
    assert out[0] == "status status-crashed status-failure"
    assert out[1:4] == [True, True, False]
    assert out[4:7] == [1200, 600, 0]  # now - start while running; never negative
    assert out[7] == "status status-unknown"
    assert out[8] == 450  # a crashed run lasted until its last heartbeat


def test_markdown_links_follow_only_safe_schemes(js) -> None:
    out = js(
        "markdown.js",
        """const urls = ["https://a.example/x", "mailto:me@example.com", "#/projects/1", "/ui/x",
             "notes.md", "javascript:alert(1)", "JaVaScRiPt:alert(1)", " java\\tscript:alert(1)",
             "data:text/html,x", "vbscript:x", "file:///etc/passwd", ""];
           const box = document.createElement("div");
           box.append(m.renderMarkdown("1. one\\n2. *two* and __three__\\n\\n> quoted `x`\\n\\n---"));
           return {urls: urls.map(m.safeUrl), html: box.innerHTML};""",
    )
    assert out["urls"] == [
        "https://a.example/x",
        "mailto:me@example.com",
        "#/projects/1",
        "/ui/x",
        "notes.md",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    assert out["html"] == (
        "<ol><li>one</li><li><em>two</em> and <strong>three</strong></li></ol>"
        "<blockquote><p>quoted <code>x</code></p></blockquote><hr>"
    )
