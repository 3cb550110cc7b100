"""``api.agents``: the agents that run jobs, and what an agent calls about itself."""

from __future__ import annotations

from collections.abc import Sequence

from mltrail.core.jobs import Agent, HeartbeatReply
from mltrail.store.base import Store


class AgentsApi:
    """``api.agents``: the agents that run jobs."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list(self) -> list[Agent]:
        """Every registered agent, most recently seen first, saying whether it is alive."""
        return self._store.list_agents()

    def register(
        self,
        agent_id: str,
        *,
        name: str,
        queues: Sequence[str],
        lease_seconds: float,
        projects: Sequence[int] = (),
    ) -> Agent:
        """Create or refresh an agent (the first call it makes, so a bad token fails early);
        ``projects`` are those whose every job it runs, besides its owner's own jobs."""
        return self._store.register_agent(
            agent_id, name=name, queues=queues, lease_seconds=lease_seconds, projects=projects
        )

    def deregister(self, agent_id: str) -> None:
        self._store.deregister_agent(agent_id)

    def heartbeat(
        self, agent_id: str, job_id: int | None, *, lease_seconds: float
    ) -> HeartbeatReply:
        """Say the agent lives and keep its job's lease; tells of stop requests and lost leases."""
        return self._store.heartbeat(agent_id, job_id, lease_seconds=lease_seconds)
