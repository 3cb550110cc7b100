"""A real numpy training loop the SDK tests record, returning what it logged."""

from __future__ import annotations

import numpy as np


def make_dataset(n: int = 256, dim: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A linearly separable-ish binary classification problem."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    w = rng.normal(size=dim)
    y = (x @ w + 0.1 * rng.normal(size=n) > 0).astype(np.float64)
    return x, y


def train_logistic(exp, *, epochs: int = 3, batch: int = 32, lr: float = 0.5) -> dict:
    """Logistic regression by minibatch SGD, logging through ``exp``; returns what was logged."""
    x, y = make_dataset()
    w, b = np.zeros(x.shape[1]), np.zeros(1)
    logged = {"train": [], "validation": [], "hashes": []}
    iteration = 0
    for epoch in range(epochs):
        for start in range(0, len(x), batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            p = 1 / (1 + np.exp(-(xb @ w + b)))
            loss = float(-np.mean(yb * np.log(p + 1e-9) + (1 - yb) * np.log(1 - p + 1e-9)))
            w -= lr * xb.T @ (p - yb) / len(xb)
            b -= lr * np.mean(p - yb, keepdims=True)
            exp.log({"loss": loss}, iteration=iteration, epoch=epoch)
            logged["train"].append((iteration, epoch, loss))
            iteration += 1
        acc = float(np.mean(((x @ w + b) > 0) == y))
        print(f"epoch {epoch} accuracy {acc:.4f}")
        digest = exp.epoch_end({"accuracy": acc}, model={"w": w, "b": b}, epoch=epoch)
        logged["validation"].append((iteration - 1, epoch, acc))
        logged["hashes"].append((digest, iteration - 1, epoch))
    return logged
