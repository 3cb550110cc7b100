"""The jobs REST API: its answers to bad requests (4xx JSON naming the field, never a 500) and
its long-poll claim."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jobs_helpers import wait_for

from mltrail.core.polling import POLL_SECONDS
from support.clients import error_of, rest_client


@pytest.fixture
def server(module_server: Any) -> Any:
    return module_server


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with rest_client(server.url, server.admin_token, timeout=30) as client:
        yield client


@pytest.fixture
def project(client: httpx.Client) -> int:
    return client.post("/projects", json={"display_name": "api"}).json()["id"]


_error = error_of


def test_submit_list_claim_finish_round_trip(client: httpx.Client, project: int) -> None:
    created = client.post(
        f"/projects/{project}/jobs", json={"command": ["echo", "x"], "queue": "api-q"}
    )
    assert created.status_code == 201 and created.json()["status"] == "queued"
    job_id = created.json()["job_id"]
    assert (
        client.post(
            "/agents",
            json={"agent_id": "api-agent", "name": "h", "queues": ["api-q"], "lease_seconds": 5},
        ).status_code
        == 200
    )
    claimed = client.post(
        "/jobs/claim",
        json={"agent_id": "api-agent", "queues": ["api-q"], "lease_seconds": 5, "wait_seconds": 0},
    )
    assert claimed.json()["job"]["job_id"] == job_id
    empty = client.post(
        "/jobs/claim",
        json={
            "agent_id": "api-agent",
            "queues": ["api-q"],
            "lease_seconds": 5,
            "wait_seconds": 0.5,
        },
    )
    assert empty.status_code == 200 and empty.json() == {"job": None}
    beat = client.post("/agents/api-agent/heartbeat", json={"job_id": job_id, "lease_seconds": 5})
    assert beat.json() == {"stop_requested": False, "lease_lost": False}
    finished = client.post(
        f"/jobs/{job_id}/finish", json={"agent_id": "api-agent", "status": "done", "exit_code": 0}
    )
    assert finished.json()["status"] == "done"
    other = client.post(
        f"/jobs/{job_id}/finish", json={"agent_id": "someone-else", "status": "done"}
    )
    assert _error(other, 404)["field"] == "agent_id"  # an agent nobody registered
    assert [j["job_id"] for j in client.get("/jobs", params={"project_id": project}).json()] == [
        job_id
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": []}, "command"),
        ({"command": ["echo"], "queue": "../etc"}, "queue"),
        ({"command": ["echo"], "env": {"MLTRAIL_TOKEN": "x"}}, "env"),
        ({"command": ["echo"], "source": {"kind": "tarball"}}, "snapshot"),
        ({"command": ["echo"], "snapshot_base64": "***"}, "snapshot_base64"),
        ({"command": ["echo"], "max_retries": 1000}, "max_retries"),
        ({"command": ["echo"], "source": {"kind": "ftp"}}, "source"),
    ],
)
def test_bad_submissions_are_422_naming_the_field(
    client: httpx.Client, project: int, body: dict, field: str
) -> None:
    assert _error(client.post(f"/projects/{project}/jobs", json=body), 422)["field"] == field
    assert client.get("/jobs", params={"project_id": project}).json() == []


def test_unknown_and_out_of_range_ids(client: httpx.Client) -> None:
    assert _error(client.get("/jobs/999999"), 404)["field"] == "job"
    assert _error(client.get(f"/jobs/{2**63}"), 422)["field"] == "job_id"
    claim = client.post("/jobs/claim", json={"agent_id": "never-registered", "lease_seconds": 5})
    assert _error(claim, 404)["field"] == "agent_id"
    beat = client.post("/agents/bad agent/heartbeat", json={"lease_seconds": 5})
    assert _error(beat, 422)["field"] == "agent_id"
    lease = client.post("/agents", json={"agent_id": "a", "name": "h", "lease_seconds": 0})
    assert _error(lease, 422)["field"] == "lease_seconds"


def test_jobs_need_a_token(server: Any) -> None:
    response = httpx.get(server.url + "/api/v1/jobs", timeout=30)
    assert response.status_code == 401
    response = httpx.post(
        server.url + "/api/v1/jobs/claim",
        json={"agent_id": "a"},
        headers={"Authorization": "Bearer mlt_nope"},
        timeout=30,
    )
    assert response.status_code == 401


def test_another_users_jobs_are_invisible(server: Any, client: httpx.Client, project: int) -> None:
    job_id = client.post(
        f"/projects/{project}/jobs", json={"command": ["echo"], "queue": "private"}
    ).json()["job_id"]
    token = server.make_token("outsider")
    with httpx.Client(
        base_url=server.url + "/api/v1", timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as outsider:
        assert outsider.get("/jobs").json() == []
        assert outsider.get(f"/jobs/{job_id}").status_code == 404
        assert (
            outsider.post(
                "/agents",
                json={"agent_id": "out", "name": "h", "queues": ["private"], "lease_seconds": 5},
            ).status_code
            == 200
        )
        claim = outsider.post(
            "/jobs/claim", json={"agent_id": "out", "queues": ["private"], "lease_seconds": 5}
        )
        assert claim.json() == {"job": None}
        submit = outsider.post(f"/projects/{project}/jobs", json={"command": ["echo"]})
        assert _error(submit, 403)["field"] == "project"


def _last_seen(client: httpx.Client, agent_id: str) -> float:
    return next(a for a in client.get("/agents").json() if a["agent_id"] == agent_id)[
        "last_seen_at"
    ]


def test_a_long_poll_claim_whose_agent_hung_up_takes_no_job(
    server: Any, client: httpx.Client, project: int
) -> None:
    """An agent killed during its long poll: the claim it left open on the server must not take
    the next job (it would run nowhere until its lease expired, and spend an attempt)."""
    for agent_id in ("ghost", "live"):
        agent = {"agent_id": agent_id, "name": "h", "queues": ["hang-up"], "lease_seconds": 30}
        assert client.post("/agents", json=agent).status_code == 200
    registered = _last_seen(client, "ghost")
    claim = {"agent_id": "ghost", "queues": ["hang-up"], "lease_seconds": 30, "wait_seconds": 30}
    body = json.dumps(claim).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (server.admin_token.encode(), len(body), body)
        )
        # each ask of the poll touches the agent: the server is polling for it now
        wait_for(lambda: _last_seen(client, "ghost") > registered)
    job = client.post(
        f"/projects/{project}/jobs", json={"command": ["echo"], "queue": "hang-up"}
    ).json()
    time.sleep(8 * POLL_SECONDS)  # the ghost's poll would have asked again several times by now
    assert client.get(f"/jobs/{job['job_id']}").json()["status"] == "queued"
    taken = client.post(
        "/jobs/claim", json={"agent_id": "live", "queues": ["hang-up"], "lease_seconds": 30}
    ).json()["job"]
    assert (taken["job_id"], taken["agent_id"], taken["attempts"]) == (job["job_id"], "live", 1)
