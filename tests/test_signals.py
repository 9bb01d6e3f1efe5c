"""SIGTERM, sent for real to a real `xetstore add`, ends it like Ctrl-C: the writer
lease is withdrawn (other hosts' gc need not wait for it to expire) and no xorb
spool file stays behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from xetstore import Repository
from xetstore.errors import EXIT_INTERRUPTED

from .rel_support import objects, temp_files
from .samples import random_bytes, write_file


def wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the add never got there"
        time.sleep(0.05)


def test_sigterm_releases_the_lease_and_the_spool(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    Repository.init(str(repo_dir)).close()
    data = write_file(tmp_path / "in.bin", random_bytes(2_000_000, 5))
    env = dict(os.environ, XETSTORE_FAULTPOINT="repository.after_xorbs:sleep=60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "xetstore", "add", "-r", str(repo_dir), str(data)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # Its xorb is durable and its next spool file is open: it sleeps holding both.
        wait_for(lambda: objects(repo_dir, "xorbs") and objects(repo_dir, "locks"))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED and "interrupted" in err and "Traceback" not in err
    assert objects(repo_dir, "locks") == set()
    assert temp_files(repo_dir) == [] and temp_files(tmp_path / "cache") == []
    with Repository.open(str(repo_dir)) as r:
        assert list(r.files()) == []  # nothing was acknowledged, and gc may sweep at once
        assert len(r.gc(grace=0.0).deleted_xorbs) == 1


def test_sigterm_stops_the_lfs_agent_and_releases_its_lease(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    Repository.init(str(repo_dir)).close()
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    data = random_bytes(2_000_000, 6)
    oid = hashlib.sha256(data).hexdigest()
    obj = write_file(work / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid, data)
    env = dict(os.environ, XETSTORE_FAULTPOINT="repository.after_xorbs:sleep=60")
    agent = subprocess.Popen(
        [sys.executable, "-m", "xetstore.lfs", "agent", "--repo", str(repo_dir)],
        cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        requests = [
            {"event": "init", "operation": "upload", "remote": "origin", "concurrent": True, "concurrenttransfers": 8},
            {"event": "upload", "oid": oid, "size": len(data), "path": str(obj), "action": None},
        ]
        assert agent.stdin is not None
        agent.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        agent.stdin.flush()
        wait_for(lambda: objects(repo_dir, "xorbs") and objects(repo_dir, "locks"))
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=30)
    finally:
        agent.kill()
    assert agent.returncode == EXIT_INTERRUPTED  # before: -15, killed by the signal
    assert objects(repo_dir, "locks") == set() and temp_files(repo_dir) == []
