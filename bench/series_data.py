"""The metric values every workload logs: noisy random walks, the same on every side.

Values that repeat every 1,000 iterations sit inside zlib's window and compress to ~2.6 bytes
per point, which no training run produces. A loss-like random walk with Gaussian steps keeps
every mantissa bit busy, as real float64 metrics do. Imported by mltrail's worker
(``bench.series_data``) and by the MLflow-client worker (``series_data``, run from this folder
under the peers' virtualenv), so it needs numpy only.
"""

from __future__ import annotations

import numpy as np

SEED = 17


def random_walk(keys: int, iterations: int, seed: int = SEED) -> np.ndarray:
    """A ``(iterations, keys)`` float64 matrix: per key, a decaying loss plus a random walk.

    Args:
        keys: number of series (columns).
        iterations: points per series (rows).
        seed: generator seed; the same seed gives the same values.
    """
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.01, size=(iterations, keys))
    start = rng.uniform(0.5, 3.0, size=keys)
    decay = np.exp(-np.arange(iterations, dtype=np.float64) / max(iterations / 3, 1.0))
    return start * decay[:, None] + np.cumsum(steps, axis=0)


def as_item(values: np.ndarray) -> np.ndarray:
    """``values`` as PyTorch's ``.item()`` gives a float32 tensor's: rounded to float32, then
    widened to a Python float (float64). Most training metrics (``loss.item()``,
    ``tensor.mean().item()``) are such values."""
    return values.astype(np.float32).astype(np.float64)


def key_names(keys: int) -> list[str]:
    """The metric names of ``keys`` series, the same on every side."""
    return [f"metric_{k:02d}" for k in range(keys)]
