"""The layering of docs/architecture.md is code: `lint-imports` checks the contracts in
pyproject.toml (imports only go downward, siblings stay independent, heavy libraries stay in
their layer), so CI fails on an upward or sideways import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is in the test extra: pip install -e '.[test]'"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_core_modules_stay_under_500_lines() -> None:
    """CONTRIBUTING's module size, kept where every layer's parse constructors live (a module
    that outgrows it splits along a noun: core/points.py holds the points' checks)."""
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for path in sorted((ROOT / "src" / "mltrail" / "core").glob("*.py"))
    }
    assert {name: n for name, n in sizes.items() if n > 500} == {}
