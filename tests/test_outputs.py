"""`get -o PATH` and `Repository.read_file`: what is at PATH is never harmed.

Real processes, real device nodes, FIFOs and symlinks: a regular file is
written via a temp file with the umask's mode and replaced only with --force;
anything else is written in place or refused, never replaced by a file.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from xetstore import OutputError, Repository

from .samples import random_bytes

DATA = random_bytes(300_000, 16)


def get(repo: Path, file_hash: str, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xetstore", "get", "-r", str(repo), file_hash, *args],
        capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(umask),
    )  # fmt: skip


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, str]:
    with Repository.init(str(tmp_path / "repo")) as r:
        return tmp_path / "repo", r.add_bytes(DATA).file_hash


def test_new_file_gets_the_umask_mode(stored: tuple[Path, str], tmp_path: Path) -> None:
    repo, fh = stored
    for umask, mode in ((0o022, 0o644), (0o027, 0o640), (0o002, 0o664)):
        out = tmp_path / f"out-{umask:o}"
        proc = get(repo, fh, "-o", str(out), umask=umask)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == DATA and stat.S_IMODE(out.stat().st_mode) == mode


def test_library_read_file_honours_the_umask(stored: tuple[Path, str], tmp_path: Path) -> None:
    repo, fh = stored
    old = os.umask(0o027)
    try:
        with Repository.open(str(repo)) as r:
            r.read_file(fh, tmp_path / "lib-out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "lib-out").stat().st_mode) == 0o640


def test_existing_file_is_replaced_only_with_force(stored: tuple[Path, str], tmp_path: Path) -> None:
    repo, fh = stored
    out = tmp_path / "existing"
    out.write_bytes(b"keep me")
    proc = get(repo, fh, "-o", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"cannot write {out}: already exists; pass --force" in proc.stderr
    assert out.read_bytes() == b"keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".xetstore-tmp")]
    proc = get(repo, fh, "-o", str(out), "--force")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == DATA


def test_library_refuses_to_replace_without_overwrite(stored: tuple[Path, str], tmp_path: Path) -> None:
    repo, fh = stored
    out = tmp_path / "existing"
    out.write_bytes(b"keep me")
    with Repository.open(str(repo)) as r, pytest.raises(OutputError, match="already exists"):
        r.read_file(fh, out, overwrite=False)
    assert out.read_bytes() == b"keep me"


def test_a_device_node_is_written_in_place_never_replaced(stored: tuple[Path, str], tmp_path: Path) -> None:
    repo, fh = stored
    null = tmp_path / "null"  # our own /dev/null (char 1:3): the machine's is not ours to risk
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    proc = get(repo, fh, "-o", str(null))
    assert proc.returncode == 0, proc.stderr
    st = os.lstat(null)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def test_a_fifo_is_written_in_place(stored: tuple[Path, str], tmp_path: Path) -> None:
    repo, fh = stored
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    proc = get(repo, fh, "-o", str(fifo))
    reader.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert got == [DATA] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_is_refused_and_left_alone(stored: tuple[Path, str], tmp_path: Path) -> None:
    repo, fh = stored
    target = tmp_path / "target"
    target.write_bytes(b"target")
    link = tmp_path / "link"
    link.symlink_to(target)
    for args in ((), ("--force",)):
        proc = get(repo, fh, "-o", str(link), *args)
        assert proc.returncode == 1 and f"cannot write {link}: is a symbolic link" in proc.stderr
        assert link.is_symlink() and target.read_bytes() == b"target"


@pytest.mark.parametrize(
    "name, message",
    [("adir", "is a directory; name a file"), ("missing/out", "its directory")],
)
def test_a_directory_or_a_missing_parent_is_a_clear_error(
    stored: tuple[Path, str], tmp_path: Path, name: str, message: str
) -> None:
    repo, fh = stored
    (tmp_path / "adir").mkdir()
    proc = get(repo, fh, "-o", str(tmp_path / name))
    assert proc.returncode == 1, proc.stderr
    assert f"cannot write {tmp_path / name}: {message}" in proc.stderr and "internal error" not in proc.stderr
    assert list((tmp_path / "adir").iterdir()) == []
