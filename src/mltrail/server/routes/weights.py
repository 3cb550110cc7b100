"""Weights hashes: links to the (experiment, iteration, epoch) that produced them."""

from __future__ import annotations

from fastapi import APIRouter

from mltrail.core import codec
from mltrail.server.deps import ExperimentId, ProjectId, StoreDep
from mltrail.server.schemas import ERROR_RESPONSES, LinkOut, WeightsLinkIn

router = APIRouter(tags=["weights"], responses=ERROR_RESPONSES)
_EXPERIMENT = "/projects/{project_id}/experiments/{experiment_id}"


@router.post(_EXPERIMENT + "/weights", response_model=LinkOut, status_code=201)
def link_weights_hash(
    project_id: ProjectId, experiment_id: ExperimentId, body: WeightsLinkIn, store: StoreDep
) -> dict:
    """Record that this point of the experiment produced that hash."""
    link = store.link_weights_hash(
        project_id, experiment_id, body.weights_hash, iteration=body.iteration, epoch=body.epoch
    )
    return codec.link_to_wire(link)


@router.get(_EXPERIMENT + "/weights", response_model=list[LinkOut])
def list_weights_links(
    project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep
) -> list[dict]:
    return [codec.link_to_wire(w) for w in store.list_weights_links(project_id, experiment_id)]


@router.get("/weights/{weights_hash}", response_model=list[LinkOut])
def find_weights_hash(weights_hash: str, store: StoreDep) -> list[dict]:
    """Every link of the hash in the user's projects (empty when none)."""
    return [codec.link_to_wire(w) for w in store.find_weights_hash(weights_hash)]
