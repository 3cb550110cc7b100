"""The agents half of HttpStore."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from mltrail.core import codec
from mltrail.core.jobs import Agent, HeartbeatReply
from mltrail.store.agents import AgentStore
from mltrail.store.http.transport import HttpNoun


class HttpAgents(HttpNoun, AgentStore):
    """The agents half of HttpStore: each :class:`AgentStore` method is one request."""

    def register_agent(
        self,
        agent_id: str,
        *,
        name: str,
        queues: Sequence[str],
        lease_seconds: float,
        projects: Sequence[int] = (),
    ) -> Agent:
        body = {
            "agent_id": agent_id,
            "name": name,
            "queues": list(queues),
            "lease_seconds": lease_seconds,
            "projects": list(projects),
        }
        return codec.agent_from_wire(self._http.call("POST", "/agents", body=body, repeatable=True))

    def deregister_agent(self, agent_id: str) -> None:
        self._http.call("DELETE", f"/agents/{quote(agent_id, safe='')}", repeatable=True)

    def list_agents(self) -> list[Agent]:
        return [codec.agent_from_wire(a) for a in self._get("/agents")]

    def heartbeat(
        self, agent_id: str, job_id: int | None = None, *, lease_seconds: float
    ) -> HeartbeatReply:
        path = f"/agents/{quote(agent_id, safe='')}/heartbeat"
        body = {"job_id": job_id, "lease_seconds": lease_seconds}
        return codec.heartbeat_from_wire(self._http.call("POST", path, body=body, repeatable=True))
