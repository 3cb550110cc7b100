"""The jobs REST API's answers to bad requests: 4xx JSON naming the field, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

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
