"""The order in which pytest-xdist hands test files to its workers: the longest first.

With ``--dist loadfile`` a file is one unit of work. xdist's own order (the files with the most
tests first) left files of few but slow tests (servers, browsers, subprocesses) to the end of a
run, one worker finishing them while the others had nothing left to do. ``tests/durations.json``
holds each file's seconds in a full run; files go out longest first (``--no-loadscope-reorder``
in pyproject keeps this order), a file missing from it counted as the median. Old figures can
only make the order worse, never a result wrong: ``pytest --record-durations`` writes new ones.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).parent.parent / "durations.json"
_recorded: defaultdict[str, float] = defaultdict(float)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        help=f"write each test file's seconds (setup, call, teardown) to {DURATIONS.name}",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    usual = statistics.median(known.values()) if known else 0.0
    # a stable sort: each file's tests keep their order; every worker sorts alike
    items.sort(key=lambda item: -known.get(item.nodeid.split("::", 1)[0], usual))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller sees every worker's reports
        _recorded[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.getoption("record_durations") and "PYTEST_XDIST_WORKER" not in os.environ:
        figures = {name: round(seconds, 1) for name, seconds in sorted(_recorded.items())}
        DURATIONS.write_text(json.dumps(figures, indent=0) + "\n")
