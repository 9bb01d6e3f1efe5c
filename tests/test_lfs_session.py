"""One git-lfs agent session, one writer lease: a real agent process holds it from
its first upload to terminate, a gc waits for it and keeps what the session
wrote, a removal by another client is still seen, a lapsed lease is replaced,
and a kill mid-session loses nothing that was acknowledged.

Leases are observed as the repository's lock objects, through its backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from xetstore import LockedError, Repository
from xetstore.backends import open_backend
from xetstore.errors import NotFound
from xetstore.keys import LOCKS, lease_session
from xetstore.maintenance.leases import LEASE_TTL

from .rel_support import objects, temp_files
from .samples import random_bytes, write_file

INIT = {"event": "init", "operation": "upload", "remote": "origin", "concurrent": False, "concurrenttransfers": 1}


class Agent:
    """`python -m xetstore.lfs agent` in a git work tree, driven one line at a time."""

    def __init__(self, tmp: Path, repo_dir: Path, fault: str | None = None) -> None:
        self.work = tmp / "work"
        subprocess.run(["git", "init", "-q", str(self.work)], check=True)
        env = {k: v for k, v in os.environ.items() if k != "XETSTORE_FAULTPOINT"}
        if fault:
            env["XETSTORE_FAULTPOINT"] = fault
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xetstore.lfs", "agent", "--repo", str(repo_dir)],
            cwd=self.work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            bufsize=0,  # unbuffered: select() must see every line the agent wrote
        )  # fmt: skip
        self.send(INIT)
        assert self.read() == {}

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = 120) -> dict[str, Any] | None:
        """The next reply, or None once the agent has gone."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "the agent did not answer"
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def upload(self, data: bytes, oid: str | None = None) -> dict[str, Any] | None:
        """Upload `data` (named `oid`, its sha256 unless given); its `complete`, or None if the agent died."""
        oid = oid or hashlib.sha256(data).hexdigest()
        path = write_file(self.work / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid, data)
        self.send({"event": "upload", "oid": oid, "size": len(data), "path": str(path), "action": None})
        while (reply := self.read()) is not None and reply.get("event") != "complete":
            pass
        return reply

    def terminate(self) -> int:
        """Send terminate, keeping stdin open: the agent must end on terminate alone."""
        self.send({"event": "terminate"})
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    Repository.init(str(tmp_path / "repo")).close()
    return tmp_path / "repo"


def leases(repo_dir: Path) -> dict[str, dict[str, Any]]:
    """Lease session -> its newest record, read through the repository's backend."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    with open_backend(str(repo_dir)) as backend:
        for info in backend.list(LOCKS):
            parts = lease_session(info.key)
            seq = int(info.key.rpartition("-")[2])
            if parts is None or seq < found.get(parts[1], (-1,))[0]:
                continue
            try:
                found[parts[1]] = (seq, json.loads(backend.get(info.key)))
            except NotFound:
                continue  # refreshed while we listed: its next record is there
    return {session: record for session, (_, record) in found.items()}


def completed(reply: dict[str, Any] | None) -> bool:
    return reply is not None and "error" not in reply


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_session_holds_one_writer_lease_from_its_first_upload_to_terminate(tmp_path: Path, repo_dir: Path) -> None:
    agent = Agent(tmp_path, repo_dir)
    try:
        assert leases(repo_dir) == {}  # init takes none
        seen: set[str] = set()
        for seed in range(4):
            assert completed(agent.upload(random_bytes(5000 + seed, seed)))
            held = leases(repo_dir)
            assert [r["pid"] for r in held.values()] == [agent.proc.pid]  # held between uploads
            seen |= set(held)
        assert len(seen) == 1  # the same lease all along
        assert agent.terminate() == 0
    finally:
        agent.kill()
    assert leases(repo_dir) == {} and temp_files(repo_dir) == []


def test_gc_waits_for_a_session_and_keeps_what_it_deduplicated_against(tmp_path: Path, repo_dir: Path) -> None:
    victim = random_bytes(600_000, 3)
    with Repository.open(str(repo_dir)) as r:
        r.remove([r.add_bytes(victim).file_hash])  # its xorb is garbage for a gc with no grace
    first, reuse = random_bytes(50_000, 4), victim + b"tail"
    agent = Agent(tmp_path, repo_dir)
    gc_done: list[object] = []
    try:
        assert completed(agent.upload(first))  # the session's lease (and index) from here on

        def collect() -> None:
            with Repository.open(str(repo_dir), cache_dir=tmp_path / "gc-cache") as r:
                gc_done.append(r.gc(grace=0.0, wait=120))

        gc = threading.Thread(target=collect)
        gc.start()
        deadline = time.monotonic() + 60
        while not any(r["phase"] == "sweep" for r in leases(repo_dir).values()) and gc.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert completed(agent.upload(reuse))  # dedups against the xorb gc marked dead
        assert gc.is_alive() and not gc_done  # the sweep waits for the session
        assert agent.terminate() == 0
        gc.join(120)
    finally:
        agent.kill()
    (report,) = gc_done
    assert report.rescued  # type: ignore[attr-defined]  # the victim's xorb, used since the mark
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "fresh") as r:
        for data in (first, reuse):
            assert r.read_bytes(r.resolve(sha(data))) == data
        assert r.check(read_data=True).exit_code == 0


def test_an_object_another_client_removed_is_stored_again(tmp_path: Path, repo_dir: Path) -> None:
    """The session's index predates the removal; the upload's check still sees it."""
    data = random_bytes(80_000, 7)
    agent = Agent(tmp_path, repo_dir)
    try:
        assert completed(agent.upload(data))
        with Repository.open(str(repo_dir), cache_dir=tmp_path / "other") as other:
            assert other.remove([other.resolve(sha(data))])
        assert completed(agent.upload(data))  # `git lfs push --all` sends it again
        assert agent.terminate() == 0
    finally:
        agent.kill()
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "after") as r:
        r.gc(grace=0.0)
        assert r.read_bytes(r.resolve(sha(data))) == data


def test_a_failed_upload_leaves_the_session_serving(tmp_path: Path, repo_dir: Path) -> None:
    """An upload abandoned mid-clean (its content is not its oid) hands the shared
    threads and buffers back intact: the next uploads of the session store right."""
    wrong = random_bytes(3_000_000, 8)
    good = [random_bytes(2_500_000, 9), random_bytes(4000, 10)]
    agent = Agent(tmp_path, repo_dir)
    try:
        reply = agent.upload(wrong, oid=sha(b"something else"))
        assert reply is not None and reply["error"]["code"] == 422
        assert all(completed(agent.upload(data)) for data in good)
        assert agent.terminate() == 0
    finally:
        agent.kill()
    assert temp_files(repo_dir) == [] and temp_files(tmp_path / "cache") == []
    with Repository.open(str(repo_dir)) as r:
        assert [r.read_bytes(r.resolve(sha(d))) for d in good] == good
        assert len(list(r.files())) == 2


def test_a_lapsed_session_lease_is_replaced_by_the_next_add(repo_dir: Path) -> None:
    with Repository.open(str(repo_dir)) as r, r.adding():
        r.add_bytes(random_bytes(10_000, 1))
        (first,) = leases(repo_dir)
        assert r._held is not None and r._held._lease is not None
        r._held._lease._last_ok -= LEASE_TTL  # as if the process slept past half the TTL
        r.add_bytes(random_bytes(10_000, 2))  # a gc may have swept: a new lease, a fresh index
        (second,) = leases(repo_dir)
        assert second != first
    assert leases(repo_dir) == {}


def test_gc_gives_up_while_a_session_holds_its_lease(tmp_path: Path, repo_dir: Path) -> None:
    with Repository.open(str(repo_dir)) as r, r.adding():
        r.remove([r.add_bytes(random_bytes(20_000, 1)).file_hash])  # garbage: the gc must sweep
        r.add_bytes(random_bytes(20_000, 2))
        other = Repository.open(str(repo_dir), cache_dir=tmp_path / "other")
        with other, pytest.raises(LockedError, match="still active"):
            other.gc(grace=0.0, wait=0.5)
    assert leases(repo_dir) == {}


KILLS = {
    "after xorb": "clean.after_xorb:kill@3",
    "after xorbs": "repository.after_xorbs:kill@3",
    "after shard": "repository.after_shard:kill@3",
    "after index": "repository.after_index:kill@3",
    # a slow xorb upload: the shard must wait for it
    "after index, xorb slow": "clean.before_xorb:sleep=1.5@3,repository.after_index:kill@3",
}


@pytest.mark.parametrize("fault", KILLS.values(), ids=KILLS.keys())
def test_a_killed_session_loses_nothing_it_acknowledged(tmp_path: Path, repo_dir: Path, fault: str) -> None:
    """SIGKILL in the third upload of a session: the two acknowledged objects are
    readable, the repository checks clean, and the dead agent's lease holds no gc up."""
    data = [random_bytes(300_000 + i, 20 + i) for i in range(3)]
    agent = Agent(tmp_path, repo_dir, fault=fault)
    try:
        replies = [agent.upload(d) for d in data]
        assert agent.proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        agent.kill()
    assert [completed(r) for r in replies] == [True, True, False]
    for cache in ("after", "after-gc"):
        with Repository.open(str(repo_dir), cache_dir=tmp_path / cache) as r:
            assert r.check(read_data=True).exit_code == 0
            assert [r.read_bytes(r.resolve(sha(d))) for d in data[:2]] == data[:2]
            if cache == "after":
                r.gc(grace=0.0, wait=10)  # the dead process's lease is stale at once
    assert objects(repo_dir, "locks") == set()
