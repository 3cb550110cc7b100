"""``python -m bench.publish [RESULTS]``: put one full run's results into README's Performance
section, between the ``bench-results`` markers, unchanged (``bench/results/latest.md`` by
default), so the published table is always exactly one run's."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START, END = "<!-- bench-results:start -->", "<!-- bench-results:end -->"


def published(readme: str, results: str, source: str) -> str:
    """``readme`` with the text between the markers replaced by ``results`` (its title dropped).

    Raises:
        ValueError: the markers are missing or out of order.
    """
    head, sep, rest = readme.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README has no {START} ... {END} section")
    body = results.split("\n", 1)[1].strip() if results.startswith("# ") else results.strip()
    return f"{head}{START}\nFrom `{source}`:\n\n{body}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else REPO / "bench" / "results" / "latest.md"
    readme = REPO / "README.md"
    shown = source.resolve().relative_to(REPO) if source.resolve().is_relative_to(REPO) else source
    readme.write_text(published(readme.read_text(), source.read_text(), str(shown)))
    print(f"README.md now shows {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
