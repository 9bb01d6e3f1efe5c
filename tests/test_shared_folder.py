"""A group-shared folder repository used by two real users (needs root to make the second)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .samples import random_bytes, write_file


def others_can_run(path: Path) -> bool:
    """Whether a user with no special rights can reach and execute `path`."""
    real = path.resolve()
    dirs_ok = all(p.stat().st_mode & stat.S_IXOTH for p in real.parents)
    return dirs_ok and bool(real.stat().st_mode & stat.S_IXOTH)


def interpreter() -> str | None:
    """This interpreter if other users can run it, else the system one of the same minor version."""
    if others_can_run(Path(sys.executable)):
        return sys.executable
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    return str(system) if system.exists() and others_can_run(system) else None


# What `init`, `add` and `get` import. The checkout and its .venv may sit in a folder
# other users cannot enter (a clone in a 0700 temp dir), so the test mirrors these
# packages into its own world-readable folder rather than change anyone's permissions.
IMPORTS = ("xetstore", "blake3", "zstandard", "bitarray", "fastcdc", "lmdb", "numpy", "click", "tqdm")


def mirror_imports(dest: Path) -> str:
    """Hard-link (or copy) the packages the command line imports under `dest`; its path."""
    for name in IMPORTS:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, name
        src = Path(next(iter(spec.submodule_search_locations)))
        for tree in (src, src.with_name(src.name + ".libs")):  # numpy's wheel keeps its libraries beside it
            if tree.is_dir():
                shutil.copytree(tree, dest / tree.name, copy_function=_link_or_copy, ignore=_NO_CACHE)
    return str(dest)


_NO_CACHE = shutil.ignore_patterns("__pycache__", "results")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


PYTHON = interpreter()
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="running a second user needs root"),
    pytest.mark.skipif(PYTHON is None, reason="no Python interpreter that another user may run"),
]

TEAM_GID = 65534  # nogroup: the group both users share
NOBODY = 65534
OTHER = 65533  # a third uid in the same group, to read what nobody wrote


@pytest.fixture
def shared() -> Iterator[Path]:
    """A world-traversable temp dir (pytest's tmp_path is 0700 root) with a setgid team folder."""
    root = Path(tempfile.mkdtemp(prefix="xetstore-shared-", dir="/tmp"))
    os.chmod(root, 0o755)
    (root / "team").mkdir()
    os.chown(root / "team", 0, TEAM_GID)
    os.chmod(root / "team", 0o2775)
    mirror_imports(root / "py")
    try:
        yield root
    finally:
        shutil.rmtree(root)


def as_user(root: Path, uid: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the command line as `uid` in the team group, with a group-sharing umask."""
    home = root / f"home-{uid}"
    home.mkdir(exist_ok=True)
    os.chown(home, uid, TEAM_GID)
    assert PYTHON is not None
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XETSTORE_CACHE": str(home / "cache"),
           "PYTHONPATH": str(root / "py")}  # fmt: skip
    return subprocess.run(
        [PYTHON, "-m", "xetstore", *args], cwd=root, env=env, capture_output=True, timeout=120,
        user=uid, group=TEAM_GID, extra_groups=[], umask=0o002,
    )  # fmt: skip


def test_a_teammate_reads_and_adds_to_a_group_shared_folder(shared: Path) -> None:
    write_file(shared / "model.bin", random_bytes(1_500_000, 1))
    write_file(shared / "theirs.bin", random_bytes(400_000, 2))
    os.chmod(shared / "model.bin", 0o644)
    os.chmod(shared / "theirs.bin", 0o644)
    repo = str(shared / "team")
    assert as_user(shared, 0, "init", repo).returncode == 0
    first = as_user(shared, 0, "add", "-r", repo, "model.bin", "--tag", "v1")
    assert first.returncode == 0, first.stderr
    clone = as_user(shared, NOBODY, "get", "-r", repo, "v1:model.bin")
    assert clone.returncode == 0, clone.stderr
    assert clone.stdout == random_bytes(1_500_000, 1)
    second = as_user(shared, NOBODY, "add", "-r", repo, "theirs.bin", "--tag", "v2")
    assert second.returncode == 0, second.stderr
    third = as_user(shared, OTHER, "get", "-r", repo, "v2:theirs.bin")
    assert third.returncode == 0, third.stderr
    assert third.stdout == random_bytes(400_000, 2)
    for path in (shared / "team").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode & 0o2775 == 0o2775, f"{path} is {mode:o}"
        elif path.parent.name != "locks":
            assert mode == 0o664, f"{path} is {mode:o}"
