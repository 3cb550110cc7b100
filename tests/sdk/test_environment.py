"""Environment and git source state recorded at start, without importing heavy frameworks."""

from __future__ import annotations

import subprocess
import sys

from mltrail.sdk.environment import collect_environment, collect_source, strip_credentials


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_state_commit_branch_dirty_and_remote_without_credentials(tmp_path):
    _git(tmp_path, "init", "-q", "-b", "feature")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "train.py").write_text("print(1)\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "commit", "-q", "-m", "first")
    _git(tmp_path, "remote", "add", "origin", "https://user:secret@git.example.com/team/repo.git")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()

    clean = collect_source(tmp_path)
    assert clean == {
        "vcs": "git",
        "commit": head,
        "branch": "feature",
        "dirty": False,
        "remote": "https://git.example.com/team/repo.git",
    }
    (tmp_path / "train.py").write_text("print(2)\n")
    assert collect_source(tmp_path)["dirty"] is True


def test_outside_a_repository_source_is_empty(tmp_path):
    assert collect_source(tmp_path) == {}


def test_strip_credentials_leaves_ssh_and_plain_urls():
    assert strip_credentials("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert strip_credentials("https://host/a.git") == "https://host/a.git"
    assert strip_credentials("https://tok@host/a.git") == "https://host/a.git"


def test_environment_names_versions_without_importing_frameworks():
    code = (
        "import sys, json; from mltrail.sdk.environment import collect_environment;"
        "env = collect_environment(['train.py', '--lr', '0.1']);"
        "print(json.dumps([env['argv'], env['framework'], 'torch' in sys.modules, bool(env['python'])]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    argv, framework, torch_imported, has_python = __import__("json").loads(out.stdout)
    assert argv == ["train.py", "--lr", "0.1"]
    assert torch_imported is False and has_python is True
    assert framework in (None, "numpy")


def test_environment_records_host_platform_and_the_framework_in_use():
    env = collect_environment()
    assert env["host"] and env["platform"] and env["versions"]["numpy"]
    assert env["framework"] is not None  # numpy at least is imported in this process
