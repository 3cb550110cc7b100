"""The README's Experiments API section is real: its Python and CLI blocks are run after
`mltrail demo --no-serve` and must print exactly what the README shows, timestamps aside.

The demo's numbers and weights hashes must not depend on the CPU, so the whole module runs twice:
once with the machine's own math kernels, once with OpenBLAS forced to its oldest x86-64 kernel
and numpy's SIMD dispatch limited to its baseline (as on an older CPU)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from numpy._core._multiarray_umath import __cpu_dispatch__
except ImportError:  # numpy < 2
    from numpy.core._multiarray_umath import __cpu_dispatch__

README = Path(__file__).resolve().parents[1] / "README.md"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?")


def normalise(text: str) -> list[str]:
    return [TIMESTAMP.sub("<time>", line.rstrip()) for line in text.strip().splitlines()]


def section() -> str:
    return README.read_text().split("## The Experiments API", 1)[1].split("\n## ", 1)[0]


def fenced(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)\n```", section(), flags=re.S)


RAN_PYTHON_BLOCK: set[str] = set()  # the demo homes the Python block has run on

KERNELS = {
    "native": {},
    "oldest-kernels": {
        "OPENBLAS_CORETYPE": "Prescott",
        "NPY_DISABLE_CPU_FEATURES": ",".join(__cpu_dispatch__),
    },
}


@pytest.fixture(scope="module", params=sorted(KERNELS))
def demo_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env.update(KERNELS[request.param])
    env["MLTRAIL_HOME"] = str(tmp_path_factory.mktemp("readme-home"))
    subprocess.run(
        [sys.executable, "-m", "mltrail", "demo", "--no-serve"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return env


def _run_python_block(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The README's Python block run on ``env``'s demo store (noted as run there)."""
    (code,) = fenced("python")
    RAN_PYTHON_BLOCK.add(env["MLTRAIL_HOME"])
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_python_block_prints_what_the_readme_shows(demo_env):
    (expected,) = fenced("text")
    proc = _run_python_block(demo_env)
    assert proc.returncode == 0, proc.stderr
    assert normalise(proc.stdout) == normalise(expected)


def test_cli_block_prints_what_the_readme_shows(demo_env):
    # the CLI block continues from the state the Python block left: run it here unless the
    # Python block's test already ran it on this demo's store
    if demo_env["MLTRAIL_HOME"] not in RAN_PYTHON_BLOCK:
        _run_python_block(demo_env)
    (console,) = fenced("console")
    commands = re.split(r"^\$ ", console, flags=re.M)[1:]
    for block in commands:
        command, _, expected = block.partition("\n")
        args = shlex.split(command)
        assert args[0] == "mltrail"
        proc = subprocess.run(
            [sys.executable, "-m", "mltrail", *args[1:]],
            env=demo_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert normalise(proc.stdout + proc.stderr) == normalise(expected), command
        assert (proc.returncode != 0) == expected.startswith("Error:"), command
