"""The LMDB index under stress: a tiny map, several processes, fork(), dead readers."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xetstore import ConfigError, Repository
from xetstore.index import SCHEMA, Index
from xetstore.index import environment as index_env
from xetstore.maintenance.objects import read_shard
from xetstore.shard import ShardXorb
from xetstore.xorb import XorbFooter

from .samples import random_bytes


def synthetic_xorb(chunks: int) -> ShardXorb:
    """A chunk table with random hashes (the index stores tables, it does not read xorbs)."""
    sizes = [8192 + i for i in range(chunks)]
    unpacked, serialized, u, s = [], [], 0, 0
    for size in sizes:
        u, s = u + size, s + size + 8
        unpacked.append(u)
        serialized.append(s)
    footer = XorbFooter(
        secrets.token_bytes(32), tuple(secrets.token_bytes(32) for _ in sizes), tuple(serialized), tuple(unpacked)
    )
    return ShardXorb(footer, s + 92 + 40 * chunks + 4)


def test_map_full_grows_and_keeps_every_entry(tmp_path: Path) -> None:
    with Index.open(tmp_path / "idx", map_size=64 * 1024) as idx:
        tables = [synthetic_xorb(200) for _ in range(30)]
        for t in tables:
            idx.add_xorbs([t])
        grown = idx._env().env.info()["map_size"]
        assert grown > 64 * 1024
        hashes = [h for t in tables for h in t.footer.chunk_hashes]
        assert all(loc is not None for loc in idx.chunk_locations(hashes))
    with Index.open(tmp_path / "idx", map_size=64 * 1024) as again:
        assert all(again.xorb(t.footer.xorb_hash) is not None for t in tables)


GROWER = """
import sys, secrets
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from tests.test_index_lmdb import synthetic_xorb
from xetstore.index import Index
with Index.open(Path(sys.argv[1]), map_size=64 * 1024) as idx:
    for _ in range(25):
        idx.add_xorbs([synthetic_xorb(150)])
    print(sum(1 for _ in idx.xorbs()))
"""


def test_processes_growing_one_map_at_once(tmp_path: Path) -> None:
    root = str(Path(__file__).parent.parent)
    procs = [subprocess.Popen([sys.executable, "-c", GROWER, str(tmp_path / "idx"), root],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]  # fmt: skip
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with Index.open(tmp_path / "idx") as idx:
        assert sum(1 for _ in idx.xorbs()) == 75


def test_fork_gives_the_child_its_own_environment(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as r:
        before = r.add_bytes(random_bytes(200_000, 1))
        pid = os.fork()
        if pid == 0:  # the child: read and write through the inherited Repository
            code = 0
            try:
                assert r.read_bytes(before.file_hash) == random_bytes(200_000, 1)
                r.add_bytes(random_bytes(150_000, 2))
            except BaseException:  # noqa: BLE001 - report any failure through the exit code
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert r.read_bytes(before.file_hash) == random_bytes(200_000, 1)
        child_file = r.add_bytes(random_bytes(150_000, 2))  # already stored by the child
        assert child_file.new_bytes == 0
        assert r.check().exit_code == 0


READER = """
import sys, time
from pathlib import Path
from xetstore.index import Index
idx = Index.open(Path(sys.argv[1]))
txn = idx._env().env.begin()
print("reading", flush=True)
time.sleep(60)
"""


def test_reader_slots_of_killed_processes_are_cleared(tmp_path: Path) -> None:
    Index.open(tmp_path / "idx").close()
    # Two readers; one is killed. The other keeps the environment open, so the
    # next opener is not the first (which would reset the reader table anyway).
    procs = [subprocess.Popen([sys.executable, "-c", READER, str(tmp_path / "idx")], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "reading"
    os.kill(procs[0].pid, signal.SIGKILL)
    procs[0].wait()
    try:
        with Index.open(tmp_path / "idx") as idx:
            assert idx.stale_readers_cleared == 1
            readers = idx._env().env.readers()
            assert str(procs[1].pid) in readers and str(procs[0].pid) not in readers
    finally:
        procs[1].kill()
        procs[1].wait()


def test_index_of_another_schema_is_emptied_and_refilled(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as r:
        fh = r.add_bytes(random_bytes(100_000, 3)).file_hash
        r._index._write(lambda txn, dbs: txn.put(b"schema", b"0", db=dbs[b"meta"]))
        path = r._index.path
    assert index_env._OPEN.get(str(path)) is None  # closed: the next open reads the schema
    with Repository.open(str(repo_dir)) as r:
        assert [f.file_hash for f in r.files()] == [fh]
        assert r._index._read(lambda txn, dbs: txn.get(b"schema", db=dbs[b"meta"])) == SCHEMA


def test_index_refuses_a_network_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert index_env._filesystem_type(Path("/proc")) == "proc"  # read from the real /proc/mounts
    monkeypatch.setattr(index_env, "_filesystem_type", lambda path: "nfs4")
    with pytest.raises(ConfigError, match="network filesystem"):
        Index.open(tmp_path / "idx")


def test_rebuild_reads_xorb_footers_a_shard_no_longer_has(tmp_path: Path) -> None:
    """Two sessions dedup against one xorb; with the first shard lost, the footer fills the gap."""
    repo_dir = tmp_path / "repo"
    data = random_bytes(400_000, 4)
    with Repository.init(str(repo_dir)) as r:
        first = r.add_bytes(data)
        second = r.add_bytes(data + b"extra")  # its shard names the first session's xorb
        shard_of_first = min((repo_dir / "shards").iterdir(), key=lambda p: p.stat().st_mtime)
        assert read_shard(r._backend, f"shards/{shard_of_first.name}").xorbs
        shard_of_first.unlink()  # lost: its manifest and the xorb's chunk table with it
        report = r.repair_index()
        assert report.footers == 1
        assert r.read_bytes(second.file_hash) == data + b"extra"
        assert first.file_hash not in {f.file_hash for f in r.files()}
        assert r.check(read_data=True).exit_code == 0
