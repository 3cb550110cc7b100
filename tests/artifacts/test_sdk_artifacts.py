"""exp.log_artifact / exp.log_checkpoint with the user's defaults (console capture, background
writer): embedded and through real servers, local folder and S3; spooled while the server is
down and synced exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import mltrail
from mltrail.api import Api
from mltrail.config import Settings
from mltrail.sdk.spool import Spool
from mltrail.sdk.sync import sync
from mltrail.store import open_store
from mltrail.store.blobs import open_blobs

from .conftest import blob_digests

torch = pytest.importorskip("torch")

MODES = [
    ("embedded", "sqlite", "local"),
    ("server", "sqlite", "s3"),
    ("server", "postgres", "local"),
]


def _settings(request: pytest.FixtureRequest, mode: str, db: str, backend: str, home: Path):
    settings = Settings.from_env().with_(home=home)
    if mode == "server":
        proc, location = request.getfixturevalue("artifact_servers")(db, backend)
        return settings.with_(url=proc.url, token=proc.admin_token), location
    location = request.getfixturevalue("s3_location") if backend == "s3" else None
    settings = settings.with_(artifacts=location)
    return settings, settings.artifacts_location


@pytest.mark.parametrize("mode,db,backend", MODES, ids=["-".join(m) for m in MODES])
def test_a_20mb_checkpoint_downloads_by_weights_hash(
    mode: str, db: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings, _ = _settings(request, mode, db, backend, tmp_path / "home")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2500, 2000), torch.nn.Linear(2000, 10))
    with mltrail.start("checkpoints", settings=settings) as exp:
        exp.log({"loss": 0.5}, epoch=3)
        logged = exp.log_checkpoint(model, epoch=3)
    assert logged.result(timeout=120) == mltrail.weights_hash(model)
    digest = logged.result()

    env = {**os.environ, **settings.to_env()}
    dest = tmp_path / "model.pt"
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "models", "download", "-w", digest, "-d", str(dest)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "checkpoints/epoch-0003.pt" in done.stdout
        and f"experiment {exp.experiment_id}" in done.stdout
    )
    assert "epoch 3" in done.stdout
    assert dest.stat().st_size > 20_000_000
    loaded = torch.load(dest, weights_only=True)
    assert mltrail.weights_hash(loaded) == digest
    with Api.from_settings(settings) as api:
        [link] = api.models.find(digest)
        assert (link["experiment"], link["epoch"], link["checkpoint"]) == (
            exp.experiment_id,
            3,
            "checkpoints/epoch-0003.pt",
        )
    assert not list((settings.upload_dir / exp.client_id).glob("*"))  # kept copies removed


def test_files_and_folders_and_one_blob_for_two_experiments(tmp_path: Path) -> None:
    settings = Settings.from_env().with_(home=tmp_path / "home")
    report = tmp_path / "report"
    (report / "plots").mkdir(parents=True)
    (report / "summary.json").write_text('{"acc": 0.9}')
    (report / "plots" / "loss.csv").write_text("step,loss\n0,1.0\n")
    shared = tmp_path / "tokenizer.json"
    shared.write_bytes(os.urandom(50_000))
    experiments = []
    for name in ("first", "second"):
        with mltrail.start("files", name, settings=settings) as exp:
            queued = exp.log_artifact(report)
            exp.log_artifact(shared, "assets/tokenizer.json")
            (report / "summary.json").write_text("changed after logging")  # the copy was taken
            experiments.append(exp.experiment_id)
        (report / "summary.json").write_text('{"acc": 0.9}')
    assert queued == ["report/plots/loss.csv", "report/summary.json"]
    with Api.from_settings(settings) as api:
        paths = [a["path"] for a in api.artifacts.list(1, experiments[0])]
        assert paths == ["assets/tokenizer.json", "report/plots/loss.csv", "report/summary.json"]
        got = api.artifacts.download(1, experiments[1], "report", tmp_path / "back")
        assert (got / "summary.json").read_text() == '{"acc": 0.9}'
        assert (got / "plots" / "loss.csv").read_text() == "step,loss\n0,1.0\n"
    assert len(blob_digests(open_blobs(settings.artifacts_location))) == 3  # not 6


def test_bad_names_raise_on_the_training_thread(tmp_path: Path) -> None:
    settings = Settings.from_env().with_(home=tmp_path / "home")
    (tmp_path / "a.txt").write_text("a")
    with mltrail.start("names", settings=settings) as exp:
        with pytest.raises(ValueError, match="relative path"):
            exp.log_artifact(tmp_path / "a.txt", "/etc/passwd")
        with pytest.raises(ValueError, match=r"'\.\.'"):
            exp.log_artifact(tmp_path / "a.txt", "../up.txt")
        with pytest.raises(ValueError, match="checkpoint file must end"):
            exp.log_checkpoint(tmp_path / "a.txt")
        with pytest.raises(ValueError, match="no such file"):
            exp.log_artifact(tmp_path / "missing.txt")


def test_uploads_wait_in_the_spool_while_the_server_is_down_and_sync_once(
    server_factory, migrated_sqlite_url: str, tmp_path: Path
) -> None:
    server = server_factory(
        migrated_sqlite_url, extra_args=("--artifacts", str(tmp_path / "blobs"))
    )
    settings = Settings.from_env().with_(
        home=tmp_path / "home", url=server.url, token=server.admin_token
    )
    config = tmp_path / "config.yaml"
    config.write_text("lr: 0.1\n")
    model = torch.nn.Linear(40, 30)
    exp = mltrail.start("offline", settings=settings)
    server.stop()  # from here on the store is unreachable
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        exp.log_artifact(config)
        logged = exp.log_checkpoint(model, epoch=0)
        exp.end(timeout=20)
    assert logged.result(timeout=5) == mltrail.weights_hash(model)
    spool = Spool.from_settings(settings)
    records = [json.loads(p.read_bytes()) for p in spool.files()]
    uploads = [r for r in records if r["kind"] == "artifact"]
    assert sorted(r["path"] for r in uploads) == ["checkpoints/epoch-0000.pt", "config.yaml"]
    assert all(
        Path(r["file"]).is_file() and os.path.getsize(p) < 4096
        for r, p in zip(records, spool.files(), strict=False)
        if r["kind"] == "artifact"
    )

    server.start()
    with open_store(settings) as store:
        first = sync(store, settings)
        second = sync(store, settings)
        stored = store.list_artifacts(exp.project_id, exp.experiment_id)
        links = store.find_weights_hash(logged.result())
    assert first.sent >= 2 and first.remaining == 0 and second.sent == 0
    assert sorted(a.path for a in stored) == ["checkpoints/epoch-0000.pt", "config.yaml"]
    assert [link.checkpoint for link in links] == ["checkpoints/epoch-0000.pt"]
    assert all(not Path(r["file"]).exists() for r in uploads)  # kept copies removed once stored


def test_checkpoints_hold_the_weights_of_their_call_when_the_model_changes_right_after(
    tmp_path: Path,
) -> None:
    """A PyTorch model is copied at the call and written later by the uploader: each stored
    file (and future) holds that epoch's weights, tied weights stay one tensor in the file."""
    settings = Settings.from_env().with_(home=tmp_path / "home")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(300, 300), torch.nn.Linear(300, 300))
    model[1].weight = model[0].weight  # tied
    expected, logged = [], []
    with mltrail.start("snapshots", settings=settings) as exp:
        for epoch in range(4):
            expected.append(mltrail.weights_hash(model))
            logged.append(exp.log_checkpoint(model, epoch=epoch))
            with torch.no_grad():  # the next step changes the weights at once
                model[0].weight.add_(1.0)
                model[1].bias.mul_(2.0)
    assert [f.result(timeout=60) for f in logged] == expected
    assert len(set(expected)) == 4
    with Api.from_settings(settings) as api:
        for epoch, digest in enumerate(expected):
            dest = api.artifacts.download(
                exp.project_id,
                exp.experiment_id,
                f"checkpoints/epoch-{epoch:04d}.pt",
                tmp_path / f"{epoch}.pt",
            )
            loaded = torch.load(dest, weights_only=True)
            assert mltrail.weights_hash(loaded) == digest
            assert loaded["0.weight"].data_ptr() == loaded["1.weight"].data_ptr()
            [link] = api.models.find(digest)
            assert link["epoch"] == epoch
