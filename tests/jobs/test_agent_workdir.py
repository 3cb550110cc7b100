"""Job working directories: tarballs are extracted safely, git commits checked out exactly."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from mltrail.agent.workdir import TarLimits, WorkdirError, extract_tarball, prepare_workdir
from mltrail.api.snapshots import build_tarball
from mltrail.core.errors import ValidationError


def _tarball(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_a_plain_tarball_is_extracted(tmp_path: Path) -> None:
    extract_tarball(
        _tarball(_file("train.py", b"print(1)"), _file("pkg/mod.py", b"A = 1")), tmp_path
    )
    assert (tmp_path / "train.py").read_bytes() == b"print(1)"
    assert (tmp_path / "pkg" / "mod.py").read_bytes() == b"A = 1"


@pytest.mark.parametrize(
    "member",
    [
        _file("../escape.txt"),
        _file("/tmp/absolute.txt"),
        _file("a/../../escape.txt"),
        _link("evil", "/etc/passwd"),
        _link("evil", "../../outside"),
        _link("hard", "../outside", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "symlink-absolute", "symlink-up", "hardlink-up"],
)
def test_tar_slip_is_refused_and_nothing_lands_outside(tmp_path: Path, member: tuple) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(WorkdirError, match="unsafe tarball"):
        extract_tarball(_tarball(_file("ok.txt"), member), dest)
    assert list(tmp_path.iterdir()) == [dest]
    assert list(dest.iterdir()) == []  # checked before anything is written


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a" * 5000, "bytes"),
        ("/".join(["a"] * 1500), "levels deep"),
        ("d/" + "b" * 300, "name part"),
    ],
    ids=["5000-character-name", "1500-levels", "300-byte-part"],
)
def test_long_and_deep_names_are_refused_cleanly(tmp_path: Path, name: str, problem: str) -> None:
    with pytest.raises(WorkdirError, match=problem):  # not a RecursionError, not an OSError
        extract_tarball(_tarball(_file(name)), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_tarball_expanding_past_the_limits_is_refused_before_writing(tmp_path: Path) -> None:
    # 3 members of 1 MiB: a bomb in miniature (gzip makes the tarball a few KiB)
    bomb = _tarball(*(_file(f"f{i}", bytes(1024 * 1024)) for i in range(3)))
    assert len(bomb) < 64 * 1024
    with pytest.raises(WorkdirError, match="expands to over 2097152 bytes"):
        extract_tarball(bomb, tmp_path, TarLimits(max_bytes=2 * 1024 * 1024))
    with pytest.raises(WorkdirError, match="over 2 files"):
        extract_tarball(bomb, tmp_path, TarLimits(max_files=2))
    assert list(tmp_path.iterdir()) == []
    extract_tarball(bomb, tmp_path, TarLimits(max_bytes=3 * 1024 * 1024, max_files=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0", "f1", "f2"]


def test_device_files_are_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    with pytest.raises(WorkdirError, match="device"):
        extract_tarball(_tarball((info, None)), tmp_path)


def test_garbage_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkdirError, match="bad tarball"):
        extract_tarball(b"not a tarball at all", tmp_path)


def test_build_tarball_round_trips_and_skips_git(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / ".git").mkdir(parents=True)
    (src / ".git" / "HEAD").write_text("ref")
    (src / "data").mkdir()
    (src / "data" / "a.txt").write_text("hello")
    (src / "run.py").write_text("print(2)")
    (src / ".venv" / "bin").mkdir(parents=True)
    (src / "data" / "outside").symlink_to("/etc/hostname")
    (src / "data" / "alias.txt").symlink_to("a.txt")
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_tarball(build_tarball(src, limit=1_000_000), dest)
    assert (dest / "data" / "a.txt").read_text() == "hello"
    assert (dest / "run.py").read_text() == "print(2)"
    assert not (dest / ".git").exists() and not (dest / ".venv").exists()
    assert (dest / "data" / "alias.txt").read_text() == "hello"
    assert not (dest / "data" / "outside").exists()


def test_build_tarball_refuses_a_directory_over_the_limit(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(__import__("os").urandom(200_000))
    with pytest.raises(ValidationError) as info:
        build_tarball(tmp_path, limit=50_000)
    assert info.value.field == "snapshot"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def _repo(repo: Path, name: str, text: str) -> str:
    """A new repository at ``repo`` with one commit of ``name``; the commit."""
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / name).write_text(text)
    _git(repo, "add", name)
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "one")
    return _git(repo, "rev-parse", "HEAD")


def test_git_source_checks_out_the_exact_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    first = _repo(repo, "v.txt", "one")
    (repo / "v.txt").write_text("two")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "two")
    source = {"kind": "git", "url": str(repo), "commit": first}
    workdir = prepare_workdir(tmp_path / "jobs", 7, source, lambda: b"")
    assert (workdir / "v.txt").read_text() == "one"
    assert workdir.parent == tmp_path / "jobs" and workdir.name.startswith("job-7-")


def test_git_source_with_an_unknown_commit_fails_cleanly(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    source = {"kind": "git", "url": str(repo), "commit": "0" * 40}
    with pytest.raises(WorkdirError):
        prepare_workdir(tmp_path / "jobs", 1, source, lambda: b"")
    assert list((tmp_path / "jobs").iterdir()) == []  # the half-made directory is removed


def test_a_job_user_s_git_source_cannot_be_a_repository_of_the_agent_s_machine(
    tmp_path: Path,
) -> None:
    """The agent clones as root: a path would copy a repository only root can read into the
    directory handed to the job user."""
    repo = tmp_path / "private"
    commit = _repo(repo, "secret.txt", "root only")
    for url in (str(repo), f"file://{repo}"):
        source = {"kind": "git", "url": url, "commit": commit}
        with pytest.raises(WorkdirError, match=r"clone failed: .*not allowed"):
            prepare_workdir(tmp_path / "jobs", 1, source, lambda: b"", local_git=False)
    assert list((tmp_path / "jobs").iterdir()) == []
