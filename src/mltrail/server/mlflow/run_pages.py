"""A search-runs page as JSON text, written a column at a time instead of a dict per field.

``orjson.dumps({"runs": [shapes.run_shape(e) for e in page]})`` built a dict for each run, its
info and data and every metric, param and tag: 86 million instructions for a page of 1,000 runs
with 5 metrics and 5 params each, a third of the server's work for the page. Here each run only
adds its fields to three columns (integers, metric values, strings), each column is written by
one orjson call and split into its items' texts (as ``shapes.history_json`` does; strings go
in as they are when none holds a character JSON escapes, the usual case), and runs of one shape (how
many metrics, params and tags, whether it ended) are laid into their template's slots by
slicing, a column at a time. The bytes are orjson's for the dicts
(``tests/mlflow/test_mlflow_run_pages.py`` compares them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from mltrail.core.types import Experiment
from mltrail.server.mlflow import shapes

INTS, VALUES, STRINGS = 0, 1, 2  # the columns
Shape = tuple[bool, int, int, int]  # ended, metrics, params, tags
Slot = tuple[int, int, int]  # position in the template, column, index in the run's items
_TRAIN_PREFIX = len("train/")


def runs_page_json(page: Sequence[Experiment], next_page_token: str | None = None) -> bytes:
    """search-runs' answer, ``{"runs": [Run, ...]}`` with ``next_page_token`` when given: the
    bytes orjson writes for :func:`shapes.run_shape` of each run (a search page's metrics have
    step 0)."""
    columns: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    shapes_of = [_add_run(e, *columns) for e in page]
    texts = _column_texts(*columns)
    parts: list[str] = []
    at = [0, 0, 0]  # where the next run's items start in each column
    start = 0
    while start < len(shapes_of):
        shape, end = shapes_of[start], start + 1
        while end < len(shapes_of) and shapes_of[end] == shape:
            end += 1
        parts += _lay_out(shape, end - start, texts, at)
        start = end
    token = {} if next_page_token is None else {"next_page_token": next_page_token}
    rest = orjson.dumps(token)[1:-1].decode()
    return ('{"runs":[' + "".join(parts)[1:] + ("]," if rest else "]") + rest + "}").encode()


def _add_run(e: Experiment, ints: list[Any], values: list[Any], strings: list[Any]) -> Shape:
    """Add the run's fields to the columns, in its template's order; its shape."""
    ints += (e.project_id, e.experiment_id, shapes.to_millis(e.started_at or e.created_at),
             shapes.to_millis(e.ended_at or e.started_at or e.created_at))  # fmt: skip
    if e.ended_at is not None:
        ints.append(shapes.to_millis(e.ended_at))
    stage = "active" if e.state == "active" else "deleted"
    status = shapes.STATUS_TO_MLFLOW[e.status]
    strings += (e.display_name, str(e.environment.get("user", "")), status, stage)
    metrics = len(values)
    for name, value in e.metrics.items():
        strings.append(name[_TRAIN_PREFIX:] if name.startswith("train/") else name)
        values.append(value)
    for name, ex_value in e.ex_metrics.items() if e.ex_metrics else ():
        if isinstance(ex_value, (int, float)) and not isinstance(ex_value, bool):
            strings.append(name)
            values.append(float(ex_value))
    params = e.hyperparameters
    for name, param in params.items():
        strings += (name, param if isinstance(param, str) else json.dumps(param))
    tags = shapes.tag_map(e)
    for pair in tags.items():
        strings += pair
    return e.ended_at is not None, len(values) - metrics, len(params), len(tags)


def _column_texts(ints: list[Any], values: list[Any], strings: list[Any]) -> list[list[str]]:
    """Each column's items as JSON text (strings without their quotes)."""
    if not all(map(math.isfinite, values)):
        values = [v if math.isfinite(v) else shapes.json_float(v) for v in values]
    return [
        shapes.json_texts(ints) if ints else [],
        shapes.json_texts(values) if values else [],
        strings if _plain("".join(strings)) else _string_texts(strings),
    ]


def _plain(text: str) -> bool:
    """Whether ``text`` is its own JSON string content: ASCII without a quote, a backslash or
    a control character, which JSON escapes (numpy finds those at vector speed; a regular
    expression took 8 million instructions for a page's strings)."""
    if not text.isascii() or '"' in text or "\\" in text:
        return False
    return bool(np.frombuffer(text.encode(), np.uint8).min(initial=0x20) >= 0x20)


def _string_texts(strings: list[Any]) -> list[str]:
    """Each string's JSON text without its quotes: one orjson call split at ``","``, which
    orjson's escaping leaves nowhere inside a string."""
    return orjson.dumps(strings)[2:-2].decode().split('","') if strings else []


def _lay_out(shape: Shape, runs: int, texts: list[list[str]], at: list[int]) -> list[str]:
    """The text pieces of ``runs`` consecutive runs of one shape, each led by a comma; moves
    ``at`` past their items."""
    template, slots, per_run = _template(shape)
    period = len(template)
    parts = template * runs
    for position, column, index in slots:
        first = at[column] + index
        step = per_run[column]
        parts[position::period] = texts[column][first : first + step * runs : step]
    for column in (INTS, VALUES, STRINGS):
        at[column] += per_run[column] * runs
    return parts


@lru_cache(maxsize=1024)  # a page's runs mostly share a few shapes
def _template(shape: Shape) -> tuple[list[str], list[Slot], tuple[int, int, int]]:
    """A run's text pieces (``""`` in each slot), its slots, and how many items of each column
    it takes (the order :func:`_add_run` adds them in)."""
    ended, metrics, params, tags = shape
    pieces: list[str | tuple[int, int]] = [
        ',{"info":{"run_id":"', (INTS, 0), "-", (INTS, 1), '","run_uuid":"', (INTS, 0), "-",
        (INTS, 1), '","run_name":"', (STRINGS, 0), '","experiment_id":"', (INTS, 0),
        '","user_id":"', (STRINGS, 1), '","status":"', (STRINGS, 2), '","start_time":',
        (INTS, 2), ',"artifact_uri":"mlflow-artifacts:/', (INTS, 0), "/", (INTS, 0), "-",
        (INTS, 1), '/artifacts","lifecycle_stage":"', (STRINGS, 3), '"',
    ]  # fmt: skip
    if ended:
        pieces += [',"end_time":', (INTS, 4)]
    pieces.append('},"data":{"metrics":[')
    text = 4
    for m in range(metrics):
        pieces += ['{"key":"' if m == 0 else ',{"key":"', (STRINGS, text + m), '","value":',
                   (VALUES, m), ',"timestamp":', (INTS, 3), ',"step":0}']  # fmt: skip
    text += metrics
    for name, count in (("params", params), ("tags", tags)):
        pieces.append('],"params":[' if name == "params" else '],"tags":[')
        for p in range(count):
            pieces += ['{"key":"' if p == 0 else ',{"key":"', (STRINGS, text + 2 * p),
                       '","value":"', (STRINGS, text + 2 * p + 1), '"}']  # fmt: skip
        text += 2 * count
    pieces.append(']},"inputs":{}}')
    template: list[str] = []
    slots: list[Slot] = []
    for piece in pieces:
        if isinstance(piece, str):
            template.append(piece)
        else:
            slots.append((len(template), *piece))
            template.append("")
    return template, slots, (4 + ended, metrics, text)
