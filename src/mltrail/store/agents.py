"""The agents noun of the Store: machines that claim jobs, seen through their heartbeats."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from mltrail.core.jobs import Agent, HeartbeatReply


class AgentStore(abc.ABC):
    """Agents: registration, heartbeats that keep a job's lease, listing."""

    @abc.abstractmethod
    def register_agent(
        self,
        agent_id: str,
        *,
        name: str,
        queues: Sequence[str],
        lease_seconds: float,
        projects: Sequence[int] = (),
    ) -> Agent:
        """Create or refresh an agent. The first call an agent makes, so a bad token fails early.

        Args:
            agent_id: the agent's id; an id another user registered is refused (403).
            name: shown in listings.
            queues: the queues it claims from.
            lease_seconds: how long a claimed job stays its own without a heartbeat.
            projects: projects (the owner is a member of each) whose every job it runs; without
                them it runs only the jobs its owner queued.
        """

    @abc.abstractmethod
    def deregister_agent(self, agent_id: str) -> None:
        """Mark an agent as gone (it exits cleanly)."""

    @abc.abstractmethod
    def list_agents(self) -> list[Agent]:
        """The user's agents (every agent, for an administrator), most recently seen first,
        with ``alive`` filled in."""

    @abc.abstractmethod
    def heartbeat(
        self, agent_id: str, job_id: int | None = None, *, lease_seconds: float
    ) -> HeartbeatReply:
        """Say the agent is alive and extend its job's lease by ``lease_seconds``."""
