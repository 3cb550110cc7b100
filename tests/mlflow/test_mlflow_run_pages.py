"""A search-runs page written as text (``run_pages``) is byte for byte the JSON of its runs'
``run_shape`` dicts, whatever its runs hold (in-process: no client, no server)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.core.types import Experiment, Status
from mltrail.server.mlflow import shapes
from mltrail.server.mlflow.run_pages import runs_page_json


def _run(number: int, **fields: Any) -> Experiment:
    base: dict[str, Any] = {
        "project_id": 3, "experiment_id": number, "display_name": f"run-{number}",
        "description": "", "status": Status.DONE, "created_at": 10.0, "started_at": 11.0005,
        "ended_at": 12.25, "hyperparameters": {"lr": "0.1"}, "environment": {},
        "metrics": {"train/loss": 0.25},
    }  # fmt: skip
    return Experiment(**{**base, **fields})


def _want(page: list[Experiment], token: str | None = None) -> bytes:
    answer: dict[str, Any] = {"runs": [shapes.run_shape(e) for e in page]}
    if token is not None:
        answer["next_page_token"] = token
    return orjson.dumps(answer)


ODD = _run(
    12, display_name="ä \"quoted\" \\ name", description="notes", status=Status.CRASHED,
    ended_at=None, hyperparameters={"lr": "0.1", "layers": [1, 2], 'q"\\': "\x01", "n": 3},
    environment={"user": 7}, tags=("team=a b", "solo"), source={"commit": "abc"},
    metrics={"train/loss": 0.25, "validation/acc": math.nan, "test/x": -math.inf,
             "train/big": 1e16, "train/tiny": 1e-05, "train/zero": -0.0},
    ex_metrics={"ex_cost": 7, "ex_flag": True, "ex_note": "text", "ex_inf": math.inf},
    state="archived",
)  # fmt: skip
PLAIN = [_run(n, metrics={"train/a": n / 3, "validation/b": float(n)}) for n in range(1, 6)]


@pytest.mark.parametrize(
    "page",
    [
        [],
        PLAIN,
        [ODD],
        [*PLAIN[:2], ODD, *PLAIN[2:]],  # runs of several shapes, one needing escapes
        [_run(1, metrics={}, hyperparameters={}), _run(2, ended_at=None), _run(3)],
        [_run(1, metrics={"train/v": math.nan}), _run(2, metrics={"train/v": math.inf})],
        [_run(1, display_name="tab\there"), _run(2, display_name="\x7f del")],
    ],
)
@pytest.mark.parametrize("token", [None, "1000"])
def test_a_page_is_the_json_of_its_runs_shapes(page: list[Experiment], token: str | None) -> None:
    assert runs_page_json(page, token) == _want(page, token)


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
_number = st.floats() | st.integers(-(2**53), 2**53)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            _text,
            st.dictionaries(_text.map(lambda k: f"train/{k}"), st.floats(), max_size=3),
            st.dictionaries(_text, _text | _number, max_size=3),
            st.dictionaries(
                _text.map(lambda k: f"ex_{k}"), _number | st.booleans() | _text, max_size=2
            ),
            st.booleans(),
        ),
        max_size=6,
    )
)
def test_any_page_is_the_json_of_its_runs_shapes(runs: list[tuple[Any, ...]]) -> None:
    page = [
        _run(i + 1, display_name=name, metrics=metrics, hyperparameters=params,
             ex_metrics=ex, ended_at=12.25 if ended else None)
        for i, (name, metrics, params, ex, ended) in enumerate(runs)
    ]  # fmt: skip
    assert runs_page_json(page) == _want(page)
