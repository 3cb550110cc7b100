"""The weights-hash noun of the Store: which (experiment, iteration, epoch) produced a hash."""

from __future__ import annotations

import abc

from mltrail.core.types import WeightsLink


class WeightStore(abc.ABC):
    """Links between weights hashes and the experiment points that produced them."""

    @abc.abstractmethod
    def link_weights_hash(
        self,
        project_id: int,
        experiment_id: int,
        weights_hash: str,
        *,
        iteration: int | None,
        epoch: int | None,
    ) -> WeightsLink:
        """Record that this point of the experiment produced that hash (linking twice keeps
        one link)."""

    @abc.abstractmethod
    def find_weights_hash(self, weights_hash: str) -> list[WeightsLink]:
        """Every link of the hash in projects the user can see (empty when none)."""

    @abc.abstractmethod
    def list_weights_links(self, project_id: int, experiment_id: int) -> list[WeightsLink]:
        """The experiment's hashes with their iteration and epoch."""
