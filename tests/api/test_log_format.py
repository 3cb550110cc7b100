"""Log lines printed a page at a time read exactly as the per-line formatting did."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from mltrail.api.logs import format_log_page
from mltrail.core.types import LogLine


def _reference(line: LogLine) -> str:
    stamp = datetime.fromtimestamp(line.time).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{stamp} {line.stream} {line.level} {line.message}"


def test_a_page_prints_every_stamp_as_datetime_rounds_it() -> None:
    rng = np.random.default_rng(8)
    base = 1_764_331_200.0
    times = [base + x for x in np.cumsum(rng.uniform(0, 0.003, 3000)).tolist()]
    times += [base + 0.0009995, base + 1.001, base + 2.9999996, base + 3.0004999, base - 0.25]
    lines = [LogLine(t, "stdout", "INFO", f"m{i}") for i, t in enumerate(times)]
    lines.append(LogLine(base + 5, "stderr", "DEBUG", "colour \x1b[31mred\x1b[0m gone"))
    printed = format_log_page(lines, colours=False).splitlines()
    want = [_reference(x) for x in lines[:-1]] + [_reference(lines[-1]).replace(
        "\x1b[31m", "").replace("\x1b[0m", "")]  # fmt: skip
    assert printed == want


def test_coloured_pages_keep_level_colours() -> None:
    lines = [LogLine(1.5, "stdout", "ERROR", "boom"), LogLine(2.0, "stderr", "INFO", "warn")]
    page = format_log_page(lines, colours=True)
    assert page.splitlines() == [
        f"\x1b[31m{_reference(lines[0])}\x1b[0m",
        f"\x1b[35m{_reference(lines[1])}\x1b[0m",
    ]
