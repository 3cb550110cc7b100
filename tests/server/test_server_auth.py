"""Authentication and authorisation through a real server: tokens, membership, 401/403."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest

from mltrail.core.errors import AuthenticationError, PermissionDeniedError
from mltrail.core.types import ExperimentRef, LogBatch, LogLine, MetricBatch
from support.factories import chunk
from support.servers import unique_name

HASH = "0123456789abcdef0123456789abcdef01234567"


def _fill(path: str) -> str:
    return (
        path.replace("{project_id}", "1")
        .replace("{experiment_id}", "1")
        .replace("{weights_hash}", HASH)
    )


def test_every_api_route_needs_a_token(shared_server):
    spec = httpx.get(shared_server.url + "/api/v1/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            response = httpx.request(method.upper(), shared_server.url + _fill(path), json={})
            if path == "/healthz":
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (method, path, response.text)
            if method != "head":  # a HEAD answer has its status and headers, no body
                assert response.json()["error"]["type"] == "authentication_error"
            assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("header", ["Bearer mlt_not_a_real_token", "Basic YWRtaW46YWRtaW4=", ""])
def test_a_wrong_token_is_401(shared_server, header):
    response = httpx.get(shared_server.url + "/api/v1/projects", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["field"] is not None or response.json()["error"]["message"]


def test_http_store_raises_authentication_error(shared_server, http_store_factory):
    with pytest.raises(AuthenticationError):
        http_store_factory(shared_server.url, "mlt_wrong").list_projects()


def test_me_names_the_tokens_user(shared_server, http_store_factory):
    store = http_store_factory(
        shared_server.url, shared_server.make_token(name := unique_name("alice"))
    )
    me = store.me()
    assert (me.name, me.is_admin) == (name, False)


def _seeded(store):
    project = store.create_project("private")
    exp = store.create_experiment(project.id, hyperparameters={"lr": 0.1})
    return project.id, exp.experiment_id


def _chunk():
    return chunk("loss", range(3), np.ones(3))


def test_non_member_gets_403_on_reads_and_writes(shared_server, http_store_factory):
    owner = http_store_factory(shared_server.url, shared_server.make_token(unique_name("owner")))
    other = http_store_factory(shared_server.url, shared_server.make_token(unique_name("mallory")))
    p, e = _seeded(owner)
    reads = [
        lambda: other.get_project(p),
        lambda: other.list_experiments(p),
        lambda: other.get_experiment(p, e),
        lambda: other.read_logs(p, e),
        lambda: other.list_series(p, e),
    ]
    writes = [
        lambda: other.create_experiment(p),
        lambda: other.append_points(p, e, MetricBatch("c", 1, (_chunk(),))),
        lambda: other.append_logs(p, e, LogBatch("c", 1, (LogLine(1.0, "stdout", "INFO", "x"),))),
        lambda: other.put_external_metrics([ExperimentRef(p, e)], {"ex_cost": 1}),
        lambda: other.link_weights_hash(p, e, HASH, iteration=1, epoch=0),
        lambda: other.request_stop(p, e),
    ]
    for call in reads + writes:
        with pytest.raises(PermissionDeniedError):
            call()
    assert other.list_projects() == []
    assert owner.get_experiment(p, e).ex_metrics == {}  # nothing was written
    assert owner.list_series(p, e) == []


def test_hash_of_another_users_project_is_invisible(shared_server, http_store_factory):
    owner = http_store_factory(shared_server.url, shared_server.make_token(unique_name("owner")))
    other = http_store_factory(shared_server.url, shared_server.make_token(unique_name("eve")))
    p, e = _seeded(owner)
    owner.link_weights_hash(p, e, HASH, iteration=1, epoch=0)
    assert other.find_weights_hash(HASH) == []
    assert len(owner.find_weights_hash(HASH)) == 1


def test_adding_a_member_grants_access(shared_server, http_store_factory):
    owner = http_store_factory(shared_server.url, shared_server.make_token(unique_name("owner")))
    bob_token = shared_server.make_token(bob_name := unique_name("bob"))
    p, e = _seeded(owner)
    assert owner.add_project_member(p, bob_name) == "invited"
    bob = http_store_factory(shared_server.url, bob_token)
    assert bob.list_projects() == []  # not before Bob accepts
    assert [i.project_id for i in bob.list_invitations()] == [p]
    bob.accept_invitation(p)
    assert bob.get_experiment(p, e).hyperparameters == {"lr": 0.1}
    assert [x.id for x in bob.list_projects()] == [p]


def test_admin_sees_every_project(shared_server, http_store_factory):
    admin = http_store_factory(shared_server.url, shared_server.admin_token)
    owner = http_store_factory(shared_server.url, shared_server.make_token(unique_name("owner")))
    p, _ = _seeded(owner)
    assert p in [x.id for x in admin.list_projects()]


def test_token_create_cli_makes_a_working_token(shared_server, http_store_factory):
    name = unique_name("carol")
    launch = "import sys; from mltrail.cli.main import main; main(sys.argv[1:])"
    args = ["token", "create", "--db", shared_server.db_url, "--user", name]
    done = subprocess.run(
        [sys.executable, "-c", launch, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("mlt_") and "\n" not in token
    # stderr names the database, so a token made without the server's --db is noticed
    assert done.stderr.strip().endswith(f"user {name!r} in {shared_server.db_url}")
    assert http_store_factory(shared_server.url, token).me().name == name
