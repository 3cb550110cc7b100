"""The SDK against a real ``mltrail server`` subprocess, including one killed mid-run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import pytest

import mltrail
from mltrail.core.types import Status
from mltrail.sdk.experiment import start
from mltrail.sdk.spool import RunAddress, Spool
from mltrail.store.http import HttpStore
from sdk.training import train_logistic


def _server_settings(settings, server):
    return settings.with_(url=server.url, token=server.admin_token)


def test_training_loop_through_a_real_server(settings, live_server):
    server_settings = _server_settings(settings, live_server)
    with start("served", hyperparams={"lr": 0.5}, settings=server_settings) as exp:
        logged = train_logistic(exp)
    api = mltrail.as_api(live_server.url, live_server.admin_token)
    try:
        [row] = api.experiments.list(exp.project_id)
        assert row["status"] == "done" and row["hyperparameters"] == {"lr": 0.5}
        train = api.experiments.series(exp.project_id, exp.experiment_id, "loss")
        assert train["iterations"] == [i for i, _, _ in logged["train"]]
        assert train["values"] == [v for _, _, v in logged["train"]]
        weights = api.experiments.get(exp.project_id, exp.experiment_id)["weights"]
        assert [(w["weights_hash"], w["iteration"], w["epoch"]) for w in weights] == logged[
            "hashes"
        ]
        lines = api.store.read_logs(exp.project_id, exp.experiment_id)
        assert next(ln.message for ln in lines if ln.stream == "stdout").startswith(
            "epoch 0 accuracy"
        )
    finally:
        api.close()


def _log_range(exp, start_it: int, stop_it: int) -> None:
    for i in range(start_it, stop_it):
        exp.log({"loss": 1.0 / (i + 1), "step": float(i)}, iteration=i)


def test_server_killed_mid_run_then_sync_stores_every_point_once(settings, server, tmp_path):
    server_settings = _server_settings(settings, server).with_(strict=False)
    store = HttpStore(server.url, server.admin_token, retries=0)
    exp = start("crash", settings=server_settings, store=store)
    _log_range(exp, 0, 3000)
    exp.flush()
    server.kill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the writer warns that it spools
        _log_range(exp, 3000, 6000)
        print("logged while the server was down")
        exp.log_weights({"w": [1.0, 2.0]}, epoch=0)
        t0 = time.monotonic()
        exp.end(timeout=5)
    assert time.monotonic() - t0 < 15
    spool = Spool.from_settings(server_settings)
    assert spool.files(), "nothing was spooled while the server was down"

    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {
        "MLTRAIL_HOME": str(settings.home),
        "MLTRAIL_URL": server.url,
        "MLTRAIL_TOKEN": server.admin_token,
    }
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "uploaded" in done.stdout
    assert spool.files() == []
    # a second sync has nothing left to do
    again = subprocess.run(
        [sys.executable, "-m", "mltrail", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "nothing to sync" in again.stdout

    with HttpStore(server.url, server.admin_token) as check:
        for key in ("loss", "step"):
            series = check.read_series(exp.project_id, exp.experiment_id, key, "train")
            assert series.iterations.tolist() == list(range(6000)), key
        assert check.read_series(
            exp.project_id, exp.experiment_id, "step", "train"
        ).values.tolist() == [float(i) for i in range(6000)]
        record = check.get_experiment(exp.project_id, exp.experiment_id)
        assert record.status is Status.DONE
        assert [w.epoch for w in check.list_weights_links(exp.project_id, exp.experiment_id)] == [0]
        messages = [ln.message for ln in check.read_logs(exp.project_id, exp.experiment_id)]
        assert messages.count("logged while the server was down") == 1


def test_server_back_before_the_end_gets_the_spool_from_the_writer(settings, server):
    server_settings = _server_settings(settings, server).with_(strict=False)
    store = HttpStore(server.url, server.admin_token, retries=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with start("blip", settings=server_settings, store=store) as exp:
            _log_range(exp, 0, 100)
            exp.flush()
            server.kill()
            _log_range(exp, 100, 200)
            deadline = time.monotonic() + 30
            while exp._writer.spooled_batches == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert exp._writer.spooled_batches > 0
            server.start()
            _log_range(exp, 200, 300)
    assert Spool.from_settings(server_settings).files() == []
    with HttpStore(server.url, server.admin_token) as check:
        series = check.read_series(exp.project_id, exp.experiment_id, "loss", "train")
        assert series.iterations.tolist() == list(range(300))
        assert check.get_experiment(exp.project_id, exp.experiment_id).status is Status.DONE


def test_a_training_script_in_server_mode_never_imports_sqlalchemy(shared_server):
    # (click is not checked: httpx imports it for its own command line when it is installed)
    server = shared_server  # only its address: no server of its own to start
    code = (
        "import sys, mltrail\n"
        "with mltrail.start('light') as exp:\n"
        "    exp.log({'loss': 1.0})\n"
        "print(sorted(m for m in ('sqlalchemy', 'fastapi', 'alembic', 'uvicorn') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {
        "MLTRAIL_HOME": os.environ["MLTRAIL_HOME"],
        "MLTRAIL_URL": server.url,
        "MLTRAIL_TOKEN": server.admin_token,
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_sync_with_the_server_down_keeps_the_spool_and_fails(settings, tmp_path):
    from mltrail.sdk.records import encode_status
    from support.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    spool = Spool.from_settings(settings.with_(url=url))
    spool.write(RunAddress(url, (1, 1)), "c", encode_status(Status.DONE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_HOME": str(settings.home), "MLTRAIL_URL": url, "MLTRAIL_TOKEN": "t"}
    # a port nobody listens on refuses at once, so only the client's pauses between attempts
    # take time (0.2 + 0.4 + ... + 3.2 s by default): a 1 s deadline, the user's setting, ends
    # them sooner; the sync's own handling of an unreachable server is what is checked
    env["MLTRAIL_REQUEST_DEADLINE"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "1 batches remain" in done.stderr and "run `mltrail sync` again" in done.stderr
    assert len(spool.files()) == 1


def test_strict_mode_raises_the_transport_fault_into_training(settings, server):
    from mltrail.core.errors import TransportError

    store = HttpStore(server.url, server.admin_token, retries=0)
    exp = start("strict", settings=_server_settings(settings, server), store=store)
    exp.log({"loss": 1.0})
    exp.flush()
    server.kill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        deadline = time.monotonic() + 60
        with pytest.raises(TransportError, match="spooled"):
            while time.monotonic() < deadline:
                exp.log({"loss": 0.5})
                time.sleep(0.05)
        exp.end(timeout=2)
    assert Spool.from_settings(_server_settings(settings, server)).files()  # nothing was lost
