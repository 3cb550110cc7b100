"""`mltrail artifacts` / `mltrail gc` in real subprocesses (embedded and server), and presigned
S3 downloads that bypass the server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mltrail.store.http import HttpStore

from .conftest import ArtifactEnv


def mltrail(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mltrail", *args], env=env, capture_output=True, text=True
    )


@pytest.fixture(params=["embedded", "server"])
def cli_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path / "home")
    if request.param == "server":
        proc, _ = request.getfixturevalue("artifact_servers")("sqlite", "local")
        env |= {"MLTRAIL_URL": proc.url, "MLTRAIL_TOKEN": proc.admin_token}
    return env


def test_upload_list_download_delete_and_gc(cli_env: dict[str, str], tmp_path: Path) -> None:
    created = mltrail(cli_env, "projects", "create", f"cli-{os.urandom(3).hex()}", "-o", "json")
    assert created.returncode == 0, created.stderr
    project = json.loads(created.stdout)["project_id"]
    folder = tmp_path / "report"
    (folder / "plots").mkdir(parents=True)
    (folder / "summary.json").write_text('{"acc": 0.5}')
    (folder / "plots" / "roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")
    runs = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mltrail,sys; e=mltrail.start(int(sys.argv[1])); e.end(); print(e.experiment_id)",
            str(project),
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        check=True,
    )
    experiment = runs.stdout.strip().splitlines()[-1]
    ref = ["-p", str(project), "-e", experiment]
    up = mltrail(cli_env, "artifacts", "upload", *ref, str(folder))
    assert up.returncode == 0, up.stderr
    assert "report/plots/roc.csv" in up.stdout and "report/summary.json" in up.stdout
    listed = mltrail(cli_env, "artifacts", "list", *ref, "-o", "json")
    rows = json.loads(listed.stdout)
    assert [r["path"] for r in rows] == ["report/plots/roc.csv", "report/summary.json"]
    assert rows[1]["sha256"] == hashlib.sha256(b'{"acc": 0.5}').hexdigest()
    down = mltrail(
        cli_env, "artifacts", "download", *ref, "-n", "report", "-d", str(tmp_path / "back")
    )
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "back" / "plots" / "roc.csv").read_text() == "fpr,tpr\n0,0\n1,1\n"
    bad = mltrail(cli_env, "artifacts", "download", *ref, "-n", "../../etc/passwd")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "Error: name: must not contain '..' segments (a/b/c.txt form only)"
    ]
    missing = mltrail(cli_env, "artifacts", "download", *ref, "-n", "nothing.txt")
    assert missing.returncode == 1 and "no artifact or folder 'nothing.txt'" in missing.stderr
    assert (
        mltrail(cli_env, "artifacts", "delete", *ref, "-n", "report/summary.json").returncode == 0
    )
    gc = mltrail(cli_env, "gc", "--older-than", "3600")
    assert gc.returncode == 0 and gc.stdout.startswith("removed ")


def test_presigned_downloads_bypass_the_server(
    server_factory, sqlite_url: str, s3_location: str, s3_server: str
) -> None:
    server = server_factory(
        sqlite_url, extra_args=("--artifacts", s3_location, "--artifacts-presign")
    )
    store = HttpStore(server.url, server.admin_token)
    project = store.create_project("presigned").id
    number = store.create_experiment(project).experiment_id
    data = os.urandom(2 * 1024 * 1024)
    store.put_artifact(project, number, "big.bin", io.BytesIO(data))
    raw = httpx.get(
        f"{server.url}/api/v1/projects/{project}/experiments/{number}/artifacts/big.bin",
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert raw.status_code == 307 and raw.headers["location"].startswith(s3_server)
    assert "X-Amz-Signature" in raw.headers["location"]
    head = httpx.head(
        f"{server.url}/api/v1/projects/{project}/experiments/{number}/artifacts/big.bin",
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert head.status_code == 307 and head.headers["location"].startswith(s3_server)
    with store.open_artifact(project, number, "big.bin") as reader:
        assert reader.url is not None and b"".join(reader.chunks) == data
    streamed = httpx.get(
        f"{server.url}/api/v1/projects/{project}/experiments/{number}/artifacts/big.bin",
        params={"redirect": "false"},
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert streamed.status_code == 200 and streamed.content == data
    store.close()


def test_raw_traversal_requests_are_refused(artifact_env: ArtifactEnv) -> None:
    if artifact_env.server is None:
        pytest.skip("raw HTTP only")
    store = artifact_env.store
    project = store.create_project("raw").id
    number = store.create_experiment(project).experiment_id
    token = store._http.client.headers["Authorization"]  # type: ignore[attr-defined]
    base = f"{artifact_env.server.url}/api/v1/projects/{project}/experiments/{number}/artifacts/"
    for name in ("..%2F..%2Fescape", "%2e%2e/escape", "a/%00b", "%2Fetc%2Fpasswd", "a%5Cb"):
        answer = httpx.put(base + name, content=b"x", headers={"Authorization": token})
        assert answer.status_code == 422, (name, answer.text)
        assert answer.json()["error"]["field"] == "path"
    assert store.list_artifacts(project, number) == []


def test_head_answers_a_downloads_headers_without_its_bytes(artifact_servers) -> None:
    """``curl -I`` on a download (405 before): the same status and headers as GET, the
    artifact's size as Content-Length, no body; an unknown path is a 404."""
    proc, _ = artifact_servers("sqlite", "local")
    store = HttpStore(proc.url, proc.admin_token)
    project = store.create_project(f"head-{os.urandom(3).hex()}").id
    number = store.create_experiment(project).experiment_id
    data = os.urandom(300_000)
    store.put_artifact(project, number, "model.bin", io.BytesIO(data))
    store.put_artifact(project, number, "empty.txt", io.BytesIO(b""))
    store.close()
    url = f"{proc.url}/api/v1/projects/{project}/experiments/{number}/artifacts"
    auth = {"Authorization": f"Bearer {proc.admin_token}"}
    with httpx.Client(headers=auth) as client:
        got, head = client.get(f"{url}/model.bin"), client.head(f"{url}/model.bin")
        assert got.status_code == head.status_code == 200 and got.content == data
        assert head.content == b"" and head.headers["content-length"] == str(len(data))
        for name in ("x-mltrail-sha256", "x-mltrail-artifact", "content-type"):
            assert head.headers[name] == got.headers[name]
        assert head.headers["x-mltrail-sha256"] == hashlib.sha256(data).hexdigest()
        empty = client.head(f"{url}/empty.txt")
        assert empty.status_code == 200 and empty.headers["content-length"] == "0"
        assert client.head(f"{url}/missing.bin").status_code == 404
        assert httpx.head(f"{url}/model.bin").status_code == 401
