"""What `add` reads: regular files only; what it cannot read is an error or, with
--skip-unreadable, a warning; never a hang and never a silent skip.

Real FIFOs, device nodes, symlinks and permission bits. As root, the CLI runs
without the capabilities that let root read anything (setpriv), so an
unreadable directory is unreadable to it as to anyone.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xetstore import InputError, Repository

from .rel_support import json_lines
from .samples import random_bytes, write_file


def xetstore(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "xetstore", *args]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    Repository.init(str(tmp_path / "repo")).close()
    return tmp_path / "repo"


def added_paths(proc: subprocess.CompletedProcess[str]) -> set[str]:
    return {Path(d["path"]).name for d in json_lines(proc.stdout) if d["type"] == "added"}


def test_a_fifo_is_refused_not_waited_on(repo_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    proc = xetstore("add", "-r", str(repo_dir), str(fifo))  # before: blocked in open() forever
    assert proc.returncode == 1
    assert f"cannot read {fifo}: is not a regular file but a FIFO" in proc.stderr


def test_a_device_is_refused_not_read_forever(repo_dir: Path) -> None:
    proc = xetstore("add", "-r", str(repo_dir), "/dev/zero")
    assert proc.returncode == 1
    assert "cannot read /dev/zero: is not a regular file but a device" in proc.stderr


def test_library_refuses_a_fifo(repo_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with Repository.open(str(repo_dir)) as r, pytest.raises(InputError, match="FIFO"):
        r.add_file(fifo)


def test_an_unreadable_subdirectory_is_an_error_unless_skipped(repo_dir: Path, tmp_path: Path) -> None:
    write_file(tmp_path / "in" / "a.bin", b"a" * 5000)
    write_file(tmp_path / "in" / "locked" / "b.bin", b"b" * 5000)
    locked = tmp_path / "in" / "locked"
    locked.chmod(0)
    try:
        proc = xetstore("add", "-r", str(repo_dir), str(tmp_path / "in"))
        assert proc.returncode == 1 and proc.stdout == ""
        assert f"cannot read {locked}: permission denied (a directory); pass --skip-unreadable" in proc.stderr
        with Repository.open(str(repo_dir)) as r:
            assert list(r.files()) == []  # refused before anything was written
        proc = xetstore("add", "-r", str(repo_dir), "--json", "--skip-unreadable", str(tmp_path / "in"))
        assert proc.returncode == 0, proc.stderr
        assert added_paths(proc) == {"a.bin"}
        assert f"warning: skipping {locked}: permission denied" in proc.stderr
    finally:
        locked.chmod(0o755)


def test_an_unreadable_file_in_a_directory_is_an_error(repo_dir: Path, tmp_path: Path) -> None:
    secret = write_file(tmp_path / "in" / "secret", b"s" * 100)
    secret.chmod(0)
    proc = xetstore("add", "-r", str(repo_dir), str(tmp_path / "in"))
    assert proc.returncode == 1 and f"cannot read {secret}: permission denied" in proc.stderr


def test_special_entries_in_a_directory_are_named(repo_dir: Path, tmp_path: Path) -> None:
    tree = tmp_path / "in"
    write_file(tree / "real.bin", random_bytes(20_000, 1))
    (tree / "to-file").symlink_to(tree / "real.bin")
    (tree / "to-dir").symlink_to(tmp_path)
    (tree / "dangling").symlink_to(tmp_path / "nothing")
    os.mkfifo(tree / "pipe")
    proc = xetstore("add", "-r", str(repo_dir), str(tree))
    assert proc.returncode == 1 and "pass --skip-unreadable" in proc.stderr
    proc = xetstore("add", "-r", str(repo_dir), "--json", "--skip-unreadable", str(tree))
    assert proc.returncode == 0, proc.stderr
    assert added_paths(proc) == {"real.bin", "to-file"}  # a link to a file is followed
    warnings = [line for line in proc.stderr.splitlines() if "warning: skipping" in line]
    assert len(warnings) == 3
    assert any("dangling: is a symbolic link to nothing" in w for w in warnings)
    assert any("to-dir: is a symbolic link to a directory" in w for w in warnings)
    assert any("pipe: is not a regular file but a FIFO" in w for w in warnings)


def test_a_file_that_changes_while_read_warns(repo: Repository, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_file(tmp_path / "growing.bin", random_bytes(40 << 20, 3))

    def grow(_: int) -> None:  # called after each block read: the file changes mid-read
        with open(path, "ab") as f:
            f.write(b"more")

    with caplog.at_level(logging.WARNING, logger="xetstore"):
        res = repo.add_files([path], progress=grow)[0]
    assert any(f"{path} changed while it was read" in r.getMessage() for r in caplog.records)
    assert repo.read_bytes(res.file_hash) == path.read_bytes()[: res.size]


def test_a_stable_file_gets_no_warning(repo: Repository, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_file(tmp_path / "stable.bin", random_bytes(5 << 20, 4))
    with caplog.at_level(logging.WARNING, logger="xetstore"):
        repo.add_file(path)
    assert not [r for r in caplog.records if "changed while" in r.getMessage()]
