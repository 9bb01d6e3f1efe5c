"""SIGKILL at every fault point and at random times: nothing acknowledged is lost.

Each test runs the real command line (or a worker script) in a child process,
kills it with a real SIGKILL, then reopens the repository and checks: no
dangling reference, every earlier file byte-identical, the interrupted command
succeeds when run again, and gc removes exactly the orphans.
"""

from __future__ import annotations

import importlib.util
import random
import signal
import time
from pathlib import Path

import pytest

from xetstore import Repository
from xetstore.faults import FAULT_POINTS
from xetstore.maintenance.check import INFO

from .rel_support import WORKER, json_lines, objects, run_cli, start_worker, temp_files
from .samples import random_bytes, write_file

KILLED = -signal.SIGKILL

# (fault spec, what the kill interrupts). folder.mid_write counts the objects the
# child writes whole: the 1st is its writer lease, the 2nd its shard, staged while
# its xorb (spooled inside the folder, so linked, not rewritten) is published.
ADD_FAULTS = [
    "clean.before_xorb:kill",
    "packing.mid_xorb:kill@1",
    "folder.mid_write:kill@2",
    "clean.after_xorb:kill",
    "repository.after_xorbs:kill",
    "repository.after_shard:kill",
    "repository.after_index:kill",
]
GC_FAULTS = [
    "gc.after_mark:kill",
    "gc.after_repack_xorb:kill",
    "gc.after_repack_shard:kill",
    "gc.during_sweep:kill",
    "gc.after_shard_sweep:kill",
]

# The 2nd xorb: the first is durable in its new layout and described by no shard yet.
COMPACT_FAULTS = ["compact.before_xorb:kill@2", "compact.after_xorb:kill@2", "compact.after_shard:kill"]


def test_every_fault_point_is_exercised() -> None:
    named = {spec.split(":")[0] for spec in ADD_FAULTS + GC_FAULTS + COMPACT_FAULTS}
    named |= {"rm.after_record", "index.rebuild", "repair.after_delete"}
    assert named == set(FAULT_POINTS)


def _assert_clean(r: Repository, files: dict[str, bytes]) -> set[str]:
    """No damage; every file reads back identical. Returns the orphans check reports."""
    report = r.check(read_data=True)
    assert report.exit_code == 0, report.problems
    for fh, data in files.items():
        assert r.read_bytes(fh) == data
    return {p.key for p in report.problems if p.severity == INFO}


def _gc_removes_exactly_orphans(r: Repository, repo_dir: Path, files: dict[str, bytes]) -> None:
    orphans = _assert_clean(r, files)
    report = r.gc(grace=0.0)
    assert set(report.deleted_xorbs) == orphans
    assert not temp_files(repo_dir)
    assert objects(repo_dir, "locks") == set()
    final = r.check(read_data=True)
    assert final.problems == []
    _assert_clean(r, files)


@pytest.mark.parametrize("fault", ADD_FAULTS)
def test_sigkill_during_add(tmp_path: Path, fault: str) -> None:
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as r:
        before = {r.add_bytes(data).file_hash: data for data in (random_bytes(300_000, s) for s in (1, 2))}
    new = [write_file(tmp_path / "in" / f"n{i}", random_bytes(600_000 + i, 10 + i)) for i in range(3)]

    proc = run_cli("add", "-r", str(repo_dir), "--json", *map(str, new), fault=fault)
    assert proc.returncode == KILLED, proc.stderr
    assert proc.stdout == ""  # nothing was acknowledged
    if fault.startswith(("folder.mid_write", "packing.mid_xorb")):
        assert temp_files(repo_dir), "the kill should leave a partial temp file"

    with Repository.open(str(repo_dir)) as r:
        _assert_clean(r, before)
        added = r.add_files(new)  # the interrupted command succeeds when run again
        files = {**before, **{a.file_hash: p.read_bytes() for a, p in zip(added, new)}}
        _gc_removes_exactly_orphans(r, repo_dir, files)


def _gc_fixture(tmp_path: Path) -> tuple[Path, dict[str, bytes], list[str]]:
    """Three sessions; removing two files leaves one xorb sparse and one dead."""
    repo_dir = tmp_path / "repo"
    data = {name: random_bytes(size, seed) for seed, (name, size) in enumerate(
        [("a", 1_200_000), ("b", 300_000), ("c", 200_000), ("d", 500_000), ("e", 400_000)])}  # fmt: skip
    paths = {n: write_file(tmp_path / "in" / n, d) for n, d in data.items()}
    with Repository.init(str(repo_dir)) as r:
        a, b, c = r.add_files([paths["a"], paths["b"], paths["c"]])
        d = r.add_file(paths["d"])
        e = r.add_file(paths["e"])
        r.remove([a.file_hash, d.file_hash])
    kept = {b.file_hash: data["b"], c.file_hash: data["c"], e.file_hash: data["e"]}
    return repo_dir, kept, [a.file_hash, d.file_hash]


@pytest.mark.parametrize("fault", GC_FAULTS)
def test_sigkill_during_gc(tmp_path: Path, fault: str) -> None:
    repo_dir, kept, removed = _gc_fixture(tmp_path)
    proc = run_cli("gc", "-r", str(repo_dir), "--grace", "0", "--no-dry-run", fault=fault)
    assert proc.returncode == KILLED, proc.stderr

    with Repository.open(str(repo_dir)) as r:
        _assert_clean(r, kept)
        assert {f.file_hash for f in r.files()} == set(kept)
        report = r.gc(grace=0.0)  # gc runs again to the end: the dead gc's lease is stale
        assert report.live_files == 3
        assert r.check(read_data=True).problems == []
        _assert_clean(r, kept)
        assert len(objects(repo_dir, "xorbs")) == 2  # the repacked xorb and e's
        assert len(objects(repo_dir, "shards")) == 2  # the replacing shard and e's: no duplicates
        if fault.startswith("gc.after_repack_shard"):
            assert report.new_shards == []  # the interrupted run's shard is reused
        assert objects(repo_dir, "deletes") == set() and objects(repo_dir, "locks") == set()
        for fh in removed:
            assert r.find(fh) is None


@pytest.mark.parametrize("fault", COMPACT_FAULTS)
def test_sigkill_during_compact(tmp_path: Path, fault: str) -> None:
    """Killed anywhere, compact leaves every file readable; run again it finishes
    (adopting a layout object it wrote before), and gc then leaves one layout each."""
    repo_dir = tmp_path / "repo"
    texts = {n: "".join(f"{i},{i * n % 9973},row {i % 71}\n" for i in range(60_000)).encode() for n in (3, 5, 7)}
    with Repository.init(str(repo_dir)) as r:
        files = {r.add_file(write_file(tmp_path / f"t{n}", data)).file_hash: data for n, data in texts.items()}
    proc = run_cli("compact", "-r", str(repo_dir), fault=fault)
    assert proc.returncode == KILLED, proc.stderr
    with Repository.open(str(repo_dir)) as r:
        _assert_clean(r, files)
        again = r.compact()
        assert again.xorbs == (0 if fault.startswith("compact.after_shard") else 3)
        _gc_removes_exactly_orphans(r, repo_dir, files)
    assert sorted(k.rpartition(".")[2] for k in objects(repo_dir, "xorbs")) == ["1", "1", "1"]


def test_sigkill_after_deletion_record(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as r:
        gone = r.add_bytes(random_bytes(200_000, 1))
        stays = r.add_bytes(random_bytes(200_000, 2))
    proc = run_cli("rm", "-r", str(repo_dir), gone.file_hash, fault="rm.after_record:kill")
    assert proc.returncode == KILLED
    with Repository.open(str(repo_dir)) as r:  # the record is durable: the file is deleted
        assert [f.file_hash for f in r.files()] == [stays.file_hash]
        _gc_removes_exactly_orphans(r, repo_dir, {stays.file_hash: random_bytes(200_000, 2)})


def test_sigkill_during_index_rebuild_keeps_old_index(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as r:
        res = r.add_bytes(random_bytes(300_000, 3))
        index_dir = r._index.path
    proc = run_cli("repair", "index", "-r", str(repo_dir), fault="index.rebuild:kill")
    assert proc.returncode == KILLED
    assert list(index_dir.parent.glob("index.new-*")), "the kill should leave a half-built index"
    with Repository.open(str(repo_dir)) as r:
        assert r._index.shard_keys()  # the old index is still there and usable
        assert r.read_bytes(res.file_hash) == random_bytes(300_000, 3)
        r.repair_index()
    assert not list(index_dir.parent.glob("index.new-*"))  # the dead rebuild's leftovers are swept


def test_sigkill_while_repair_replaces_a_xorb(tmp_path: Path) -> None:
    """A xorb with a forged footer is rewritten under its own name: the kill falls
    between deleting the damaged copy and putting the good one."""
    repo_dir = tmp_path / "repo"
    data = random_bytes(700_000, 5)
    with Repository.init(str(repo_dir)) as r:
        res = r.add_bytes(data)
    (xorb,) = (repo_dir / "xorbs").iterdir()
    raw = bytearray(xorb.read_bytes())
    raw[-4:] = b"\xff\xff\xff\xff"
    xorb.write_bytes(bytes(raw))
    proc = run_cli("repair", "xorbs", "-r", str(repo_dir), "--yes", fault="repair.after_delete:kill")
    assert proc.returncode == KILLED
    assert not xorb.exists()  # the window: the damaged copy is gone, the good one staged
    with Repository.open(str(repo_dir)) as r:
        assert r.repair_xorbs().lost_files == []  # the staged copy counts: nothing is lost
        r.repair_xorbs(confirm=True)
        assert r.check(read_data=True).exit_code == 0
        assert r.read_bytes(res.file_hash) == data
        assert objects(repo_dir, "quarantine/xorbs") == {f"quarantine/xorbs/{xorb.name}"}


def _load_worker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("rel_worker", WORKER)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.slow
def test_random_sigkill_loop_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """20+ SIGKILLs at random times of a process adding files one at a time."""
    worker = _load_worker()
    repo_dir = tmp_path / "repo"
    Repository.init(str(repo_dir)).close()
    rng = random.Random(20260)
    acked: dict[tuple[int, int], dict] = {}
    kills = round_ = 0
    while kills < 20:
        round_ += 1
        proc = start_worker("add-loop", str(repo_dir), str(tmp_path / "in"), str(round_), "40")
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": the interpreter is up
        time.sleep(rng.uniform(0.0, 0.8))
        proc.kill()
        out, err = proc.communicate()
        kills += proc.returncode == KILLED
        assert proc.returncode in (KILLED, 0), err
        for line in json_lines(out):
            if line["event"] == "added":
                acked[(round_, line["i"])] = line
    assert len(acked) > 20
    with Repository.open(str(repo_dir)) as r:
        files = {a["file_hash"]: worker.content(seed, i) for (seed, i), a in acked.items()}
        for a in acked.values():
            assert r.find(a["sha256"]) is not None
        _gc_removes_exactly_orphans(r, repo_dir, files)


def test_ctrl_c_during_add_leaves_no_lease_and_no_temp(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    Repository.init(str(repo_dir)).close()
    src = write_file(tmp_path / "f", random_bytes(500_000, 8))
    import os
    import subprocess
    import sys

    env = dict(os.environ, XETSTORE_FAULTPOINT="clean.after_xorb:sleep=5")
    proc = subprocess.Popen([sys.executable, "-m", "xetstore", "add", "-r", str(repo_dir), str(src)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    while not objects(repo_dir, "xorbs"):  # the xorb is written; the add sleeps before its shard
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert objects(repo_dir, "locks") == set() and not temp_files(repo_dir)
    with Repository.open(str(repo_dir)) as r:
        _gc_removes_exactly_orphans(r, repo_dir, {})
