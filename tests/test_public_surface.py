"""The public surface stays small and `import mltrail` stays light."""

from __future__ import annotations

import subprocess
import sys

import mltrail


def test_all_is_sorted_and_importable():
    assert mltrail.__all__ == sorted(mltrail.__all__)
    for name in mltrail.__all__:
        assert hasattr(mltrail, name)


def test_import_mltrail_does_not_import_heavy_layers():
    code = "import sys, mltrail; print(','.join(m for m in ('sqlalchemy', 'fastapi', 'uvicorn', 'click', 'rich', 'alembic', 'httpx') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
