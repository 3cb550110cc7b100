"""id_tokens, ``mltrail missinglink config``, and bad requests to the MissingLink surface: a
clear 4xx in the client's error shape, never a 5xx."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import jwt
import missinglink_seed as seed
import pytest
from client_env import ClientCallError
from missinglink_seed import Setup

from mltrail.server.missinglink import PREFIX
from mltrail.server.missinglink.tokens import LOGS_AUDIENCE, mint
from mltrail.store.sql import SqlStore
from support.servers import ServerProcess


def id_token(server: ServerProcess, token: str) -> str:
    answer = httpx.post(f"{server.url}{PREFIX}/users/refresh_token", json={"refresh_token": token})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id_token"])


def set_id_token(s: Setup, value: str) -> None:
    config = configparser.RawConfigParser()
    config.read(s.client.config)
    config["token"]["id_token"] = value
    with s.client.config.open("w") as out:
        config.write(out)


def test_an_expired_id_token_is_refreshed_by_the_client_and_saved(setup: Setup) -> None:
    s = setup
    with SqlStore.open(s.server.db_url) as store:
        record = store.auth.find_token(s.token)
    expired = mint(record, now=time.time() - 7200)
    set_id_token(s, expired)
    seed.experiment(s.mltrail, s.project)
    assert len(s.client.api("list", project=s.project)) == 1
    config = configparser.RawConfigParser()
    config.read(s.client.config)
    fresh = config["token"]["id_token"]
    assert fresh != expired
    claims = jwt.decode(fresh, options={"verify_signature": False})
    assert claims["exp"] > time.time() + 600 and claims["name"]


def test_a_revoked_token_stops_the_client_with_a_message(setup: Setup) -> None:
    s = setup
    with SqlStore.open(s.server.db_url) as store:
        store.auth.revoke_token(s.token)
    with pytest.raises(ClientCallError, match="Authorization failed"):
        s.client.api("list", project=s.project)


def test_another_server_on_the_same_database_accepts_the_id_token(
    setup: Setup, server_factory: Callable[..., ServerProcess]
) -> None:
    s = setup
    minted = id_token(s.server, s.token)
    other = server_factory(s.server.db_url)
    answer = httpx.get(
        f"{other.url}{PREFIX}/projects/{s.project}/experiments",
        headers={"Authorization": f"Bearer {minted}"},
    )
    assert answer.status_code == 200 and answer.json()["experiments"] == []


def bad_requests(s: Setup, good: str, experiment: int) -> list[tuple[str, str, dict, int]]:
    """(method, path, request options, expected status) for the surface's failure modes."""
    auth = {"headers": {"Authorization": f"Bearer {good}"}}
    forged = jwt.encode(
        {"sub": "1", "iat": 1, "exp": 2**40, "aud": "missinglink", "iss": "mltrail"},
        "another key, long enough for HS256 (32 bytes)",
        headers={"kid": "1"},
    )
    exp = f"/projects/{s.project}/experiments/{experiment}"
    stream_token = mint_stream_token(s, experiment + 1)
    return [
        ("GET", f"/projects/{s.project}/experiments", {}, 401),
        ("GET", f"/projects/{s.project}/experiments", {"headers": {"Authorization": "Bearer x.y.z"}}, 401),
        ("GET", f"/projects/{s.project}/experiments", {"headers": {"Authorization": f"Bearer {forged}"}}, 401),
        ("GET", f"/projects/{s.project}/experiments", {"headers": {"Authorization": f"Bearer {stream_token}"}}, 401),
        ("POST", "/users/refresh_token", {"json": {"refresh_token": "mlt_nope"}}, 401),
        ("POST", "/users/refresh_token", {"json": {}}, 400),
        ("POST", "/users/refresh_token", {"content": b"{not json"}, 400),
        ("GET", "/projects/x/experiments", auth, 400),
        ("GET", f"/projects/{2**70}/experiments", auth, 400),
        ("GET", f"/projects/{s.project}/experiments?cursor_token=abc", auth, 400),
        ("GET", f"/projects/{s.project}/experiments?cursor_token={'9' * 40}", auth, 400),
        ("GET", f"{exp}/logs/read?timestamp=yesterday", auth, 400),
        ("GET", f"{exp}/logs/read?amount=0", auth, 400),
        ("GET", f"{exp}/logs/read?amount=abc", auth, 400),
        ("GET", f"{exp}/logs/stream?auth={stream_token}", {}, 401),
        ("GET", f"{exp}/logs/stream", {}, 401),
        ("GET", f"/projects/{s.project}/experiments/999/logs/read", auth, 404),
        ("POST", f"{exp}/metrics", {**auth, "content": b"{not json"}, 400),
        ("POST", f"{exp}/metrics", {**auth, "json": []}, 400),
        ("POST", f"{exp}/metrics", {**auth, "json": {"ex_a": {"nested": 1}}}, 400),
        ("POST", "/model_weights_hashes/zz/metrics?experiment_only=1", {**auth, "json": {"a": 1}}, 400),
        ("PUT", f"{exp}/chart/abc", {**auth, "json": {"name": "c", "labels": ["X", "Y"], "x_int": [1], "y_data": [1]}}, 400),
        ("PUT", f"{exp}/chart/abc", {**auth, "json": ["not", "an", "object"]}, 400),
        ("PUT", f"{exp}/chart/abc", {**auth, "json": {"labels": 3}}, 400),
        ("GET", "/projects", auth, 404),
    ]  # fmt: skip


def mint_stream_token(s: Setup, experiment: int) -> str:
    with SqlStore.open(s.server.db_url) as store:
        record = store.auth.find_token(s.token)
    claims = {"project": s.project, "experiment": experiment}
    return mint(record, audience=LOGS_AUDIENCE, claims=claims)


def test_bad_requests_get_a_clear_4xx_in_the_clients_error_shape(setup: Setup) -> None:
    s = setup
    experiment = seed.experiment(s.mltrail, s.project)
    good = id_token(s.server, s.token)
    with httpx.Client(base_url=s.server.url + PREFIX) as http:
        for method, path, options, status in bad_requests(s, good, experiment):
            answer = http.request(method, path, **options)
            assert answer.status_code == status, (method, path, answer.text)
            message = answer.json()["error"]["message"]
            assert isinstance(message, str) and message, (method, path)


def run_mltrail(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    launch = "import sys; from mltrail.cli.main import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", launch, *args], capture_output=True, text=True, env=env, check=False
    )


def test_mltrail_missinglink_config_writes_a_private_ready_config(setup: Setup, tmp_path) -> None:
    s = setup
    env = {**os.environ, "MLTRAIL_URL": s.server.url + "/", "MLTRAIL_TOKEN": s.token}
    path = tmp_path / "client" / "missinglink.cfg"
    done = run_mltrail("missinglink", "config", "--output", str(path), env=env)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = configparser.RawConfigParser()
    config.read(path)
    assert config["general"]["api_host"] == s.server.url
    assert dict(config["token"]) == {"refresh_token": s.token, "id_token": ""}
    s.client.config = path  # the client works with the file as written
    assert s.client.api("list", project=s.project) == []


def test_mltrail_missinglink_config_without_a_server_is_one_line(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    done = run_mltrail("missinglink", "config", "-o", str(tmp_path / "c.cfg"), env=env)
    assert done.returncode != 0
    assert "MLTRAIL_URL is not set" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.cfg").exists()
