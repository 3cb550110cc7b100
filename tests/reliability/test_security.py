"""Security: one user's token reaches nothing of another's project, agent or job; Host/Origin
guards; tokens at rest; access log; checkpoint files never unpickled.

Complements tests/server/test_server_auth.py (401 on every route, 403 on a few reads/writes)
with a matrix over every OpenAPI route that names a project, experiment or job.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mltrail.core import validation
from mltrail.core.errors import NotFoundError, PermissionDeniedError
from mltrail.core.types import ExperimentRef, LogBatch, LogLine, MetricBatch, Status
from mltrail.store.http import HttpStore
from support.factories import batch, chunk
from support.servers import ServerProcess, free_port, unique_name

REPO = Path(__file__).resolve().parents[2]
REFUSED = (PermissionDeniedError, NotFoundError)
HASH = "ab" * 20
AGENT = unique_name("alices-agent")


def _batch(seq: int, start: int = 0, n: int = 5) -> MetricBatch:
    return batch(seq, chunk("loss", range(start, start + n), np.ones(n)), client="security")


@pytest.fixture
def two_users(shared_server: ServerProcess):
    """Alice owns a project with an experiment holding everything; Bob has his own project."""
    alice = HttpStore(shared_server.url, shared_server.make_token(unique_name("alice")))
    bob = HttpStore(shared_server.url, shared_server.make_token(unique_name("bob")))
    project = alice.create_project("alice-private")
    exp = alice.create_experiment(project.id, display_name="secret")
    alice.append_points(project.id, exp.experiment_id, _batch(1))
    alice.append_logs(
        project.id, exp.experiment_id, LogBatch("a", 1, (LogLine(1.0, "stdout", "INFO", "hi"),))
    )
    alice.link_weights_hash(project.id, exp.experiment_id, HASH, iteration=4, epoch=0)
    alice.put_chart([exp.ref], validation.chart("c", chart_x=[1, 2], chart_y=[1.0, 2.0]))
    queue = unique_name("q")
    job = alice.submit_job(project.id, ["python", "-c", "pass"], queue=queue)
    alice.register_agent(AGENT, name="alice's", queues=[queue], lease_seconds=60)
    bob_project = bob.create_project("bob-own")
    yield alice, bob, project, exp, job, bob_project
    alice.close()
    bob.close()


def _record_paths(store: HttpStore) -> list[tuple[str, str, int]]:
    seen: list[tuple[str, str, int]] = []

    def hook(response: httpx.Response) -> None:
        seen.append((response.request.method, response.request.url.path, response.status_code))

    store._http.client.event_hooks["response"].append(hook)
    poster = store._http._poster  # point batches skip httpx: the lean poster sends them
    if poster is not None:
        post = poster.post

        def recorded(path: str, content: bytes, content_type: str, bound: Any = None) -> Any:
            answer = post(path, content, content_type, bound)  # bound: the call's deadline
            seen.append(("POST", path, answer.status_code))
            return answer

        poster.post = recorded  # type: ignore[method-assign]
    return seen


def _raw_refused(store: HttpStore, method: str, path: str) -> int:
    """A request with the store's own client and token; refused (403/404) raises as a store
    call would, anything else is answered."""
    status = store._http.client.request(method, path).status_code
    if status in (403, 404):
        raise NotFoundError(f"{method} {path}: {status}", "path")
    return status


def _as_template(path: str) -> str:
    path = path.removeprefix("/api/v1")
    path = re.sub(r"/projects/\d+", "/projects/{project_id}", path)
    path = re.sub(r"/experiments/\d+", "/experiments/{experiment_id}", path)
    path = re.sub(r"/artifacts/.+$", "/artifacts/{path}", path)
    path = re.sub(r"/agents/[^/]+", "/agents/{agent_id}", path)
    return re.sub(r"/jobs/\d+", "/jobs/{job_id}", path)


def _bob_attempts(bob: HttpStore, p: int, e: int, job_id: int, bob_project: int) -> list[str]:
    """Every operation on Alice's things; returns the names of those that were NOT refused."""
    ref = ExperimentRef(p, e)
    attempts = {
        "get_project": lambda: bob.get_project(p),
        "add_member": lambda: bob.add_project_member(p, "nobody"),
        "rename_project": lambda: bob.update_project(p, display_name="pwned"),
        "delete_project": lambda: bob.delete_project(p),
        "restore_project": lambda: bob.restore_project(p),
        "list_experiments": lambda: bob.list_experiments(p),
        "create_experiment": lambda: bob.create_experiment(p),
        "latest": lambda: bob.latest_experiment(p),
        "get_experiment": lambda: bob.get_experiment(p, e),
        "update": lambda: bob.update_experiment(p, e, display_name="pwned"),
        "stop": lambda: bob.request_stop(p, e),
        "trash": lambda: bob.delete_experiment(p, e),
        "archive": lambda: bob.archive_experiment(p, e),
        "restore": lambda: bob.restore_experiment(p, e),
        "purge": lambda: bob.purge_experiment(p, e),
        "heartbeat": lambda: bob.record_heartbeat(p, e),
        "resume": lambda: bob.resume_experiment(p, e),
        "rewind": lambda: bob.rewind_points(p, e, 0),
        "append_points": lambda: bob.append_points(p, e, _batch(1, 100)),
        "list_series": lambda: bob.list_series(p, e),
        "read_series": lambda: bob.read_series(p, e, "loss", "train"),
        "ex_metrics": lambda: bob.put_external_metrics([ref], {"ex_x": 1}),
        "link_weights": lambda: bob.link_weights_hash(p, e, "cd" * 20, iteration=1, epoch=0),
        "list_weights": lambda: bob.list_weights_links(p, e),
        "iteration_metrics": lambda: bob.read_iteration_metrics(p, e),
        "put_chart": lambda: bob.put_chart([ref], validation.chart("c", chart_x=[1], chart_y=[9.0])),
        "list_charts": lambda: bob.list_charts(p, e),
        "append_logs": lambda: bob.append_logs(p, e, LogBatch("b", 1, (LogLine(1.0, "x", "INFO", "pwned"),))),
        "read_logs": lambda: bob.read_logs(p, e),
        "submit_job": lambda: bob.submit_job(p, ["true"]),
        "get_job": lambda: bob.get_job(job_id),
        "job_snapshot": lambda: bob.get_job_snapshot(job_id),
        "finish_job": lambda: bob.finish_job(job_id, "lease", status=Status.DONE, exit_code=0),
        "jobs_of_project": lambda: bob.list_jobs(project_id=p),
        "accept_invitation": lambda: bob.accept_invitation(p),
        "decline_invitation": lambda: bob.decline_invitation(p),
        # Alice's agent: registered, heartbeated, claimed with, reported as or removed by Bob
        "register_agent": lambda: bob.register_agent(AGENT, name="b", queues=["q"], lease_seconds=5),
        "agent_heartbeat": lambda: bob.heartbeat(AGENT, job_id, lease_seconds=5),
        "claim_as_agent": lambda: bob.claim_job(AGENT, ["q"], lease_seconds=5),
        "finish_as_agent": lambda: bob.finish_job(job_id, AGENT, status=Status.DONE),
        "hand_back_as_agent": lambda: bob.hand_back_job(job_id, AGENT, attempt=1, lease_expires_at=0.0),
        "deregister_agent": lambda: bob.deregister_agent(AGENT),
        "put_artifact": lambda: bob.put_artifact(p, e, "planted.txt", io.BytesIO(b"x")),
        "list_artifacts": lambda: bob.list_artifacts(p, e),
        "open_artifact": lambda: bob.open_artifact(p, e, "planted.txt"),
        # open_artifact reads over a connection of its own (store/http/direct.py), which the
        # recording hooks do not see: the same GET through the recorded client covers the route
        "get_artifact": lambda: _raw_refused(bob, "GET", f"/projects/{p}/experiments/{e}/artifacts/planted.txt"),
        # no store method sends a HEAD: Bob's own client does
        "head_artifact": lambda: _raw_refused(bob, "HEAD", f"/projects/{p}/experiments/{e}/artifacts/planted.txt"),
        "delete_artifact": lambda: bob.delete_artifact(p, e, "planted.txt"),
        # a chart or ex_ metric naming Bob's own experiment AND Alice's must be refused whole
        "mixed_chart": lambda: bob.put_chart(
            [ExperimentRef(bob_project, 1), ref], validation.chart("m", chart_x=[1], chart_y=[1.0])
        ),
    }  # fmt: skip
    allowed = []
    for name, call in attempts.items():
        try:
            result = call()
        except REFUSED:
            continue
        except TypeError as exc:  # a signature mismatch is a bug in this test, not a pass
            raise AssertionError(f"{name}: {exc}") from exc
        if name == "jobs_of_project" and result == []:
            continue  # listing filters to what Bob may see: empty is a refusal
        allowed.append(name)
    return allowed


def test_another_users_token_reaches_nothing_of_the_project(two_users, shared_server):
    alice, bob, project, exp, job, bob_project = two_users
    bob.create_experiment(bob_project.id)
    seen = _record_paths(bob)
    p, e = project.id, exp.experiment_id
    allowed = _bob_attempts(bob, p, e, job.job_id, bob_project.id)
    assert allowed == [], f"Bob's token was allowed to: {allowed}"
    assert all(status in (403, 404) for _, _, status in seen), seen

    # every OpenAPI route naming a project or job was tried, and refused
    spec = httpx.get(shared_server.url + "/api/v1/openapi.json").json()
    wanted = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, ops in spec["paths"].items()
        for method in ops
        if ("{project_id}" in path or "{job_id}" in path) and not path.endswith("/logs/stream")
    }
    tried = {(m, _as_template(path)) for m, path, _ in seen}
    assert wanted - tried == set(), f"routes not covered: {sorted(wanted - tried)}"
    stream = httpx.get(
        f"{shared_server.url}/api/v1/projects/{p}/experiments/{e}/logs/stream",
        headers={"Authorization": f"Bearer {bob._http.client.headers['Authorization'][7:]}"},
        timeout=10,
    )
    assert stream.status_code in (403, 404)
    print(f"routes tried as the other user: {len(tried)}; refused: {len(seen)} of {len(seen)}")

    # Alice's data is exactly as she left it
    assert alice.get_project(p).display_name == project.display_name
    assert p in [x.id for x in alice.list_projects()]  # not renamed, not in the trash
    record = alice.get_experiment(p, e)
    assert record.display_name == "secret" and record.status is Status.RUNNING
    assert alice.read_series(p, e, "loss", "train").iterations.tolist() == list(range(5))
    assert [ln.message for ln in alice.read_logs(p, e)] == ["hi"]
    assert [c.spec.y for c in alice.list_charts(p, e)] == [((1.0,), (2.0,))]
    assert [w.weights_hash for w in alice.list_weights_links(p, e)] == [HASH]
    assert len(alice.list_experiments(p).items) == 2  # hers and the job's queued one
    assert alice.get_job(job.job_id).status is Status.QUEUED
    [agent] = alice.list_agents()
    assert (agent.agent_id, agent.name, agent.alive, agent.job_id) == (AGENT, "alice's", True, None)
    assert bob.list_agents() == []
    # and Bob's lists do not show her project, experiments or jobs
    assert p not in [x.id for x in bob.list_projects()]
    assert [j.project_id for j in bob.list_jobs()] in ([], [bob_project.id])
    assert bob.find_weights_hash(HASH) == []


def test_tokens_are_hashed_at_rest_and_checked_in_constant_time(server: ServerProcess):
    token = server.make_token("hash-check")
    with HttpStore(server.url, token) as store:
        store.create_project("p")
    db_file = Path(server.db_url.removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert token.encode() not in raw and server.admin_token.encode() not in raw
    assert raw.count(token[4:20].encode()) == 0
    # a token of the right shape that differs only in its last character is refused
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    answer = httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    source = (REPO / "src/mltrail/store/sql/users.py").read_text()
    # authenticate() is find_token()'s user; the lookup and the compare live in find_token
    authenticate = source.split("def authenticate", 1)[1].split("\n    def ", 1)[0]
    assert "self.find_token(token)" in authenticate
    body = source.split("def find_token", 1)[1].split("\n    def ", 1)[0]
    assert "hmac.compare_digest(" in body and "token_digest(token)" in body
    assert not re.search(r"token_sha256\s*==\s*token\b", source)


def _server_with_args(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "mltrail", "server", "--db", f"sqlite:///{tmp_path / 'h.db'}"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stderr").open("wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError((tmp_path / "stderr").read_text())


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1", 200),
        ("localhost:5870", 200),
        ("[::1]:80", 200),
        ("evil.example", 403),
        ("127.0.0.1.nip.io", 403),
        ("mltrail.internal:5870", 403),
    ],
)
def test_unexpected_host_headers_are_refused(shared_server, host, status):
    answer = httpx.get(shared_server.url + "/healthz", headers={"Host": host})
    assert answer.status_code == status
    if status == 403:
        assert answer.json()["error"]["field"] == "host"
        assert "--allowed-host" in answer.json()["error"]["message"]
    ui = httpx.get(shared_server.url + "/", headers={"Host": host})
    assert ui.status_code == (403 if status == 403 else 200)


@pytest.mark.parametrize("hosts", [("127.0.0.1", "evil.example"), ("evil.example", "127.0.0.1")])
def test_two_host_headers_are_refused(shared_server, hosts):
    """The guard read the first Host and answered 200 whatever the second said (a proxy or
    framework reading the last one would see another host)."""
    port = int(shared_server.url.rsplit(":", 1)[1])
    head = "".join(f"Host: {host}\r\n" for host in hosts)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk_ := sock.recv(65536):
            answer += chunk_
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"403", answer
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"] == {
        "type": "permission_denied", "field": "host", "message": "more than one Host header",
    }  # fmt: skip


def test_allowed_host_option_adds_a_name(tmp_path):
    proc, url = _server_with_args(tmp_path, "--allowed-host", "mltrail.internal")
    try:
        assert (
            httpx.get(url + "/healthz", headers={"Host": "mltrail.internal:80"}).status_code == 200
        )
        assert httpx.get(url + "/healthz", headers={"Host": "other.internal"}).status_code == 403
    finally:
        proc.terminate()
        proc.wait(10)


def test_cross_origin_writes_are_refused_and_write_nothing(shared_server):
    token = shared_server.make_token(unique_name("origin"))
    headers = {"Authorization": f"Bearer {token}"}
    api = shared_server.url + "/api/v1"
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{shared_server.port + 1}"):
        answer = httpx.post(
            api + "/projects", json={"display_name": "csrf"}, headers={**headers, "Origin": origin}
        )
        assert answer.status_code == 403, origin
        assert answer.json()["error"]["field"] == "origin"
    assert httpx.get(api + "/projects", headers=headers).json() == []
    # reads with a foreign Origin are answered (the browser keeps them from the page: no CORS)
    read = httpx.get(api + "/projects", headers={**headers, "Origin": "http://evil.example"})
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
    # the server's own origin (the web UI) may write
    same = httpx.post(
        api + "/projects",
        json={"display_name": "from-ui"},
        headers={**headers, "Origin": shared_server.url},
    )
    assert same.status_code in (200, 201), same.text


def test_every_request_is_one_json_log_line(server: ServerProcess):
    token = server.make_token("logged-user")
    httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    httpx.get(server.url + "/api/v1/me")
    httpx.get(server.url + "/healthz", headers={"Host": "evil.example"})
    lines = server.access_log()
    assert all(set(x) == {"time", "method", "path", "status", "duration_ms", "user"} for x in lines)
    me = [(x["status"], x["user"]) for x in lines if x["path"] == "/api/v1/me"]
    assert me == [(200, "logged-user"), (401, None)]
    assert any(x["path"] == "/healthz" and x["status"] == 403 for x in lines)
    assert all(x["duration_ms"] >= 0 and x["time"].endswith("+00:00") for x in lines)


def test_ui_answers_carry_a_content_security_policy(shared_server):
    for path in ("/", "/projects/1"):
        answer = httpx.get(shared_server.url + path)
        csp = answer.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp, path


class _Exploit:
    """Unpickling this creates ``marker``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt"])
def test_a_malicious_pickle_checkpoint_is_never_executed(tmp_path, suffix):
    pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    model = tmp_path / f"model{suffix}"
    model.write_bytes(pickle.dumps({"weight": _Exploit(marker)}))
    pickle.loads(model.read_bytes())  # prove the file really is an exploit
    assert marker.exists()
    marker.unlink()
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "models", "get-weights-hash", "--framework", "pytorch",
         "--model", str(model)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and done.stderr.strip()
    assert not marker.exists(), "the checkpoint's pickle was executed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Example.ORG:8080", ("example.org", 8080)),
        ("localhost", ("localhost", 80)),
        ("[::1]:5870", ("::1", 5870)),
        ("[::1]", ("::1", 80)),
        ("::1", ("::1", 80)),
    ],
)
def test_split_host(value, expected):
    from mltrail.server.security import split_host

    assert split_host(value) == expected


def test_allowed_host_list_defaults_bound_host_wildcards_and_extras():
    import socket

    from mltrail.server.security import allowed_host_list

    assert allowed_host_list("127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert allowed_host_list("10.0.0.5", ["Tracker.Lan", "[fe80::1]"]) == (
        "localhost", "127.0.0.1", "::1", "10.0.0.5", "tracker.lan", "fe80::1",
    )  # fmt: skip
    assert socket.gethostname().lower() in allowed_host_list("0.0.0.0")


def test_star_allows_any_host_but_still_refuses_cross_origin_writes(tmp_path):
    from starlette.testclient import TestClient

    from mltrail.config import Settings
    from mltrail.server import create_app
    from mltrail.store.sql import SqlStore

    store = SqlStore.open(f"sqlite:///{tmp_path / 'any.db'}")
    try:
        app = create_app(Settings(home=tmp_path), store, require_auth=False, allowed_hosts=["*"])
        with TestClient(app, base_url="http://anything.example") as client:
            assert client.get("/healthz").status_code == 200
            cross = client.post(
                "/api/v1/projects", json={"display_name": "x"}, headers={"Origin": "http://a.b"}
            )
            assert cross.status_code == 403 and cross.json()["error"]["field"] == "origin"
            same = client.post(
                "/api/v1/projects",
                json={"display_name": "x"},
                headers={"Origin": "http://anything.example"},
            )
            assert same.status_code in (200, 201)
    finally:
        store.close()
