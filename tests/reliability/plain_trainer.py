"""The plainest training loop, with every SDK default on (console capture, logging, the
background writer), run as ``python plain_trainer.py N [PAUSE_AT]``.

Prints ``STARTED <project> <experiment>``, logs ``loss`` for iterations 0..N-1 with
``exp.log({"loss": ...})`` (the iteration counts up by itself) and prints ``DONE``. With
``PAUSE_AT``, after that many steps it prints ``PAUSED`` and waits for a line on stdin (the test
stalls the store meanwhile), then goes on. A ``print`` every 100,000 steps keeps the console
capture busy as real training output would.
"""

from __future__ import annotations

import sys

import mltrail


def main(argv: list[str]) -> None:
    n = int(argv[0])
    pause_at = int(argv[1]) if len(argv) > 1 else -1
    with mltrail.start("plain", "loop") as exp:
        print("STARTED", exp.project_id, exp.experiment_id, flush=True)
        for i in range(n):
            if i == pause_at:
                print("PAUSED", flush=True)
                sys.stdin.readline()
            exp.log({"loss": i * 0.5})
            if i % 100_000 == 0:
                print(f"step {i}", flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
