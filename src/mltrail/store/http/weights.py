"""The weights-hash half of HttpStore."""

from __future__ import annotations

from urllib.parse import quote

from mltrail.core import codec
from mltrail.core.types import WeightsLink
from mltrail.store.http.transport import HttpNoun
from mltrail.store.weights import WeightStore


class HttpWeights(HttpNoun, WeightStore):
    """The weights half of HttpStore: each :class:`WeightStore` method is one request."""

    def link_weights_hash(
        self,
        project_id: int,
        experiment_id: int,
        weights_hash: str,
        *,
        iteration: int | None,
        epoch: int | None,
    ) -> WeightsLink:
        path = self._experiment_path(project_id, experiment_id) + "/weights"
        body = {"weights_hash": weights_hash, "iteration": iteration, "epoch": epoch}
        return codec.link_from_wire(self._http.call("POST", path, body=body))

    def find_weights_hash(self, weights_hash: str) -> list[WeightsLink]:
        found = self._get(f"/weights/{quote(str(weights_hash), safe='')}")
        return [codec.link_from_wire(w) for w in found]

    def list_weights_links(self, project_id: int, experiment_id: int) -> list[WeightsLink]:
        found = self._get(self._experiment_path(project_id, experiment_id) + "/weights")
        return [codec.link_from_wire(w) for w in found]
