"""``api.models``: weights hashes of saved model files, and where a hash came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mltrail.api.artifacts import artifact_dict, save_verified
from mltrail.api.render import with_iso_times
from mltrail.core import codec, validation
from mltrail.core.errors import NotFoundError
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
        """Which experiments, iterations and epochs produced this hash; ``checkpoint`` is the
        path of the stored checkpoint file of that experiment, or None."""
        found = self._store.find_weights_hash(validation.weights_hash(weights_hash))
        return [link_dict(w) for w in found]

    def download(self, weights_hash: str, dest: str | Path) -> dict[str, Any]:
        """Download the stored checkpoint holding these weights (the newest when several do).

        The file is verified against its sha256 and written as is: nothing in it is loaded or
        unpickled.

        Args:
            weights_hash: the 40-digit hash.
            dest: the file to write, or an existing folder to write it into.

        Returns:
            The checkpoint's artifact record (``project``, ``experiment``, ``path``, ``epoch``,
            ``iteration`` ...) and ``file``, where it was written.

        Raises:
            NotFoundError: no stored checkpoint holds these weights (field ``weights_hash``).
        """
        digest = validation.weights_hash(weights_hash)
        found = self._store.find_checkpoints(digest)
        if not found:
            raise NotFoundError(f"no stored checkpoint holds weights hash {digest}", "weights_hash")
        newest = found[0]
        target = Path(dest).expanduser()
        if target.is_dir():
            target = target / newest.path.rsplit("/", 1)[-1]
        reader = self._store.open_artifact(newest.project_id, newest.experiment_id, newest.path)
        record = artifact_dict(reader.artifact)
        record["file"] = str(save_verified(reader, target))
        return record


def link_dict(w: WeightsLink) -> dict[str, Any]:
    """A weights link for people: its wire record with an ISO time."""
    return with_iso_times(codec.link_to_wire(w), ("created_at",))
