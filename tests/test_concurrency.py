"""Several processes on one folder repository at once: writers, gc, readers.

Real processes share the repository folder and the LMDB index cache. Nothing
any of them acknowledged may be lost, and no reader may see wrong bytes.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from xetstore import Repository

from .rel_support import WORKER, json_lines, run_cli, start_worker
from .samples import random_bytes, write_file


def _worker_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("rel_worker", WORKER)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _finish(procs: list) -> list[dict]:  # type: ignore[type-arg]
    acks = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        acks += json_lines(out)
    return acks


def test_two_cli_writers_with_overlapping_files(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    Repository.init(str(repo_dir)).close()
    shared = [write_file(tmp_path / "shared" / f"s{i}", random_bytes(250_000, i)) for i in range(8)]
    own = {n: [write_file(tmp_path / n / f"o{i}", random_bytes(250_000, 100 * ord(n) + i)) for i in range(4)]
           for n in ("a", "b")}  # fmt: skip
    import subprocess
    import sys

    procs = [
        subprocess.Popen([sys.executable, "-m", "xetstore", "add", "-r", str(repo_dir), "--json", "-q",
                          *map(str, shared + own[n])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in ("a", "b")
    ]  # fmt: skip
    acks = [a for a in _finish(procs) if a["type"] == "added"]
    assert len(acks) == 24
    with Repository.open(str(repo_dir)) as r:
        for a in acks:
            assert r.read_bytes(a["file_hash"]) == Path(a["path"]).read_bytes()
        assert r.check(read_data=True).exit_code == 0
        assert len(list(r.files())) == 16


@pytest.mark.slow
def test_three_writers_one_at_a_time_acknowledgements(tmp_path: Path) -> None:
    worker = _worker_module()
    repo_dir = tmp_path / "repo"
    Repository.init(str(repo_dir)).close()
    seeds = (1, 1, 2)  # two writers store the same files, the third others
    procs = [
        start_worker("add-loop", str(repo_dir), str(tmp_path / f"in{k}"), str(s), "12") for k, s in enumerate(seeds)
    ]
    acks = [(a, s) for p, s in zip(procs, seeds) for a in _finish([p]) if a["event"] == "added"]
    assert len(acks) == 36
    with Repository.open(str(repo_dir)) as r:
        for a, seed in acks:
            assert r.read_bytes(a["file_hash"]) == worker.content(seed, a["i"])
        assert r.check(read_data=True).exit_code == 0


@pytest.mark.slow
def test_writers_dedup_against_xorbs_gc_is_deleting(tmp_path: Path) -> None:
    """Writers reuse the bytes of files another process keeps removing and collecting."""
    worker = _worker_module()
    repo_dir = tmp_path / "repo"
    Repository.init(str(repo_dir)).close()
    gc = start_worker("gc-loop", str(repo_dir), "8", "7")
    writers = [start_worker("reuse-loop", str(repo_dir), str(tmp_path / f"w{k}"), "7", "10") for k in range(2)]
    acks = [a for a in _finish(writers) if a["event"] == "added"]
    rounds = [a for a in _finish([gc]) if a["event"] == "gc"]
    assert len(acks) == 20 and len(rounds) == 8
    with Repository.open(str(repo_dir)) as r:
        for a in acks:
            assert r.read_bytes(a["file_hash"]) == worker.reused(7, a["i"])
        assert r.check(read_data=True).exit_code == 0
        r.gc(grace=0.0)
        assert r.check(read_data=True).problems == []
        for a in acks:
            assert r.read_bytes(a["file_hash"]) == worker.reused(7, a["i"])


@pytest.mark.slow
def test_reader_while_gc_repacks_its_xorbs(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    pairs, victims = [], []
    with Repository.init(str(repo_dir)) as r:
        for i in range(4):
            keep, drop = random_bytes(1_000_000, 10 + i), random_bytes(2_500_000, 20 + i)
            k, v = r.add_files([write_file(tmp_path / f"k{i}", keep), write_file(tmp_path / f"v{i}", drop)])
            pairs.append(f"{k.file_hash}:{k.sha256}")
            victims.append(v.file_hash)
    reader = start_worker("read-many", str(repo_dir), "6", *pairs)
    assert reader.stdout is not None
    reader.stdout.readline()  # ready: its index names the original xorbs
    repacked = 0
    for v in victims:
        proc = run_cli("rm", "-r", str(repo_dir), v)
        assert proc.returncode == 0, proc.stderr
        with Repository.open(str(repo_dir), cache_dir=tmp_path / "gc-cache") as r:
            repacked += len(r.gc(grace=0.0).repacked_xorbs)
        time.sleep(0.3)
    (done,) = [a for a in _finish([reader]) if a["event"] == "done"]
    assert repacked == 4 and done["reads"] > 4
