"""An agent gone while its claim's own transaction runs (after the poll's last check of the
connection): the job it took goes back to its queue, no attempt spent, instead of running
nowhere until its lease expires. On SQLite and PostgreSQL, over a real socket: the test holds
a lock the claim's transaction needs, waits until the server's claim is seen waiting for it,
hangs up, waits until the server has seen the hang-up, and lets the claim go on."""

from __future__ import annotations

import glob
import json
import socket
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
from jobs_helpers import wait_for

from support.clients import rest_client


class ClaimBlocker:
    """Holds what the agent's claim must wait for inside its transaction: SQLite's write lock,
    or on PostgreSQL the agent's row (the claim marks its agent seen first); ``waiting()`` says
    when the server's claim waits for it."""

    def __init__(self, server: Any, agent_id: str) -> None:
        self._server = server
        self._url = server.db_url
        if self._url.startswith("sqlite"):
            self._conn: Any = sqlite3.connect(
                self._url.removeprefix("sqlite:///"), isolation_level=None
            )
            self._conn.execute("BEGIN IMMEDIATE")  # every write of the server waits from now on
            self.waiting: Callable[[], bool] = self._sqlite_waiting
            return
        import psycopg

        plain = self._url.replace("postgresql+psycopg://", "postgresql://")
        self._conn = psycopg.connect(plain)
        self._conn.execute("SELECT 1 FROM agents WHERE id = %s FOR UPDATE", (agent_id,))
        self._watch = psycopg.connect(plain, autocommit=True)
        self.waiting = self._pg_waiting

    def _sqlite_waiting(self) -> bool:
        # SQLite's busy handler sleeps between tries of the lock; no thread of the server
        # sleeps otherwise (its loop waits in epoll, its idle workers on futexes)
        pid = self._server.proc.pid
        for path in glob.glob(f"/proc/{pid}/task/*/wchan"):
            try:
                with open(path) as f:
                    if "nanosleep" in f.read():
                        return True
            except OSError:  # the thread ended meanwhile
                continue
        return False

    def _pg_waiting(self) -> bool:
        row = self._watch.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        return bool(row and row[0])

    def release(self) -> None:
        if isinstance(self._conn, sqlite3.Connection):
            self._conn.execute("ROLLBACK")
        else:
            self._conn.rollback()
            self._watch.close()
        self._conn.close()


def _server_side_closed(server_port: int, client_port: int) -> bool:
    """Whether the server closed its end of the connection from ``client_port`` (it saw the
    hang-up): no longer established (01) nor waiting to close (08) in /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.split(":")[1], 16) == server_port and (
                int(remote.split(":")[1], 16) == client_port
            ):
                return state not in ("01", "08")
    return True


def _last_seen(client: httpx.Client, agent_id: str) -> float:
    return next(a for a in client.get("/agents").json() if a["agent_id"] == agent_id)[
        "last_seen_at"
    ]


def test_a_claim_whose_agent_hung_up_during_its_transaction_hands_the_job_back(
    db_server: Any,
) -> None:
    with rest_client(db_server.url, db_server.admin_token, timeout=30) as client:
        _check_hand_back(db_server, client)


def _check_hand_back(server: Any, client: httpx.Client) -> None:
    project = client.post("/projects", json={"display_name": "hang-up"}).json()["id"]
    for agent_id in ("late-ghost", "late-live"):
        agent = {"agent_id": agent_id, "name": "h", "queues": ["hang-up-late"], "lease_seconds": 30}
        assert client.post("/agents", json=agent).status_code == 200
    job = client.post(
        f"/projects/{project}/jobs", json={"command": ["echo"], "queue": "hang-up-late"}
    ).json()
    registered = _last_seen(client, "late-ghost")
    claim = {"agent_id": "late-ghost", "queues": ["hang-up-late"], "lease_seconds": 30}
    body = json.dumps(claim).encode()
    blocker = ClaimBlocker(server, "late-ghost")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                b"POST /api/v1/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (server.admin_token.encode(), len(body), body)
            )
            client_port = sock.getsockname()[1]
            # the token check only reads: the claim reaches its transaction and waits there
            wait_for(blocker.waiting, timeout=30, interval=0.02)
        wait_for(lambda: _server_side_closed(server.port, client_port), timeout=10, interval=0.02)
    finally:
        blocker.release()
    # the claim's transaction did run (it marks its agent seen)...
    wait_for(lambda: _last_seen(client, "late-ghost") > registered, timeout=30)
    # ...and its job went back to the queue
    wait_for(lambda: client.get(f"/jobs/{job['job_id']}").json()["status"] == "queued", 10)
    back = client.get(f"/jobs/{job['job_id']}").json()
    assert (back["status"], back["attempts"], back["agent_id"]) == ("queued", 0, None)
    taken = client.post(
        "/jobs/claim",
        json={"agent_id": "late-live", "queues": ["hang-up-late"], "lease_seconds": 30},
    ).json()["job"]
    assert (taken["job_id"], taken["agent_id"], taken["attempts"]) == (
        job["job_id"],
        "late-live",
        1,
    )
