"""``mltrail demo`` leaves a store the contract's five methods work on, and serves the UI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import httpx

import mltrail
from mltrail.cli.demo import CONFIGS
from support.servers import free_port


def _env() -> dict[str, str]:
    return dict(os.environ)  # MLTRAIL_HOME is this test's own (autouse fixture)


def test_demo_no_serve_leaves_a_store_for_the_five_methods():
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "demo", "--no-serve"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "3 experiments recorded" in done.stdout

    with mltrail.as_api() as api:
        [project] = api.projects.list()
        p = project["project_id"]
        runs = api.experiments.list(p)
        assert [r["status"] for r in runs] == ["done"] * 3
        assert [r["hyperparameters"]["learning_rate"] for r in runs] == [
            c["learning_rate"] for c in CONFIGS
        ]
        assert all(
            r["ex_metrics"]["ex_cost"] > 0 and r["ex_metrics"]["ex_reviewed"] is True for r in runs
        )
        assert all({"train/loss", "validation/accuracy"} <= set(r["metrics"]) for r in runs)

        out = io.StringIO()
        lines = api.experiments.logs(p, 3, disable_colors=True, follow=False, file=out)
        text = out.getvalue()
        assert "epoch 7: val_loss=" in text and "mltrail_demo INFO mlp-h16-lr2.0 done" in text
        assert {ln.stream for ln in lines} >= {"stdout", "mltrail_demo"}

        details = api.experiments.get(p, 3)
        assert len(details["weights"]) == 8  # one hash per epoch
        last_hash = details["weights"][-1]["weights_hash"]
        per_iteration = api.store.read_iteration_metrics(p, 3)
        assert [m.key for m in per_iteration] == ["ex_holdout_accuracy"]
        [chart] = api.store.list_charts(p, 3)
        assert chart.spec.y_names == ("precision", "recall") and len(chart.spec.x) == 9

        # the five contract methods keep working on the demo's experiments
        assert api.experiments.update_metrics('{"ex_owner": "me"}', project=p, experiment=1)
        assert api.experiments.list(p)[0]["ex_metrics"]["ex_owner"] == "me"
        assert (
            api.experiments.update_metrics_per_iteration(last_hash, json.dumps({"ex_drift": 0.2}))
            == 1
        )
        targets = api.experiments.update_chart(
            "loss by width", weights_hash=last_hash, chart_x=[4, 8, 16], chart_y=[0.6, 0.3, 0.1]
        )
        assert targets == [{"project": p, "experiment": 3}]
        assert {c.spec.name for c in api.store.list_charts(p, 3)} == {
            "precision-recall by threshold",
            "loss by width",
        }


def test_demo_serves_the_ui_on_the_port_given():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mltrail", "demo", "--port", str(port)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert status == 200, proc.stdout.read() if proc.poll() is not None else "no answer"
    finally:
        proc.terminate()
        proc.wait(20)
