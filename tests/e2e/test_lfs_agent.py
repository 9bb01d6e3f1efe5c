"""git push / clone / pull through the agent, with the real git and git-lfs.

One project is pushed twice (a full tree, then an incremental edit) by "alice";
other machines ("bob" without the agent installed, "carol" with it) clone it in
the ways users do.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.gitworld import (
    POINTER_PREFIX,
    Machine,
    agent_log,
    assert_checkout_complete,
    edit_big_file,
    have_git_lfs,
    leftovers,
    lfs_oids,
    lfs_tree,
    repository_stats,
    tree,
)
from tests.samples import random_bytes, write_file
from xetstore import RepositoryStats
from xetstore.lfs.locator import encode_locator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_git_lfs(), reason="git and git-lfs are needed (tools/setup installs them)"),
]


@dataclass
class Project:
    root: Path
    alice: Machine
    repo_path: Path  # the xetstore repository (a folder, with a space in its name)
    remote: Path  # the bare git remote
    source: Path  # alice's working copy
    v1: dict[str, bytes]
    v2: dict[str, bytes]
    stats_v1: RepositoryStats
    stats_v2: RepositoryStats
    first_push_log: list[str]
    early_clone: Path  # bob's clone of v1, configured at clone time
    bob: Machine

    def stats(self) -> RepositoryStats:
        return repository_stats(self.repo_path, self.root / "stats-cache")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("lfs-e2e")
    alice = Machine(root, "alice", eight_agents=True)
    repo_path = root / "xet repo"
    alice.xetstore("init", str(repo_path))
    remote = root / "remote.git"
    alice.git("init", "--bare", str(remote))
    source = root / "alice-work"
    alice.git("init", str(source))
    lfs_tree(source)
    alice.xetstore("lfs", "init", str(repo_path), cwd=source)
    alice.git("add", "-A", cwd=source)
    alice.git("commit", "-m", "v1", cwd=source)
    alice.git("remote", "add", "origin", str(remote), cwd=source)
    alice.git("push", "-u", "origin", "main", cwd=source)
    v1, stats_v1, first_push_log = tree(source), repository_stats(repo_path, root / "stats-cache"), agent_log(source)

    bob = Machine(root, "bob", install=False)
    early = root / "bob-early"
    bob.git("clone", *bob.agent_config(), str(remote), str(early))

    edit_big_file(source / "big.bin")
    write_file(source / "added.bin", random_bytes(4096, seed=98))
    alice.git("add", "-A", cwd=source)
    alice.git("commit", "-m", "v2: edit big.bin, add added.bin", cwd=source)
    alice.git("push", "origin", "main", cwd=source)
    return Project(
        root, alice, repo_path, remote, source, v1, tree(source), stats_v1,
        repository_stats(repo_path, root / "stats-cache"), first_push_log, early, bob,
    )  # fmt: skip


def pids(log: list[str], event: str) -> set[str]:
    return {line.split()[2] for line in log if f" INFO {event}" in line}


def test_push_runs_eight_agents_on_one_repository(project: Project) -> None:
    oids = lfs_oids(project.alice, project.source, "main~1")
    assert len(pids(project.first_push_log, "init upload")) == 8  # git-lfs's default
    uploaders = pids(project.first_push_log, "upload")
    assert len(uploaders) > 1
    uploaded = {m.group(1) for m in (re.search(r" upload ([0-9a-f]{64}) ", line) for line in project.first_push_log) if m}
    assert uploaded == oids
    assert project.stats_v1.files == len(oids)


def test_clone_with_agent_configured_at_clone_time(project: Project) -> None:
    clone = project.root / "bob-clone"
    project.bob.git("clone", *project.bob.agent_config(), str(project.remote), str(clone))
    assert_checkout_complete(clone, project.v2, project.bob)


def test_zero_setup_clone(project: Project, tmp_path: Path) -> None:
    """Installed once per machine + the committed .lfsconfig: a plain clone fetches everything."""
    carol = Machine(tmp_path, "carol")
    clone = tmp_path / "carol-clone"
    carol.git("clone", str(project.remote), str(clone))
    assert_checkout_complete(clone, project.v2, carol)
    assert len(pids(agent_log(clone), "init download")) == 1  # the folder agent: one process


def test_skip_smudge_clone_then_configure_then_pull(project: Project, tmp_path: Path) -> None:
    dave = Machine(tmp_path, "dave", install=False)
    clone = tmp_path / "dave-clone"
    dave.git("clone", str(project.remote), str(clone), env={"GIT_LFS_SKIP_SMUDGE": "1"})
    assert (clone / "big.bin").read_bytes().startswith(POINTER_PREFIX)
    dave.xetstore("lfs", "install", "--local", cwd=clone)
    dave.git("lfs", "pull", cwd=clone)
    assert_checkout_complete(clone, project.v2, dave)


def test_fetch_all_then_checkout_older_commit(project: Project, tmp_path: Path) -> None:
    carol = Machine(tmp_path, "carol")
    clone = tmp_path / "carol-clone"
    carol.git("clone", str(project.remote), str(clone))
    for path in sorted((clone / ".git" / "lfs" / "objects").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()  # wipe the local LFS objects
    carol.git("lfs", "fetch", "--all", cwd=clone)
    # The checkout must need no transfer: an agent that cannot start proves it.
    carol.git("-c", "lfs.customtransfer.xetstore.path=false", "checkout", "-q", "HEAD~1", cwd=clone)
    assert_checkout_complete(clone, project.v1, carol)


def test_incremental_push_stores_only_what_changed(project: Project) -> None:
    big = len(project.v2["big.bin"])
    grown = project.stats_v2.stored_bytes - project.stats_v1.stored_bytes
    assert project.stats_v2.files == project.stats_v1.files + 2  # the new big.bin and added.bin
    assert project.stats_v2.logical_bytes - project.stats_v1.logical_bytes >= big
    assert 0 < grown < 0.05 * big


def test_pull_into_an_existing_clone(project: Project) -> None:
    assert tree(project.early_clone) == project.v1
    project.bob.git("pull", "-q", cwd=project.early_clone)
    assert_checkout_complete(project.early_clone, project.v2, project.bob)


def test_repush_of_everything_in_one_process_stores_nothing(project: Project) -> None:
    before = project.stats()
    log_start = len(agent_log(project.source))
    project.alice.git("-c", "lfs.customtransfer.xetstore-folder.concurrent=false", "lfs", "push", "--all", "origin",
                      cwd=project.source)  # fmt: skip
    log = agent_log(project.source)[log_start:]
    assert len(pids(log, "init upload")) == 1
    already = [line for line in log if "already in the repository" in line]
    assert len(already) == len(lfs_oids(project.alice, project.source, "--all"))
    assert project.stats() == before


def test_pull_from_an_empty_repository_fails_per_object(project: Project, tmp_path: Path) -> None:
    carol = Machine(tmp_path, "carol")
    empty = tmp_path / "empty repo"
    carol.xetstore("init", str(empty))
    clone = tmp_path / "carol-clone"
    carol.git("clone", str(project.remote), str(clone), env={"GIT_LFS_SKIP_SMUDGE": "1"})
    carol.git("config", "lfs.url", encode_locator(str(empty)), cwd=clone)  # git config beats .lfsconfig
    done = carol.git("lfs", "pull", cwd=clone, check=False)
    assert done.returncode != 0
    for oid in lfs_oids(carol, clone):
        assert re.search(rf'error transferring "{oid}": \[404\] download of object {oid} \(.*\) failed: '
                         r"it is not in this repository", done.stderr), done.stderr  # fmt: skip
    assert "EOF" not in done.stderr and "broken pipe" not in done.stderr
    assert (clone / "big.bin").read_bytes().startswith(POINTER_PREFIX)
    assert leftovers(clone) == []


def test_other_remotes_keep_their_lfs_endpoint(tmp_path: Path) -> None:
    """The agent is installed globally, yet only xetstore endpoints reach it."""
    erin = Machine(tmp_path, "erin")
    repo_path = tmp_path / "xet"
    erin.xetstore("init", str(repo_path))
    work = tmp_path / "work"
    erin.git("init", str(work))
    lfs_tree(work, big_size=1_000_000, small_files=3)
    erin.xetstore("lfs", "init", str(repo_path), "--remote", "origin", cwd=work)  # this remote only
    erin.git("add", "-A", cwd=work)
    erin.git("commit", "-m", "one", cwd=work)
    for name in ("origin", "mirror"):
        erin.git("init", "--bare", str(tmp_path / f"{name}.git"))
        erin.git("remote", "add", name, (tmp_path / f"{name}.git").as_uri(), cwd=work)
        erin.git("push", name, "main", cwd=work)
    oids = lfs_oids(erin, work)
    mirrored = {p.name for p in (tmp_path / "mirror.git" / "lfs" / "objects").rglob("*") if p.is_file()}
    assert mirrored == oids  # git-lfs's own file transfer, into the mirror
    assert repository_stats(repo_path, tmp_path / "stats-cache").files == len(oids)

    other = tmp_path / "unrelated"  # another project on the same machine, no .lfsconfig
    erin.git("init", str(other))
    lfs_tree(other, big_size=200_000, small_files=1)
    erin.git("add", "-A", cwd=other)
    erin.git("commit", "-m", "x", cwd=other)
    erin.git("init", "--bare", str(tmp_path / "other.git"))
    erin.git("remote", "add", "origin", (tmp_path / "other.git").as_uri(), cwd=other)
    erin.git("push", "origin", "main", cwd=other)
    stored = {p.name for p in (tmp_path / "other.git" / "lfs" / "objects").rglob("*") if p.is_file()}
    assert stored == lfs_oids(erin, other)
    assert agent_log(other) == []


def test_two_clones_pushing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Sixteen agents, two pushes, one repository and one index: different and shared objects."""
    frank = Machine(tmp_path, "frank", eight_agents=True)
    repo_path = tmp_path / "xet"
    frank.xetstore("init", str(repo_path))
    remote = tmp_path / "remote.git"
    frank.git("init", "--bare", str(remote))
    base = tmp_path / "base"
    frank.git("init", str(base))
    (base / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    frank.xetstore("lfs", "init", str(repo_path), cwd=base)
    frank.git("add", "-A", cwd=base)
    frank.git("commit", "-m", "base", cwd=base)
    frank.git("remote", "add", "origin", str(remote), cwd=base)
    frank.git("push", "origin", "main", cwd=base)

    shared_big = random_bytes(6_000_000, seed=50)
    clones = []
    for n in (1, 2):
        clone = tmp_path / f"clone{n}"
        frank.git("clone", str(remote), str(clone))
        frank.git("checkout", "-q", "-b", f"branch{n}", cwd=clone)
        for i in range(40):
            write_file(clone / "own" / f"{i}.bin", random_bytes(5_000 + i, seed=1000 * n + i))
        for i in range(10):
            write_file(clone / "shared" / f"{i}.bin", random_bytes(20_000, seed=500 + i))
        edited = bytearray(shared_big)
        edited[n * 1_000_000 : n * 1_000_000 + 8] = b"branch%d" % n
        write_file(clone / "big.bin", bytes(edited))
        frank.git("add", "-A", cwd=clone)
        frank.git("commit", "-m", f"branch {n}", cwd=clone)
        clones.append(clone)

    pushes = [
        subprocess.Popen(["git", "push", "origin", f"branch{n}"], cwd=clone, env=frank.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n, clone in ((1, clones[0]), (2, clones[1]))
    ]  # fmt: skip
    for push in pushes:
        _, err = push.communicate(timeout=300)
        assert push.returncode == 0, err

    grace = Machine(tmp_path, "grace")  # another machine: its own cache merges both pushes
    for n, clone in ((1, clones[0]), (2, clones[1])):
        fresh = tmp_path / f"fresh{n}"
        grace.git("clone", "-b", f"branch{n}", str(remote), str(fresh))
        assert_checkout_complete(fresh, tree(clone), grace)
    stats = repository_stats(repo_path, tmp_path / "stats-cache")
    assert stats.files == 40 + 40 + 10 + 2


def test_clone_with_lfs_storage_elsewhere(project: Project, tmp_path: Path) -> None:
    """lfs.storage moves git-lfs's objects and tmp dir: the agent follows it."""
    carol = Machine(tmp_path, "carol")
    storage = tmp_path / "lfs storage"
    clone = tmp_path / "carol-clone"
    carol.git("clone", "-c", f"lfs.storage={storage}", str(project.remote), str(clone))
    assert_checkout_complete(clone, project.v2, carol)
    assert (storage / "logs" / "xetstore.log").exists() and not (clone / ".git" / "lfs" / "logs").exists()
    assert not [p for p in (storage / "tmp").iterdir() if ".xetstore-" in p.name]
    assert len([p for p in (storage / "objects").rglob("*") if p.is_file()]) == len(lfs_oids(carol, clone))


def test_agents_killed_mid_push_then_a_repush_completes(tmp_path: Path) -> None:
    """SIGKILL after a xorb is written: git-lfs sees EOF, the ref is not pushed; pushing
    again stores everything, and a clone is byte-identical."""
    heidi = Machine(tmp_path, "heidi")
    repo_path = tmp_path / "xet"
    heidi.xetstore("init", str(repo_path))
    remote = tmp_path / "remote.git"
    heidi.git("init", "--bare", str(remote))
    work = tmp_path / "work"
    heidi.git("init", str(work))
    lfs_tree(work, big_size=3_000_000, small_files=5)
    heidi.xetstore("lfs", "init", str(repo_path), cwd=work)
    heidi.git("add", "-A", cwd=work)
    heidi.git("commit", "-m", "one", cwd=work)
    heidi.git("remote", "add", "origin", str(remote), cwd=work)
    failed = heidi.git("push", "origin", "main", cwd=work, check=False,
                       env={"XETSTORE_FAULTPOINT": "clean.after_xorb:kill"})  # fmt: skip
    assert failed.returncode != 0
    assert heidi.git("ls-remote", str(remote), cwd=work).stdout == ""  # the ref was not pushed
    heidi.git("push", "origin", "main", cwd=work)
    clone = tmp_path / "clone"
    heidi.git("clone", str(remote), str(clone))
    assert_checkout_complete(clone, tree(work), heidi)
