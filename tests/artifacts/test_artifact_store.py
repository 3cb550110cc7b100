"""The artifacts contract on every backend: SqlStore and HttpStore -> real server, SQLite and
PostgreSQL, blobs in a local folder and in S3 (a real moto server)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from mltrail.core.artifacts import ArtifactLimits, artifact_upload
from mltrail.core.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ValidationError,
)
from mltrail.store.blobs import open_blobs
from mltrail.store.sql import SqlStore

from .conftest import ArtifactEnv, blob_digests

HASH = "ab" * 20


def _experiment(env: ArtifactEnv) -> tuple[int, int]:
    project = env.store.create_project(f"artifacts-{os.urandom(4).hex()}")
    return project.id, env.store.create_experiment(project.id).experiment_id


def _put(env: ArtifactEnv, ref: tuple[int, int], path: str, data: bytes, **declared):
    upload = artifact_upload(path, **declared)
    return env.store.put_artifact(ref[0], ref[1], upload, io.BytesIO(data))


def _read(env: ArtifactEnv, ref: tuple[int, int], path: str) -> bytes:
    with env.store.open_artifact(ref[0], ref[1], path) as reader:
        return b"".join(reader.chunks)


def test_round_trip_list_and_tree(artifact_env: ArtifactEnv) -> None:
    ref = _experiment(artifact_env)
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks, an odd tail
    digest = hashlib.sha256(data).hexdigest()
    stored = _put(artifact_env, ref, "preds/test.csv", data, sha256_value=digest, size=len(data))
    _put(artifact_env, ref, "config.json", b'{"lr": 0.1}')
    assert (stored.sha256, stored.size, stored.media_type) == (digest, len(data), "text/csv")
    assert _read(artifact_env, ref, "preds/test.csv") == data
    assert [a.path for a in artifact_env.store.list_artifacts(*ref)] == [
        "config.json",
        "preds/test.csv",
    ]
    assert [a.path for a in artifact_env.store.list_artifacts(*ref, "preds")] == ["preds/test.csv"]
    with artifact_env.store.open_artifact(*ref, "config.json") as reader:
        assert reader.artifact.media_type == "application/json"


def test_same_bytes_in_two_experiments_are_stored_once(artifact_env: ArtifactEnv) -> None:
    first, second = _experiment(artifact_env), _experiment(artifact_env)
    data = os.urandom(1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    _put(artifact_env, first, "model.pt", data)
    _put(artifact_env, second, "weights/copy.pt", data, sha256_value=digest)
    _put(artifact_env, second, "weights/copy.pt", data)  # again: nothing changes
    assert _read(artifact_env, second, "weights/copy.pt") == data
    stored = [d for d in blob_digests(artifact_env.blobs) if d == digest]
    assert stored == [digest]  # one blob for both experiments and both puts
    assert len(artifact_env.store.list_artifacts(*second)) == 1


def test_wrong_digest_or_short_body_leaves_nothing_visible(artifact_env: ArtifactEnv) -> None:
    ref = _experiment(artifact_env)
    data = os.urandom(9 * 1024 * 1024)  # more than one S3 part
    with pytest.raises(ValidationError) as caught:
        _put(artifact_env, ref, "big.bin", data, sha256_value="0" * 64)
    assert caught.value.field == "sha256"
    assert artifact_env.store.list_artifacts(*ref) == []
    assert hashlib.sha256(data).hexdigest() not in blob_digests(artifact_env.blobs)
    with pytest.raises(NotFoundError):
        artifact_env.store.open_artifact(*ref, "big.bin")


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "a/../../b", "/etc/passwd", "a//b", "a/./b", "nul\x00.txt", "a\\b", "C:/x"],
)
def test_traversal_names_are_refused(artifact_env: ArtifactEnv, name: str) -> None:
    ref = _experiment(artifact_env)
    with pytest.raises(ValidationError) as caught:
        artifact_env.store.put_artifact(*ref, name, io.BytesIO(b"x"))
    assert caught.value.field == "path"
    with pytest.raises(ValidationError):
        artifact_env.store.open_artifact(*ref, name)
    assert artifact_env.store.list_artifacts(*ref) == []


def test_replacing_and_deleting_a_path(artifact_env: ArtifactEnv) -> None:
    ref = _experiment(artifact_env)
    _put(artifact_env, ref, "last.ckpt", b"epoch 1")
    _put(artifact_env, ref, "last.ckpt", b"epoch 2")
    assert _read(artifact_env, ref, "last.ckpt") == b"epoch 2"
    artifact_env.store.delete_artifact(*ref, "last.ckpt")
    assert artifact_env.store.list_artifacts(*ref) == []
    with pytest.raises(NotFoundError):
        artifact_env.store.delete_artifact(*ref, "last.ckpt")


def test_a_deleted_project_takes_no_upload_until_restored(artifact_env: ArtifactEnv) -> None:
    """As every other write to its experiments (MLflow refuses log_artifact to the runs of a
    deleted experiment): a ConflictError naming the project; its artifacts stay readable."""
    ref = _experiment(artifact_env)
    _put(artifact_env, ref, "kept.txt", b"kept")
    artifact_env.store.delete_project(ref[0])
    with pytest.raises(ConflictError) as err:
        _put(artifact_env, ref, "late.txt", b"late")
    assert err.value.field == "project" and f"project {ref[0]} is deleted" in err.value.message
    assert [a.path for a in artifact_env.store.list_artifacts(*ref)] == ["kept.txt"]
    assert _read(artifact_env, ref, "kept.txt") == b"kept"
    artifact_env.store.restore_project(ref[0])
    assert _put(artifact_env, ref, "late.txt", b"late").path == "late.txt"


def test_checkpoint_links_its_weights_hash(artifact_env: ArtifactEnv) -> None:
    ref = _experiment(artifact_env)
    weights = os.urandom(4096)
    wh = hashlib.sha1(weights).hexdigest()
    _put(
        artifact_env,
        ref,
        "checkpoints/epoch-0002.pt",
        weights,
        weights_hash_value=wh,
        epoch=2,
        iteration=40,
    )
    links = artifact_env.store.find_weights_hash(wh)
    assert [(k.project_id, k.experiment_id, k.epoch, k.iteration) for k in links] == [(*ref, 2, 40)]
    assert links[0].checkpoint == "checkpoints/epoch-0002.pt"
    found = artifact_env.store.find_checkpoints(wh)
    assert [(a.project_id, a.experiment_id, a.path) for a in found] == [
        (*ref, "checkpoints/epoch-0002.pt")
    ]
    assert artifact_env.store.find_checkpoints(HASH) == []


def test_garbage_collection_keeps_referenced_blobs(artifact_env: ArtifactEnv) -> None:
    ref = _experiment(artifact_env)
    kept, dropped = os.urandom(2048), os.urandom(2048)
    _put(artifact_env, ref, "kept.bin", kept)
    _put(artifact_env, ref, "dropped.bin", dropped)
    artifact_env.store.delete_artifact(*ref, "dropped.bin")
    report = artifact_env.admin.collect_garbage(3600)
    digests = blob_digests(artifact_env.blobs)
    assert hashlib.sha256(kept).hexdigest() in digests
    assert hashlib.sha256(dropped).hexdigest() not in digests
    assert report.blobs >= 1 and report.bytes >= 2048
    assert _read(artifact_env, ref, "kept.bin") == kept
    if artifact_env.admin is not artifact_env.store:  # a plain user may not collect
        with pytest.raises(PermissionDeniedError):
            artifact_env.store.collect_garbage(3600)


def test_another_user_reaches_no_artifact(artifact_env: ArtifactEnv) -> None:
    if artifact_env.server is None:
        pytest.skip("the embedded store is single-user; see test_scoped_store_denies_others")
    from mltrail.store.http import HttpStore
    from support.servers import unique_name

    ref = _experiment(artifact_env)
    wh = "cd" * 20
    _put(artifact_env, ref, "secret.pt", b"secret weights", weights_hash_value=wh)
    other = HttpStore(artifact_env.server.url, artifact_env.server.make_token(unique_name()))
    try:
        for call in (
            lambda: other.list_artifacts(*ref),
            lambda: other.open_artifact(*ref, "secret.pt"),
            lambda: other.delete_artifact(*ref, "secret.pt"),
            lambda: other.put_artifact(*ref, "planted.txt", io.BytesIO(b"x")),
        ):
            with pytest.raises(PermissionDeniedError):
                call()
        assert other.find_checkpoints(wh) == []
        assert other.find_weights_hash(wh) == []
    finally:
        other.close()
    assert [a.path for a in artifact_env.store.list_artifacts(*ref)] == ["secret.pt"]


def test_scoped_store_denies_others(migrated_sqlite_url: str, tmp_path) -> None:
    from mltrail.core.types import User

    store = SqlStore.open(migrated_sqlite_url, blobs=open_blobs(tmp_path / "blobs"))
    alice = store.as_user(store.auth.create_user("alice"))
    bob = store.as_user(User(store.auth.create_user("bob").id, "bob", False))
    project = alice.create_project("private")
    number = alice.create_experiment(project.id).experiment_id
    alice.put_artifact(project.id, number, "a.txt", io.BytesIO(b"alice's"))
    with pytest.raises(PermissionDeniedError):
        bob.open_artifact(project.id, number, "a.txt")
    with pytest.raises(PermissionDeniedError):
        bob.list_artifacts(project.id, number)
    store.close()


def test_per_file_limit_and_project_quota(migrated_sqlite_url: str, tmp_path) -> None:
    limits = ArtifactLimits(max_file_bytes=1000, project_quota_bytes=1500)
    store = SqlStore.open(migrated_sqlite_url, blobs=open_blobs(tmp_path / "blobs"), limits=limits)
    project = store.create_project("quota")
    number = store.create_experiment(project.id).experiment_id
    with pytest.raises(PayloadTooLargeError) as caught:
        store.put_artifact(project.id, number, "big.bin", io.BytesIO(b"x" * 1001))
    assert caught.value.field == "size"
    store.put_artifact(project.id, number, "a.bin", io.BytesIO(b"a" * 800))
    with pytest.raises(PayloadTooLargeError) as caught:
        store.put_artifact(project.id, number, "b.bin", io.BytesIO(b"b" * 800))
    assert caught.value.field in ("quota", "size")
    store.put_artifact(project.id, number, "a.bin", io.BytesIO(b"c" * 900))  # replacing fits
    assert [a.size for a in store.list_artifacts(project.id, number)] == [900]
    assert list((tmp_path / "blobs" / "staging").iterdir()) == []
    store.close()
