"""Rows of the result table, their Markdown rendering, and the machine they were measured on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NOT_RUN = "—"


@dataclass
class Row:
    """One line of the table: a workload measured on mltrail and (maybe) on each peer.

    ``ratios`` are always "how many times better mltrail is" (the peer's cost / mltrail's
    cost, or mltrail's rate / the peer's rate), so a target reads ``>= 50x`` whatever the unit.
    """

    workload: str
    mltrail: str
    peers: dict[str, str] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    target: str = ""
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "n/a"
        return "PASS" if self.passed else "FAIL"

    def cells(self, peer_names: Sequence[str]) -> list[str]:
        ratios = [self.ratios.get(n) for n in peer_names]
        return [
            self.workload,
            self.mltrail,
            *(self.peers.get(n, NOT_RUN) for n in peer_names),
            *(NOT_RUN if r is None else f"{r:,.1f}x" for r in ratios),
            self.target,
            self.verdict,
        ]


def header(columns: Mapping[str, str]) -> list[str]:
    """The table's heading for peers ``{name: column title}``, in that order."""
    titles = list(columns.values())
    return ["workload", "mltrail", *titles, *(f"vs {t}" for t in titles), "target", "result"]


def times_better(mltrail_cost: float | None, peer_cost: float | None) -> float | None:
    """The peer's cost over mltrail's (None when either is missing or mltrail's is zero)."""
    if mltrail_cost is None or peer_cost is None or mltrail_cost <= 0:
        return None
    return peer_cost / mltrail_cost


def judge(
    ratios: Mapping[str, float | None],
    minimums: Mapping[str, float],
    targets: Sequence[bool] = (),
    checks: Sequence[bool] = (),
) -> bool | None:
    """PASS when every measured peer's ratio reaches its minimum and every target and check holds.

    ``minimums`` maps a peer to the ratio it must reach (peers not run are skipped);
    ``targets`` are absolute goals, judged without any peer too; ``checks`` are conditions
    on the data (stored == logged, chart reads keep the extremes): one failing fails the row.
    Nothing measured against and no absolute target: not judged.
    """
    if not all(checks):
        return False
    judged = [r >= m for n, m in minimums.items() if (r := ratios.get(n)) is not None]
    if not judged and not targets:
        return None
    return all(judged) and all(targets)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table with columns padded for plain-text reading too."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def results_table(rows: Sequence[Row], columns: Mapping[str, str]) -> str:
    """The rows as a Markdown table with one column (and one ratio column) per peer."""
    return markdown_table(header(columns), [r.cells(list(columns)) for r in rows])


def machine_info() -> dict[str, str]:
    """nproc, CPU model, RAM, Python, OS, date, the mltrail commit and the load average."""
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "ram": _ram(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(),
        "load average (1/5/15 min) at the end": _load_average(),
    }


def _load_average() -> str:
    """Other processes share the cores; a busy machine explains noisy figures."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def render_markdown(
    tables: Sequence[tuple[str, str]], info: dict[str, str], command: str, notes: Sequence[str] = ()
) -> str:
    """The whole results document: titled tables (results, peers, scaling), notes, machine."""
    machine = "\n".join(f"- {k}: {v}" for k, v in info.items())
    parts = ["# mltrail benchmark results", "", f"Command: `{command}`", ""]
    for title, table in tables:
        parts += [title, "", table, ""] if title else [table, ""]
    if notes:
        parts += ["Notes:", "", *(f"- {n}" for n in notes), ""]
    parts += ["Machine:", "", machine, ""]
    return "\n".join(parts)


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} µs"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def fmt_rate(points_per_s: float) -> str:
    return f"{points_per_s:,.0f} pts/s"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"
