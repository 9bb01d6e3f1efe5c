"""The first push to a folder that holds no repository yet makes it; downloads never do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.gitworld import Machine, agent_log, have_git_lfs, tree
from tests.samples import random_bytes, write_file
from xetstore.lfs.locator import encode_locator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_git_lfs(), reason="git and git-lfs are needed (tools/setup installs them)"),
]


def project_pointing_at(machine: Machine, root: Path, folder: Path) -> Path:
    """A git project whose .lfsconfig names `folder` (written by hand: `lfs init` wants a repository)."""
    work = root / "work"
    machine.git("init", str(work))
    (work / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    write_file(work / "model.bin", random_bytes(3_000_000, 7))
    machine.git("config", "-f", str(work / ".lfsconfig"), "lfs.url", encode_locator(str(folder)), cwd=work)
    machine.git("add", "-A", cwd=work)
    machine.git("commit", "-m", "model", cwd=work)
    return work


def test_first_push_creates_the_repository_and_a_clone_reads_it(tmp_path: Path) -> None:
    alice = Machine(tmp_path, "alice")
    folder = tmp_path / "team share" / "lfs"
    work = project_pointing_at(alice, tmp_path, folder)
    remote = tmp_path / "remote.git"
    alice.git("init", "--bare", str(remote))
    alice.git("remote", "add", "origin", str(remote), cwd=work)
    alice.git("push", "-u", "origin", "main", cwd=work)
    assert (folder / "config").is_file() and list((folder / "xorbs").iterdir())
    assert any("created repository" in line and str(folder) in line for line in agent_log(work))
    bob = Machine(tmp_path, "bob")
    clone = tmp_path / "bob-clone"
    bob.git("clone", str(remote), str(clone))
    assert tree(clone)["model.bin"] == random_bytes(3_000_000, 7)


def test_a_download_never_creates_a_repository(tmp_path: Path) -> None:
    alice = Machine(tmp_path, "alice")
    pushed_to = tmp_path / "real"
    work = project_pointing_at(alice, tmp_path, pushed_to)
    remote = tmp_path / "remote.git"
    alice.git("init", "--bare", str(remote))
    alice.git("remote", "add", "origin", str(remote), cwd=work)
    alice.git("push", "-u", "origin", "main", cwd=work)
    carol = Machine(tmp_path, "carol")
    clone = tmp_path / "carol-clone"
    carol.git("clone", str(remote), str(clone), env={"GIT_LFS_SKIP_SMUDGE": "1"})
    missing = tmp_path / "nothing here"
    carol.git("config", "lfs.url", encode_locator(str(missing)), cwd=clone)
    done = carol.git("lfs", "pull", cwd=clone, check=False)
    assert done.returncode != 0 and "no xetstore repository" in done.stderr, done.stderr
    assert not missing.exists()
