"""A re-upload whose bytes change on the way (the file was rewritten while it was sent, or the
bytes were corrupted) is refused before it replaces anything: the earlier version stays, on
every backend (SqlStore and HttpStore -> real server; SQLite and PostgreSQL; local and S3)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from mltrail.api import Api
from mltrail.api import artifacts as artifacts_api
from mltrail.core.artifacts import artifact_upload
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.store.blobs import open_blobs
from mltrail.store.http import HttpStore
from support.servers import unique_name

from .conftest import ArtifactEnv, blob_digests


class ChangedWhileSent(artifacts_api.ReadAhead):
    """The file as its reader hashed it differs from the bytes the store receives: what a file
    rewritten between the hashing thread's read and ``sendfile``'s (or a flipped bit) gives."""

    def __init__(self, handle: BinaryIO, depth: int = 8) -> None:
        super().__init__(handle, depth)
        self.digest.update(b"a byte the store never received")


def _read(env: ArtifactEnv, ref: tuple[int, int], path: str) -> bytes:
    with env.store.open_artifact(ref[0], ref[1], path) as reader:
        return b"".join(reader.chunks)


def _upload(api: Api, ref: tuple[int, int], file: Path, name: str) -> None:
    api.artifacts.upload(ref[0], ref[1], file, name)


def test_a_failed_reupload_keeps_the_earlier_version(
    artifact_env: ArtifactEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(artifact_env.store)
    project = artifact_env.store.create_project("reupload").id
    ref = (project, artifact_env.store.create_experiment(project).experiment_id)
    first, second = tmp_path / "v1.csv", tmp_path / "v2.csv"
    first.write_bytes(b"id,label\n1,cat\n")
    second.write_bytes(b"id,label\n1,dog\n2,cat\n" * 1000)
    _upload(api, ref, first, "preds.csv")
    monkeypatch.setattr(artifacts_api, "ReadAhead", ChangedWhileSent)
    with pytest.raises(ValidationError) as caught:
        _upload(api, ref, second, "preds.csv")
    assert caught.value.field == "sha256"
    assert _read(artifact_env, ref, "preds.csv") == first.read_bytes()
    with pytest.raises(ValidationError):
        _upload(api, ref, second, "new.csv")
    with pytest.raises(NotFoundError):
        artifact_env.store.open_artifact(*ref, "new.csv")
    # nor left their bytes behind: S3 copied a staged upload to its digest's key before the
    # check, an orphan until garbage collection
    assert hashlib.sha256(second.read_bytes()).hexdigest() not in blob_digests(artifact_env.blobs)
    staging = Path(artifact_env.location) / "staging"
    assert not staging.is_dir() or not list(staging.iterdir())
    monkeypatch.undo()
    _upload(api, ref, second, "preds.csv")  # an honest re-upload still replaces
    assert _read(artifact_env, ref, "preds.csv") == second.read_bytes()


def test_a_failed_reupload_through_httpx_keeps_the_earlier_version(
    artifact_servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path https servers and proxies take (httpx streams the body, no ``sendfile``)."""
    proc, _ = artifact_servers("sqlite", "local")
    store = HttpStore(proc.url, proc.make_token(unique_name()))
    store._http.lean = None
    api = Api(store)
    project = store.create_project("reupload-httpx").id
    ref = (project, store.create_experiment(project).experiment_id)
    file = tmp_path / "model.bin"
    file.write_bytes(b"weights v1")
    _upload(api, ref, file, "model.bin")
    file.write_bytes(b"weights v2, longer")
    monkeypatch.setattr(artifacts_api, "ReadAhead", ChangedWhileSent)
    with pytest.raises(ValidationError):
        _upload(api, ref, file, "model.bin")
    with store.open_artifact(*ref, "model.bin") as reader:
        assert b"".join(reader.chunks) == b"weights v1"
    store.close()


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_trailer_is_checked_as_sha256_takes_it(artifact_servers, backend: str) -> None:
    """``sha256=trailer`` from any client: hex digits in either case, anything else refused
    with a JSON 4xx and nothing stored, as is a body that cannot hold a trailer."""
    proc, location = artifact_servers("sqlite", backend)
    token = proc.make_token(unique_name())
    store = HttpStore(proc.url, token)
    project = store.create_project("trailer").id
    experiment = store.create_experiment(project).experiment_id
    base = f"{proc.url}/api/v1/projects/{project}/experiments/{experiment}/artifacts"
    auth = {"Authorization": f"Bearer {token}"}
    data = b"a body from another client"
    large = backend.encode() * (1 << 20)  # read from the socket by the storing thread
    digest = hashlib.sha256(data).hexdigest()

    def put(name: str, body: object, headers: dict[str, str] = auth) -> httpx.Response:
        params = {"sha256": "trailer"}
        return httpx.put(f"{base}/{name}", params=params, content=body, headers=headers)

    assert put("upper.bin", data + digest.upper().encode()).json()["sha256"] == digest
    refused = {
        "not-hex.bin": put("not-hex.bin", data + b"z" * 64),
        "too-long.bin": put("too-long.bin", data + digest.encode() + b"\n"),
        "large.bin": put("large.bin", large + digest.encode()),
        "short.bin": put("short.bin", b"abc"),
        "chunked.bin": put("chunked.bin", iter([data, digest.encode()])),
        "anonymous.bin": put("anonymous.bin", data + digest.encode(), {}),
    }
    for name, answer in refused.items():
        assert 400 <= answer.status_code < 500, (name, answer.text)
        assert answer.json()["error"]["field"] in ("sha256", "token"), (name, answer.text)
    assert [a.path for a in store.list_artifacts(project, experiment)] == ["upper.bin"]
    large_digest = hashlib.sha256(large + b"!").hexdigest()  # read by TrailedTap, accepted
    assert (
        put("large-ok.bin", large + b"!" + large_digest.encode()).json()["size"] == len(large) + 1
    )
    too_long = hashlib.sha256(data + digest[:1].encode()).hexdigest()
    left = blob_digests(open_blobs(location))
    assert too_long not in left and hashlib.sha256(large).hexdigest() not in left
    staging = Path(location) / "staging"
    assert not staging.is_dir() or not list(staging.iterdir())
    store.close()


def test_a_cut_short_upload_leaves_no_blob_behind(artifact_env: ArtifactEnv) -> None:
    """Fewer bytes than declared (a file truncated while it was read): refused on ``size``
    before the blob is kept; S3 had copied it to its digest's key before the store compared."""
    if artifact_env.server is not None:
        pytest.skip("through a server the body's Content-Length is the declared size")
    store = artifact_env.store
    project = store.create_project("cut-short").id
    ref = (project, store.create_experiment(project).experiment_id)
    data = f"half of a file, {artifact_env.location}".encode()
    upload = artifact_upload("half.bin", size=len(data) * 2)
    with pytest.raises(ValidationError) as caught:
        store.put_artifact(*ref, upload, io.BytesIO(data))
    assert caught.value.field == "size"
    assert hashlib.sha256(data).hexdigest() not in blob_digests(artifact_env.blobs)
    assert store.list_artifacts(*ref) == []
