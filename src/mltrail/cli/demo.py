"""``mltrail demo``: record a few real (tiny) training runs, enrich them, open the UI.

A one-hidden-layer MLP written in numpy (bit-identical on every CPU) learns a noisy disc-inside-a-ring problem with several
learning rates and widths. Each run is a real mltrail experiment: per-iteration train metrics,
per-epoch validation metrics, the weights hash at every epoch end, console output through
``print`` and ``logging``. Then the contract's methods add an ``ex_`` metric, a per-iteration
external metric (through the best epoch's weights hash) and a multi-line custom chart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import click
import numpy as np

from mltrail.config import DEFAULT_PORT

DEMO_PROJECT = "mltrail-demo"
CONFIGS = (
    {"learning_rate": 0.5, "hidden": 4},
    {"learning_rate": 1.0, "hidden": 8},
    {"learning_rate": 2.0, "hidden": 16},
)
EPOCHS = 8
BATCH_SIZE = 32
log = logging.getLogger("mltrail_demo")


@dataclass
class RunResult:
    project_id: int
    experiment_id: int
    name: str
    val_accuracy: float
    best_hash: str
    best_epoch: int
    thresholds: list[float]
    precision_recall: list[list[float]]


@click.command()
@click.option("--no-serve", is_flag=True, help="Record the runs, print the summary, then exit.")
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535),
    help="Port for the web UI.",
)  # fmt: skip
def demo(no_serve: bool, port: int) -> None:
    """Train a tiny numpy model a few ways, record it all, then open the web UI."""
    from mltrail.api import Api
    from mltrail.cli.common import get_settings

    settings = get_settings()
    _configure_logging()
    data = make_data(np.random.default_rng(7))
    with Api.from_settings(settings) as api:  # one store for every run and the enrichment
        results = [train_run(config, data, settings, api.store) for config in CONFIGS]
        for result in results:
            enrich(api, result)
    print_summary(results)
    if no_serve:
        return
    if not settings.embedded:
        click.echo(f"recorded on {settings.url}: open it in a browser")
        return
    from mltrail.cli.server import run_ui

    run_ui(settings, host="127.0.0.1", port=port)


def _configure_logging() -> None:
    """The demo's logger prints to the console (and, while a run is recorded, to its logs)."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


# --- the model -------------------------------------------------------------------------------------
# Every number the demo prints or hashes must be the same on every CPU, so the model uses only
# what IEEE 754 defines exactly: + - * / and sqrt, element by element, and sums in numpy's fixed
# order. No BLAS (``@`` picks a kernel per CPU, see OPENBLAS_CORETYPE), no exp/log/tanh/sin (numpy
# and libm choose SIMD variants per CPU) and no normal sampling (its tails use log).


def make_data(rng: np.random.Generator, n: int = 768) -> dict[str, np.ndarray]:
    """A noisy disc inside a ring (not linearly separable), split 2:1 into train and validation."""
    points = rng.uniform(-1.0, 1.0, size=(4 * n, 2))
    r2 = (points * points).sum(axis=1)
    inside, ring = r2 < 0.3, (r2 > 0.42) & (r2 < 1.0)
    keep = np.flatnonzero(inside | ring)[:n]
    x = points[keep] + rng.uniform(-0.05, 0.05, size=(len(keep), 2))
    label = inside[keep].astype(np.int64)
    cut = 2 * n // 3
    return {"x": x[:cut], "y": label[:cut], "x_val": x[cut:], "y_val": label[cut:]}


def init_weights(rng: np.random.Generator, hidden: int) -> dict[str, np.ndarray]:
    scale = 1.0 / np.sqrt(hidden)
    return {
        "w1": rng.uniform(-1.5, 1.5, size=(2, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.uniform(-scale, scale, size=(hidden, 1)),
        "b2": np.zeros(1),
    }


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` as products and a sum in a fixed order (bit-identical on every CPU)."""
    return (a[:, :, None] * b[None, :, :]).sum(axis=1)


def softsign(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``z / (1 + |z|)`` and its derivative: a tanh-like squashing with no transcendental."""
    denominator = 1.0 + np.abs(z)
    return z / denominator, 1.0 / (denominator * denominator)


def forward(
    params: dict[str, np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hidden activations, their slopes, class-1 probabilities and their slopes."""
    hidden, hidden_slope = softsign(matmul(x, params["w1"]) + params["b1"])
    squashed, out_slope = softsign(matmul(hidden, params["w2"])[:, 0] + params["b2"])
    return hidden, hidden_slope, 0.5 + 0.5 * squashed, 0.5 * out_slope


def sgd_step(
    params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, lr: float
) -> tuple[float, float]:
    """One minibatch of gradient descent on the squared error; returns (loss, accuracy)."""
    hidden, hidden_slope, p, out_slope = forward(params, x)
    error = p - y
    grad_out = (2.0 * error * out_slope)[:, None] / len(x)
    grad_hidden = matmul(grad_out, params["w2"].T) * hidden_slope
    params["w2"] -= lr * matmul(hidden.T, grad_out)
    params["b2"] -= lr * grad_out.sum(axis=0)
    params["w1"] -= lr * matmul(x.T, grad_hidden)
    params["b1"] -= lr * grad_hidden.sum(axis=0)
    return float(np.mean(error * error)), float(np.mean((p > 0.5) == y))


def evaluate(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    _, _, p, _ = forward(params, x)
    error = p - y
    return float(np.mean(error * error)), float(np.mean((p > 0.5) == y))


def precision_recall(
    params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[list[float], list[list[float]]]:
    """Precision and recall of class 1 at thresholds 0.1 ... 0.9 (the custom chart's lines)."""
    _, _, p, _ = forward(params, x)
    thresholds = [round(t, 1) for t in np.linspace(0.1, 0.9, 9)]
    rows = []
    for t in thresholds:
        predicted = p > t
        tp = float(np.sum(predicted & (y == 1)))
        precision = tp / max(float(np.sum(predicted)), 1.0)
        recall = tp / max(float(np.sum(y == 1)), 1.0)
        rows.append([round(precision, 4), round(recall, 4)])
    return thresholds, rows


# --- recording ---------------------------------------------------------------------------------------
def train_run(
    config: dict[str, Any], data: dict[str, np.ndarray], settings: Any, store: Any
) -> RunResult:
    """Train one configuration as one mltrail experiment."""
    from mltrail.sdk.experiment import start

    rng = np.random.default_rng(0)
    params = init_weights(rng, config["hidden"])
    name = f"mlp-h{config['hidden']}-lr{config['learning_rate']}"
    hyperparams = {**config, "epochs": EPOCHS, "batch_size": BATCH_SIZE, "optimizer": "sgd"}
    best = (-1.0, "", 0)
    with start(
        DEMO_PROJECT,
        name,
        "numpy MLP, disc inside a ring",
        hyperparams,
        ["demo", "numpy"],
        settings=settings,
    ) as exp:
        print(f"training {name} as experiment {exp.project_id}/{exp.experiment_id}")
        iteration = 0
        for epoch in range(EPOCHS):
            order = rng.permutation(len(data["x"]))
            for start_at in range(0, len(order), BATCH_SIZE):
                rows = order[start_at : start_at + BATCH_SIZE]
                loss, acc = sgd_step(
                    params, data["x"][rows], data["y"][rows], config["learning_rate"]
                )
                exp.log({"loss": loss, "accuracy": acc}, iteration=iteration, epoch=epoch)
                iteration += 1
            val_loss, val_acc = evaluate(params, data["x_val"], data["y_val"])
            digest = exp.epoch_end(
                {"loss": val_loss, "accuracy": val_acc}, model=params, epoch=epoch
            )
            print(f"epoch {epoch}: val_loss={val_loss:.4f} val_accuracy={val_acc:.4f}")
            if val_acc > best[0]:
                best = (val_acc, digest or "", epoch)
        if best[0] < 0.7:
            log.warning("%s: validation accuracy only %.3f", name, best[0])
        log.info("%s done, best epoch %d", name, best[2])
        thresholds, pr = precision_recall(params, data["x_val"], data["y_val"])
    return RunResult(
        exp.ref.project_id, exp.ref.experiment_id, name, val_acc, best[1], best[2], thresholds, pr
    )


def enrich(api: Any, result: RunResult) -> None:
    """What happens after a run, through the contract: cost, a per-iteration metric, a chart."""
    p, e = result.project_id, result.experiment_id
    api.experiments.update_metrics(
        {"ex_cost": round(0.01 * (1 + e), 4), "ex_reviewed": True, "ex_note": "demo"},
        project=p,
        experiment=e,
    )
    api.experiments.update_metrics_per_iteration(
        result.best_hash, {"ex_holdout_accuracy": round(result.val_accuracy - 0.01, 4)}
    )
    api.experiments.update_chart(
        "precision-recall by threshold",
        project=p,
        experiment=e,
        chart_x_name="threshold",
        chart_y_name=["precision", "recall"],
        chart_scope="validation",
        chart_x=result.thresholds,
        chart_y=result.precision_recall,
    )


def print_summary(results: list[RunResult]) -> None:
    from mltrail.cli.common import echo_table

    rows = [
        (r.project_id, r.experiment_id, r.name, round(r.val_accuracy, 4), r.best_epoch, r.best_hash)
        for r in results
    ]
    echo_table(
        ("project", "experiment", "name", "val accuracy", "best epoch", "best weights hash"),
        rows,
        title=f"mltrail demo: {len(results)} experiments recorded",
    )
    project = results[0].project_id
    click.echo(f"try: mltrail experiments list -p {project}")
    click.echo(f"     mltrail experiments logs -p {project} -e {results[-1].experiment_id}")
    click.echo(f"     mltrail models find --weights-hash {results[-1].best_hash}")
