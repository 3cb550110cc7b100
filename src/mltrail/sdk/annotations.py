"""``exp.set_name``, ``exp.set_description``, ``exp.set_notes``, ``exp.add_tags`` and
``exp.remove_tags``: a run's own record, changed from the training script.

Each is one ``update_experiment`` call made at once (not through the writer: these are rare
and their order with the run's status does not matter); a transport fault is warned about,
never raised into training (see ``Experiment._store_call``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mltrail.core import validation
from mltrail.core.types import ExperimentRef

if TYPE_CHECKING:
    from mltrail.sdk.offline import RunSpec
    from mltrail.store.base import Store


class Annotations:
    """The record-editing methods of :class:`mltrail.sdk.experiment.Experiment`."""

    store: Store

    @property
    def ref(self) -> ExperimentRef:
        raise NotImplementedError

    def _store_call(self, call: Callable[[], Any]) -> None:
        raise NotImplementedError

    def _offline_change(self, change: Callable[[RunSpec], None]) -> bool:
        raise NotImplementedError

    def _update(self, **changes: Any) -> None:
        """One update of the run's record; for a run started offline and not yet numbered, kept
        in its spec and made when the server numbers it."""
        if self._offline_change(lambda spec: spec.updates.append(changes)):
            return
        ref = self.ref
        self._store_call(
            lambda: self.store.update_experiment(ref.project_id, ref.experiment_id, **changes)
        )

    def set_name(self, name: str) -> None:
        """Rename the run (its display name, 1-250 characters)."""
        self._update(display_name=validation.experiment_name(name))

    def set_description(self, description: str) -> None:
        """Replace the run's one-line description."""
        self._update(description=validation.experiment_description(description))

    def set_notes(self, notes: str) -> None:
        """Replace the run's notes (markdown, shown on its page)."""
        self._update(notes=validation.experiment_notes(notes))

    def add_tags(self, *tags: str) -> None:
        """Add tags to the run (those it has stay): ``exp.add_tags("baseline", "resnet")``."""
        self._update(
            add_tags=[validation.require_text(t, "tags", min_len=1, max_len=250) for t in tags]
        )

    def remove_tags(self, *tags: str) -> None:
        """Remove tags from the run (absent ones are ignored)."""
        self._update(
            remove_tags=[validation.require_text(t, "tags", min_len=1, max_len=250) for t in tags]
        )
