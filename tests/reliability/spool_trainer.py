"""A training process for the spool tests, with every SDK default on (console capture, logging,
the background writer), run as ``python spool_trainer.py BATCHES SIZE [OPTIONS]``.

Prints ``STARTED <project> <experiment>`` (the experiment is ``None`` while a run started
offline has no number), then logs ``loss`` for ``BATCHES * SIZE`` iterations with ``exp.log``,
calling ``exp.flush()`` after every ``SIZE`` (one batch each) and printing a line per batch, ends
the run and prints ``DONE <dropped points> <spooled batches> <points logged>`` (system metrics
included) and ``EXPERIMENT <experiment>``. Options:

* ``--wait``: after ``STARTED``, wait for a line on stdin (the test stops the server meanwhile).
* ``--wait-before-end``: after the last batch, print ``LOGGED`` and wait for a line on stdin
  (the test restarts the server meanwhile).
* ``--poison-at K``: before batch ``K``, send one batch the store refuses (a metric key with a
  NUL, put straight into the writer as an SDK bug or a client newer than its server would).
* ``--clock-back-at K``: before batch ``K``, turn the wall clock back one hour (``time.time`` and
  ``time.time_ns`` of this process), as NTP or a resumed VM can.
"""

from __future__ import annotations

import argparse
import sys
import time

import mltrail

HOUR_NS = 3600 * 10**9


def _turn_clock_back() -> None:
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() - 3600.0  # type: ignore[assignment]
    time.time_ns = lambda: real_time_ns() - HOUR_NS  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("batches", type=int)
    parser.add_argument("size", type=int)
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--clock-back-at", type=int, default=-1)
    parser.add_argument("--poison-at", type=int, default=-1)
    parser.add_argument("--wait-before-end", action="store_true")
    parser.add_argument("--project", default="spool")
    args = parser.parse_args(argv)
    with mltrail.start(args.project, "spool-run") as exp:
        print("STARTED", exp.project_id, exp.experiment_id, flush=True)
        exp.set_hyperparams(lr=0.01, optimizer="adam")  # offline: kept for the run's creation
        exp.add_tags("offline")
        exp.set_notes("started while the server was down")
        if args.wait:
            sys.stdin.readline()
        for b in range(args.batches):
            if b == args.clock_back_at:
                _turn_clock_back()
            if b == args.poison_at:  # skips exp.log's checks on purpose: the store refuses it
                exp._writer.add_points("train", b * args.size, 0, time.time(), {"bad\x00key": 1.0})
                exp.flush()
            for i in range(b * args.size, (b + 1) * args.size):
                exp.log({"loss": i * 0.5})
            exp.flush()
            print(f"batch {b}", flush=True)
        if args.wait_before_end:
            print("LOGGED", flush=True)
            sys.stdin.readline()
    writer = exp._writer
    print("DONE", writer.dropped_points, writer.spooled_batches, writer.logged_points, flush=True)
    print("EXPERIMENT", exp.experiment_id, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
