"""The domain types' own helpers."""

from __future__ import annotations

import dataclasses

import pytest

from mltrail.core.types import Experiment, LogLine, Status, assemble


def test_assemble_equals_the_constructor_and_stays_frozen() -> None:
    fields = {
        "project_id": 3,
        "experiment_id": 7,
        "display_name": "run",
        "description": "",
        "status": Status.DONE,
        "created_at": 1.5,
        "started_at": 2.0,
        "ended_at": 4.5,
        "hyperparameters": {"lr": 0.1},
        "environment": {},
        "source": {},
        "tags": ("a",),
        "metrics": {"train/loss": 0.5},
        "ex_metrics": {},
        "stop_requested": False,
        "last_heartbeat": None,
        "notes": "",
        "state": "active",
        "deleted_at": None,
    }
    made = assemble(Experiment, fields)
    assert made == Experiment(**fields)
    assert made.duration == 2.5
    assert dataclasses.asdict(made) == fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.notes = "changed"  # type: ignore[misc]
    line = {"time": 1.0, "stream": "stdout", "level": "info", "message": "hi", "seq": 4}
    assert assemble(LogLine, line) == LogLine(**line)
