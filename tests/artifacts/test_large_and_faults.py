"""Artifacts of any size, with faults: a round trip in bounded memory, an upload killed
halfway, a server SIGKILLed during an upload. Real server processes, SQLite and PostgreSQL,
a local folder and S3 (moto)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from mltrail.api import Api
from mltrail.core.errors import MltrailError
from mltrail.store.blobs import open_blobs
from mltrail.store.http import HttpStore

from .conftest import ArtifactEnv, blob_digests

MIB = 1024**2
RSS_GROWTH_LIMIT = 160 * MIB  # the benchmark's target is 64 MiB; here room for allocator noise
# The round trip's file: larger than the memory bound by 96 MiB, so a client or server that
# held the file (or any buffer of more than 160 MiB of it) fails the bound; a 1 GiB file proved
# no more and took four times as long (moto, a pure-Python S3 server, most of it). It is still
# 32 parts of the S3 store's 8 MiB.
LARGE = 256 * MIB
_FOUR = [
    ("server", "sqlite", "local"),
    ("server", "postgres", "s3"),
    ("embedded", "postgres", "local"),
    ("embedded", "sqlite", "s3"),
]
# every mode, database and blob store at least once (the 8 combinations run in the contract)
FOUR_COMBINATIONS = pytest.mark.parametrize(
    "artifact_env", _FOUR, ids=["-".join(c) for c in _FOUR], indirect=True
)


def write_file(path: Path, size: int) -> str:
    """A file of ``size`` distinct-looking bytes (1 MiB blocks, each numbered); its sha256."""
    digest = hashlib.sha256()
    block = bytes(range(256)) * 4096
    with path.open("wb") as out:
        for number in range(size // MIB):
            data = number.to_bytes(8, "little") + block[8:]
            digest.update(data)
            out.write(data)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


class PeakRss:
    """The highest RSS of a process, sampled every 20 ms while in the ``with`` block."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.start

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
@pytest.mark.timeout(900)  # moto, a pure-Python S3 server, is slow on a loaded machine
@FOUR_COMBINATIONS
def test_a_file_larger_than_the_memory_bound_round_trips_byte_identical_in_it(
    artifact_env: ArtifactEnv, tmp_path: Path
) -> None:
    source = tmp_path / "large.bin"
    digest = write_file(source, LARGE)
    api = Api(artifact_env.store)
    project = artifact_env.store.create_project("large")
    number = artifact_env.store.create_experiment(project.id).experiment_id
    server_pid = artifact_env.server.proc.pid if artifact_env.server else None
    with (
        PeakRss(psutil.Process().pid) as client,
        PeakRss(server_pid or psutil.Process().pid) as server,
    ):
        stored = api.artifacts.upload(project.id, number, source, "data/large.bin")
        written = api.artifacts.download(
            project.id, number, "data/large.bin", tmp_path / "back.bin"
        )
    assert stored[0]["sha256"] == digest and stored[0]["size"] == LARGE
    assert file_digest(written) == digest
    # pytest keeps the last runs' tmp folders: 512 MiB per combination would pile up on CI's disk
    source.unlink()
    written.unlink()
    assert client.growth < RSS_GROWTH_LIMIT, f"client RSS grew {client.growth / MIB:.0f} MiB"
    assert server.growth < RSS_GROWTH_LIMIT, f"server RSS grew {server.growth / MIB:.0f} MiB"
    print(f"RSS growth: client {client.growth / MIB:.0f} MiB, server {server.growth / MIB:.0f} MiB")


_HALF_UPLOAD = """
import sys, time
from mltrail.core.artifacts import artifact_upload
from mltrail.store.blobs import open_blobs
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore

target, where, project, experiment = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

class HalfThenHang:
    sent = 0
    def read(self, size=-1):
        if self.sent >= 32 * 2**20:
            print("half", flush=True)
            time.sleep(3600)
        self.sent += 2**20
        return bytes([self.sent % 251]) * 2**20

if target.startswith("http"):
    store = HttpStore(target, where)
else:
    store = SqlStore.open(target, blobs=open_blobs(where))
upload = artifact_upload("half.bin", size=64 * 2**20)
store.put_artifact(project, experiment, upload, HalfThenHang())
"""


def _start_half_upload(args: list[str]) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HALF_UPLOAD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "half", child.stderr.read() if child.stderr else line
    return child


def _full_upload(store, ref: tuple[int, int], name: str = "half.bin") -> bytes:
    from mltrail.core.artifacts import artifact_upload

    data = bytes(range(256)) * (64 * MIB // 256)
    upload = artifact_upload(name, size=len(data), sha256_value=hashlib.sha256(data).hexdigest())
    import io

    store.put_artifact(*ref, upload, io.BytesIO(data))
    return data


def _read(store, ref: tuple[int, int], name: str) -> bytes:
    with store.open_artifact(*ref, name) as reader:
        return b"".join(reader.chunks)


def _wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _no_leftovers(location: str) -> bool:
    blobs = open_blobs(location)
    if location.startswith("s3://"):
        uploads = blobs.client.list_multipart_uploads(Bucket=blobs.bucket, Prefix=blobs.prefix)  # type: ignore[attr-defined]
        return not uploads.get("Uploads")
    staging = Path(location) / "staging"
    return not staging.is_dir() or not list(staging.iterdir())


@FOUR_COMBINATIONS
def test_upload_killed_halfway_leaves_nothing_visible_and_a_retry_completes(
    artifact_env: ArtifactEnv,
) -> None:
    store = artifact_env.store
    project = store.create_project("killed upload")
    ref = (project.id, store.create_experiment(project.id).experiment_id)
    if artifact_env.server is not None:
        token = store._http.client.headers["Authorization"].split()[1]  # type: ignore[attr-defined]
        args = [artifact_env.server.url, token]
    else:
        args = [str(store.url), artifact_env.location]  # type: ignore[attr-defined]
    child = _start_half_upload([*args, str(ref[0]), str(ref[1])])
    child.kill()
    child.wait(10)
    assert store.list_artifacts(*ref) == []
    if artifact_env.server is not None:  # the server noticed the cut and cleaned up
        assert _wait_for(lambda: _no_leftovers(artifact_env.location))
    data = _full_upload(store, ref)
    assert [a.path for a in store.list_artifacts(*ref)] == ["half.bin"]
    assert _read(store, ref, "half.bin") == data
    artifact_env.admin.collect_garbage(0)  # a killed embedded writer left its staging behind
    assert _no_leftovers(artifact_env.location)


@pytest.mark.parametrize("db,backend", [("sqlite", "local"), ("postgres", "s3")])
def test_server_killed_during_an_upload_loses_no_acknowledged_artifact(
    db: str, backend: str, request: pytest.FixtureRequest, server_factory, tmp_path: Path
) -> None:
    db_url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    location = (
        request.getfixturevalue("s3_location") if backend == "s3" else str(tmp_path / "artifacts")
    )
    server = server_factory(db_url, extra_args=("--artifacts", location))
    store = HttpStore(server.url, server.admin_token, retries=0)
    project = store.create_project("crash")
    ref = (project.id, store.create_experiment(project.id).experiment_id)
    acknowledged = _full_upload(store, ref, "acknowledged.bin")
    child = _start_half_upload([server.url, server.admin_token, str(ref[0]), str(ref[1])])
    try:
        server.kill()  # SIGKILL while the other upload is halfway
    finally:
        child.kill()
        child.wait(10)
    server.start()
    after = HttpStore(server.url, server.admin_token)
    try:
        assert [a.path for a in after.list_artifacts(*ref)] == ["acknowledged.bin"]
        assert _read(after, ref, "acknowledged.bin") == acknowledged
        with pytest.raises(MltrailError):
            after.open_artifact(*ref, "half.bin")
        retried = _full_upload(after, ref)
        assert _read(after, ref, "half.bin") == retried
        after.collect_garbage(0)
        digests = blob_digests(open_blobs(location))
        assert hashlib.sha256(acknowledged).hexdigest() in digests
    finally:
        after.close()
        store.close()
