"""Continuing a run: where its stored series end, and which re-logged steps to leave out.

A resumed run (``mltrail.start(resume=(project, experiment))``) reads the last stored iteration
of every series once. Its iteration counter continues after the highest; a point logged again
at or before its series' last stored iteration (a script restarting from a checkpoint older than
the last logged step) is not stored a second time: the SDK leaves it out, with one warning.
``exp.rewind(iteration)`` is the way to replace stored points instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mltrail.core.types import MetricSummary

if TYPE_CHECKING:
    from mltrail.store.base import Store


class StoredSteps:
    """The last stored iteration of each (key, phase) of a resumed run.

    ``horizon`` is the highest of them (-1 when nothing is stored): a point past it is always
    new, so ``exp.log`` consults the per-series table only at or before it.
    """

    def __init__(self, summaries: Sequence[MetricSummary]) -> None:
        self._last = {(s.key, s.phase): s.last_iteration for s in summaries if s.count}
        self.horizon = max(self._last.values(), default=-1)
        self.last_epoch = max(
            (s.last_epoch for s in summaries if s.count and s.last_epoch is not None), default=-1
        )
        self.left_out = 0
        self._warned = False

    @classmethod
    def read(cls, store: Store, project_id: int, experiment_id: int) -> StoredSteps:
        return cls(store.list_series(project_id, experiment_id))

    def new_only(self, metrics: dict[str, Any], phase: str, iteration: int) -> dict[str, Any]:
        """``metrics`` without the keys whose series already holds ``iteration``."""
        last = self._last
        kept = {k: v for k, v in metrics.items() if iteration > last.get((k, phase), -1)}
        if len(kept) < len(metrics):
            self.left_out += len(metrics) - len(kept)
            self._warn(iteration)
        return kept

    def rewound(self, iteration: int) -> None:
        """After a rewind to ``iteration`` nothing past it is stored any more."""
        self._last = {k: min(v, iteration) for k, v in self._last.items()}
        self.horizon = min(self.horizon, iteration)

    def _warn(self, iteration: int) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"mltrail: iteration {iteration} was already stored before this run resumed; "
                "points at or before a series' last stored iteration are not stored again "
                "(exp.rewind(iteration) replaces stored points)",
                RuntimeWarning,
                stacklevel=4,
            )
