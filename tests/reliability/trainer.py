"""A training process for the fault tests, run as ``python trainer.py NAME N PAUSE RETRIES MODE``.

Logs ``loss`` and ``step`` for iterations 0..N-1 through the SDK in server mode (settings from
the MLTRAIL_* environment), pausing PAUSE seconds per step, with an HttpStore that retries
RETRIES times. MODE:

* ``run``: log everything, end the experiment, print ``DONE <spooled batches>``.
* ``flush-then-hang``: log N, ``exp.flush()`` (returns once the server acknowledged), print
  ``FLUSHED N``, log N more without flushing, print ``LOGGED``, then sleep until killed.
* ``log-wait-end``: log the first half, print ``LOGGED``, wait for a line on stdin (the test
  kills the server meanwhile), log the second half and end as ``run`` does.
* ``wait-then-spool``: print ``STARTED``, wait for a line on stdin (the server is killed
  meanwhile), then log N in batches of 100, flushing each, end and print ``DONE``.
"""

from __future__ import annotations

import sys
import time

from mltrail.config import Settings
from mltrail.sdk.experiment import start
from mltrail.store.http import HttpStore


def _log(exp, first: int, last: int, pause: float, flush_every: int = 0) -> None:
    for i in range(first, last):
        exp.log({"loss": 1.0 / (i + 1), "step": float(i)}, iteration=i)
        if flush_every and (i + 1) % flush_every == 0:
            exp.flush()
        if pause:
            time.sleep(pause)


def main(argv: list[str]) -> None:
    name, n, pause, retries, mode = argv[0], int(argv[1]), float(argv[2]), int(argv[3]), argv[4]
    settings = Settings.from_env().with_(capture_console=False)
    store = HttpStore(settings.url, settings.auth_token, retries=retries, backoff=0.2)
    exp = start("faults", name, settings=settings, store=store)
    print("STARTED", exp.project_id, exp.experiment_id, flush=True)
    if mode == "flush-then-hang":
        _log(exp, 0, n, pause)
        exp.flush()
        print("FLUSHED", n, exp._writer.spooled_batches, flush=True)
        _log(exp, n, 2 * n, pause)
        print("LOGGED", flush=True)
        time.sleep(600)
        return
    if mode == "log-wait-end":
        _log(exp, 0, n // 2, pause)
        print("LOGGED", flush=True)
        sys.stdin.readline()
        _log(exp, n // 2, n, pause)
    elif mode == "wait-then-spool":
        sys.stdin.readline()
        _log(exp, 0, n, pause, flush_every=100)
    else:
        _log(exp, 0, n, pause)
    exp.end(timeout=20)
    print("DONE", exp._writer.spooled_batches, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
