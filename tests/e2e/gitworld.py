"""Real git and git-lfs, each "machine" with its own HOME, git config and xetstore cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.samples import random_bytes, write_file
from xetstore import Repository, RepositoryStats
from xetstore.lfs.commands import AGENT_ARGS

POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
TIMEOUT = 300  # seconds; a hung agent must fail the test, not hang it


def have_git_lfs() -> bool:
    if shutil.which("git") is None:
        return False
    return subprocess.run(["git", "lfs", "version"], capture_output=True).returncode == 0


class Machine:
    """One user on one computer: a HOME with its own global git config and cache."""

    def __init__(self, root: Path, name: str, install: bool = True, eight_agents: bool = False) -> None:
        self.name = name
        self.home = root / f"home-{name}"
        self.home.mkdir(parents=True)
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "XETSTORE_CACHE": str(root / f"cache-{name}"),
        }
        for key, value in (("user.name", name), ("user.email", f"{name}@example.com"), ("init.defaultBranch", "main")):
            self.git("config", "--global", key, value)
        self.git("lfs", "install")
        if install:
            self.xetstore("lfs", "install")
        if eight_agents:  # folder repositories get one agent by default; exercise git-lfs's eight
            self.git("config", "--global", "lfs.customtransfer.xetstore-folder.concurrent", "true")

    def run(self, args: list[str], cwd: Path | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        done = subprocess.run(
            args, cwd=cwd or self.home, env={**self.env, **(env or {})}, capture_output=True,
            text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def git(self, *args: str, cwd: Path | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.run(["git", *args], cwd, check, env)

    def xetstore(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        # The installed command, as users run it: `python -m` would import the tree's xetstore/.
        return self.run([str(Path(sys.executable).parent / "xetstore"), *args], cwd)

    def agent_config(self) -> list[str]:
        """`-c` options that configure the agent (git-lfs's eight processes) for one clone only."""
        return [
            "-c", f"lfs.customtransfer.xetstore.path={sys.executable}",
            "-c", f"lfs.customtransfer.xetstore.args=-c {AGENT_ARGS}",
            "-c", "lfs.https://xetstore.invalid/.standalonetransferagent=xetstore",
        ]  # fmt: skip


def lfs_tree(root: Path, big_size: int = 24 * 1024 * 1024, small_files: int = 120) -> None:
    """Everything a git-lfs repository can hold that has bitten transfer agents before."""
    (root / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    write_file(root / "big.bin", random_bytes(big_size, seed=10))
    write_file(root / "all-bytes.bin", bytes(range(256)) * 257)
    twin = random_bytes(300_000, seed=11)
    write_file(root / "twin-a.bin", twin)
    write_file(root / "nested" / "twin-b.bin", twin)
    write_file(root / "name with spaces.bin", random_bytes(40_000, seed=12))
    write_file(root / "nested" / "deeper" / "still" / "deep.bin", random_bytes(70_000, seed=13))
    write_file(root / "empty.bin", b"")
    for i in range(small_files):
        write_file(root / "small" / f"{i:04}.bin", f"small file {i}\n".encode() * (i % 7 + 1))
    write_file(root / "README.txt", b"not an LFS file\n")
    # git-lfs runs the agent in the top level: it must not import a project's own xetstore/
    write_file(root / "xetstore" / "__init__.py", b"raise SystemExit('imported the repository, not xetstore')\n")


def edit_big_file(path: Path) -> None:
    """A few bytes changed in the middle, and an append: what a fine-tune or a log does."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = b"sixteen new byte"
    data += random_bytes(100_000, seed=99)
    path.write_bytes(bytes(data))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` except .git, by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def assert_checkout_complete(clone: Path, expected: dict[str, bytes], machine: Machine) -> None:
    """Byte-identical, no pointer left, `git lfs fsck` clean, nothing left in .git/lfs/tmp."""
    got = tree(clone)
    assert sorted(got) == sorted(expected)
    for name, data in expected.items():
        assert got[name] == data, f"{name} differs"
        if name.endswith(".bin") and data:
            assert not got[name].startswith(POINTER_PREFIX), f"{name} is still a pointer"
    machine.git("lfs", "fsck", cwd=clone)
    assert leftovers(clone) == []


def leftovers(clone: Path) -> list[str]:
    """The agent's files left in .git/lfs/tmp.

    Only ours: git-lfs 3.3.0 itself leaves an empty temp file there whenever its
    clean filter is handed a file that is still a pointer (`copyToTemp` returns
    a CleanPointerError without removing it), which `git lfs pull` triggers when
    it refreshes the index before the last object has arrived. git-lfs deletes
    such files after an hour.
    """
    tmp = clone / ".git" / "lfs" / "tmp"
    return sorted(p.name for p in tmp.iterdir() if ".xetstore-" in p.name) if tmp.exists() else []


def lfs_oids(machine: Machine, clone: Path, *refs: str) -> set[str]:
    listing = machine.git("lfs", "ls-files", "--long", *refs, cwd=clone).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def repository_stats(path: Path, cache: Path) -> RepositoryStats:
    with Repository.open(str(path), cache_dir=cache) as repo:
        return repo.stats()


def agent_log(clone: Path) -> list[str]:
    log = clone / ".git" / "lfs" / "logs" / "xetstore.log"
    return log.read_text().splitlines() if log.exists() else []


__all__ = [
    "have_git_lfs", "Machine", "lfs_tree", "edit_big_file", "tree", "assert_checkout_complete", "leftovers", "lfs_oids",
    "repository_stats", "agent_log", "POINTER_PREFIX",
]  # fmt: skip
