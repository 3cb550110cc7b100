"""Issue 17's cliffs: workloads that once fell off a cliff, each a row able to fail.

Measured on mltrail alone (the peers have no such operation, or it is not the point): each row
judges an absolute target from the issue and the data read back (``problems``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import procs
from bench.report import Row, fmt_ms
from bench.sizes import Sizes
from bench.workloads import Results

REPO = Path(__file__).resolve().parent.parent
ITERATION_METRICS_LIMIT_S = 0.2  # for 10,000 links (the target); scaled for --quick


def _worker(workload: str, timeout: float = 900, **args: Any) -> dict[str, Any]:
    argv = procs.python_worker("bench.cliff_worker", workload, args)
    return procs.run_json(argv, timeout=timeout, cwd=REPO)


def iteration_metrics(res: Results, sizes: Sizes, workdir: Path) -> None:
    """``update_metrics_per_iteration`` on a hash linked to many epochs."""
    res.ours["cliff_iteration_metrics"] = _worker(
        "iteration_metrics", links=sizes.cliff_links, path=str(workdir / "cliff-links.db")
    )


def add_rows(res: Results, sizes: Sizes) -> None:
    """The cliffs' rows, for the workloads that ran."""
    if "cliff_iteration_metrics" in res.ours:
        _iteration_metrics_row(res, res.ours["cliff_iteration_metrics"])


def _note(res: Results, what: str, problems: list[str]) -> None:
    if problems:
        res.notes.append(f"{what}: " + "; ".join(problems[:5]))


def _iteration_metrics_row(res: Results, r: dict[str, Any]) -> None:
    limit = ITERATION_METRICS_LIMIT_S * r["links"] / 10_000
    worst = max(r["first_s"], r["overwrite_s"])
    _note(res, "update_metrics_per_iteration", r["problems"])
    res.add(Row(f"update_metrics_per_iteration on a hash of {r['links']:,} epochs (embedded, "
                "first write / overwrite)", f"{fmt_ms(r['first_s'])} / {fmt_ms(r['overwrite_s'])}",
                target=f"< {fmt_ms(limit)} each, every value stored once",
                passed=worst < limit and not r["problems"]))  # fmt: skip
