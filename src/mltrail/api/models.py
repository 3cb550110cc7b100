"""``api.models``: weights hashes of saved model files, and where a hash came from."""

from __future__ import annotations

from typing import Any

from mltrail.api.render import with_iso_times
from mltrail.core import codec, validation
from mltrail.core.types import WeightsLink
from mltrail.store.base import Store


class ModelsApi:
    """``api.models``: weights hashes of model files and where a hash came from."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get_weights_hash(self, framework: str, model_path: str) -> str:
        """The weights hash of a saved model file (never unpickled unsafely)."""
        from mltrail.checkpoints import weights_hash_from_file

        return weights_hash_from_file(framework, model_path)

    def find(self, weights_hash: str) -> list[dict[str, Any]]:
        """Which experiments, iterations and epochs produced this hash."""
        found = self._store.find_weights_hash(validation.weights_hash(weights_hash))
        return [link_dict(w) for w in found]


def link_dict(w: WeightsLink) -> dict[str, Any]:
    """A weights link for people: its wire record with an ISO time."""
    return with_iso_times(codec.link_to_wire(w), ("created_at",))
