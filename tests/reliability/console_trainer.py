"""A trainer whose console is busy through every path while the store stalls, with every SDK
default on (fd-level console capture, logging, the background writer), run as
``python console_trainer.py N PAUSE_AT``.

It configures ``logging`` at INFO (so httpx would print a line per upload), prints
``STARTED <project> <experiment>``, and then for iterations 0..N-1 logs ``loss``; every 1,000
steps it prints, writes to fd 1 with ``os.write``, logs a record and moves a tqdm bar; every
50,000 steps a child process echoes a line. After ``PAUSE_AT`` steps it prints ``PAUSED`` and
waits for a line on stdin (the test stalls the store meanwhile). It ends with ``LAST LINE``
inside the run and ``DONE`` after it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from tqdm import tqdm

import mltrail


def main(argv: list[str]) -> None:
    n, pause_at = int(argv[0]), int(argv[1])
    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("noisy")
    with mltrail.start("noisy", "console") as exp:
        print("STARTED", exp.project_id, exp.experiment_id, flush=True)
        bar = tqdm(total=n, mininterval=0.05)
        for i in range(n):
            if i == pause_at:
                print("PAUSED", flush=True)
                sys.stdin.readline()
            exp.log({"loss": i * 0.5})
            if i % 1000 == 0:
                print(f"step {i}")
                os.write(1, f"raw {i}\n".encode())
                log.info("logged %d", i)
                bar.update(1000)
            if i % 50_000 == 0:
                subprocess.run(["echo", f"child {i}"], check=True)
        bar.close()
        print("LAST LINE", flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
