"""The artifacts workload: a 2 GiB file up and down through the server against the loopback copy
rate measured in the same run, RSS growth of server and client, and the cost of logging a 100 MB
checkpoint every epoch of a training loop against one local write of it.

The loopback copy rate is ``curl`` downloading the same file from a static file server that
answers with ``sendfile`` (the kernel copies; no Python in the data path) into a file on the same
disk: the best a copy over loopback does here, measured before the upload (its reference) and
after the download (the download's). The mltrail figures include everything a user gets:
the client's sha256 of the file before sending, the server's hashing, the download's
verification (the server runs with its defaults: no ``--artifacts-fsync``, so no fsync). Workers run in subprocesses (``python -m bench.artifacts worker ...``) so each
process's RSS is its own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.report import Row

GIB = 1024**3
MIB = 1024**2
RATE_TARGET = 0.70  # of the loopback copy rate
RSS_TARGET = 64 * MIB
CHECKPOINT_ROUNDS = 3  # each training-loop mode's runs, alternated (its best one counts)


class PeakRss:
    """Highest RSS of a process while sampling (every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        """Stop sampling; the growth over the start, in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


# --- the loopback baseline --------------------------------------------------------------------------
def serve_file(path: Path) -> tuple[int, threading.Event]:
    """A one-file HTTP server on loopback answering with sendfile; (port, stop event)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    size = path.stat().st_size

    def answer(conn: socket.socket) -> None:
        with conn, path.open("rb") as handle:
            conn.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            conn.sendall(head.encode())
            offset = 0
            while offset < size:
                offset += os.sendfile(conn.fileno(), handle.fileno(), offset, size - offset)

    def loop() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            answer(conn)
        listener.close()

    threading.Thread(target=loop, daemon=True).start()
    return listener.getsockname()[1], stop


def loopback_copy_rate(source: Path, dest: Path) -> float:
    """Bytes per second of ``curl`` fetching ``source`` over loopback into ``dest``."""
    port, stop = serve_file(source)
    try:
        started = time.perf_counter()
        subprocess.run(
            ["curl", "-sS", "-o", str(dest), f"http://127.0.0.1:{port}/file"], check=True
        )
        seconds = time.perf_counter() - started
    finally:
        stop.set()
    assert dest.stat().st_size == source.stat().st_size
    dest.unlink()
    return source.stat().st_size / seconds


def make_file(path: Path, size: int) -> None:
    """``size`` bytes, 1 MiB blocks each numbered (distinct, cheap to make)."""
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for number in range(size // MIB):
            out.write(number.to_bytes(8, "little") + block[8:])


# --- workers (subprocesses) ---------------------------------------------------------------------------
def worker_transfer(url: str, token: str, source: str, dest: str) -> dict[str, Any]:
    """Upload ``source`` as an artifact, download it to ``dest``; times and RSS growth."""
    from mltrail.api import Api
    from mltrail.store.http import HttpStore

    api = Api(HttpStore(url, token))
    project = api.store.create_project(f"bench-artifacts-{os.getpid()}")
    number = api.store.create_experiment(project.id).experiment_id
    rss = PeakRss(os.getpid())
    started = time.perf_counter()
    api.artifacts.upload(project.id, number, source, "data/blob.bin")
    upload = time.perf_counter() - started
    started = time.perf_counter()
    api.artifacts.download(project.id, number, "data/blob.bin", dest)
    download = time.perf_counter() - started
    growth = rss.stop()
    api.close()
    return {"upload": upload, "download": download, "rss_growth": growth}


def worker_training(mode: str, epochs: int, megabytes: int, folder: str) -> dict[str, Any]:
    """A CPU training loop; at each epoch end nothing, one local ``torch.save``, or
    ``exp.log_checkpoint``. Returns each epoch's seconds (and the upload wait after the loop)."""
    import statistics

    import torch

    import mltrail

    torch.manual_seed(0)
    width = 1024
    layers = max(megabytes * MIB // (width * width * 4), 1)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    batch = torch.randn(256, width)
    exp = mltrail.start("bench-checkpoints", mode) if mode == "log_checkpoint" else None
    seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        for _ in range(4):  # the epoch's "training": forward passes, about a second here
            with torch.no_grad():
                model(batch)
        if mode == "local_write":
            torch.save(model.state_dict(), Path(folder) / f"epoch-{epoch}.pt")
        elif exp is not None:
            exp.log_checkpoint(model, epoch=epoch)
            exp.log({"loss": 1.0 / (epoch + 1)}, epoch=epoch)
        seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    if exp is not None:
        exp.end(timeout=600)
    drain = time.perf_counter() - started
    return {"epoch": statistics.median(seconds[1:] or seconds), "drain": drain}


def run_worker(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.artifacts", "worker", *args]
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(argv, env=env, cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.artifacts worker {args[0]} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the workload -------------------------------------------------------------------------------------
def run(res: Any, side: Any, quick: bool, workdir: Path) -> None:
    """Workload 9: rows for upload, download, memory and checkpoint overhead."""
    size = 64 * MIB if quick else 2 * GIB
    folder = workdir / "artifacts-bench"
    folder.mkdir(exist_ok=True)
    source = folder / "source.bin"
    make_file(source, size)
    try:
        transfer(res, side, source, folder, size)
        checkpoint_overhead(
            res,
            side,
            folder,
            epochs=3 if quick else 8,
            megabytes=20 if quick else 100,
            rounds=1 if quick else CHECKPOINT_ROUNDS,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def transfer(res: Any, side: Any, source: Path, folder: Path, size: int) -> None:
    # each transfer against the copy measured next to it (the upload runs first, the download
    # last): this VM's copy rate swung 2x within minutes, so one copy before both misjudged the
    # download; every copy and transfer reads a file in the page cache (just written or read)
    copies = {"upload": loopback_copy_rate(source, folder / "copy.bin")}
    server = PeakRss(side.server.proc.pid)
    got = run_worker(
        ["transfer", side.server.url, side.token, str(source), str(folder / "back.bin")],
        side.worker_env(),
    )
    server_growth = server.stop()
    (folder / "back.bin").unlink(missing_ok=True)
    # the download's reference at its best: the better of two copies, the second into the pages
    # the first freed (the client writes with O_DIRECT and leaves none behind, and a copy into
    # fresh pages costs this VM's host a fault per page: the first copy alone flattered the ratio)
    copies["download"] = max(loopback_copy_rate(source, folder / "copy.bin") for _ in range(2))
    label = f"{size // MIB} MiB" if size < GIB else f"{size // GIB} GiB"
    for kind in ("upload", "download"):
        rate = size / got[kind]
        copy = copies[kind]
        ratio = rate / copy
        res.add(
            Row(
                f"artifact {kind} {label} through the server",
                f"{rate / MIB:,.0f} MiB/s ({got[kind]:.1f} s), {ratio:.0%} of the loopback "
                f"copy's {copy / MIB:,.0f} MiB/s",
                target=f">= {RATE_TARGET:.0%} of copy",
                passed=ratio >= RATE_TARGET,
            )
        )
    res.add(
        Row(
            "artifact RSS growth during the transfers (server / client)",
            f"{server_growth / MIB:.0f} MiB / {got['rss_growth'] / MIB:.0f} MiB",
            target="< 64 MiB each",
            passed=server_growth < RSS_TARGET and got["rss_growth"] < RSS_TARGET,
        )
    )


def checkpoint_overhead(
    res: Any, side: Any, folder: Path, epochs: int, megabytes: int, rounds: int
) -> None:
    """The training loop's epoch with nothing, one local ``torch.save`` or ``log_checkpoint``
    at its end, each mode a process of its own, the modes alternated for ``rounds`` rounds and
    each mode taken at its best round (the shortest median epoch).

    One process of each mode in a row measured the machine as much as the mode: this shared
    VM's epoch swung 0.4-2 s between two processes a minute apart, and the local write's
    reference 41-390 ms between runs. Noise only ever adds time, so each mode's best round is
    the figure least of the machine's. Every process starts with no dirty pages left behind
    (``os.sync``): the 2 GiB transfers before, or the last mode's 800 MB, written back while a
    mode runs made its writes wait for the disk (a local write's 100 MB took 0.24-0.30 s with
    2 GB dirty against 0.18-0.20 s after a sync).
    """
    env = side.worker_env()
    modes = ("none", "local_write", "log_checkpoint")
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode in modes:
            os.sync()
            side.server.wait_idle()
            args = ["training", mode, str(epochs), str(megabytes), str(folder)]
            runs[mode].append(run_worker(args, env))
            for saved in folder.glob("epoch-*.pt"):
                saved.unlink()
    best = {mode: min(runs[mode], key=lambda run: float(run["epoch"])) for mode in modes}
    base = best["none"]["epoch"]  # medians of the epochs after the first
    write = best["local_write"]["epoch"] - base
    logged = best["log_checkpoint"]["epoch"] - base
    res.add(
        Row(
            f"log_checkpoint per epoch ({megabytes} MB, {epochs} epochs)",
            f"{logged * 1000:+,.0f} ms/epoch (one local write: {write * 1000:,.0f} ms; each "
            f"the best of {rounds} alternated runs; uploads finished "
            f"{best['log_checkpoint']['drain']:.1f} s after the loop)",
            target="<= one local write (+10%, +20 ms of timer noise)",
            passed=logged <= max(write, 0.0) * 1.1 + 0.02,
        )
    )


def main(argv: list[str]) -> None:
    """``python -m bench.artifacts worker transfer|training ...`` (prints one JSON line)."""
    kind, *args = argv[1:]
    if kind == "transfer":
        print(json.dumps(worker_transfer(*args)))
    else:
        mode, epochs, megabytes, folder = args
        print(json.dumps(worker_training(mode, int(epochs), int(megabytes), folder)))


if __name__ == "__main__":
    main(sys.argv[1:])
