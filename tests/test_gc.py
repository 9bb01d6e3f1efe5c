"""rm and gc: deletion records, the grace period, repacking, leases and races with writers."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from xetstore import FileNotInRepository, LockedError, Repository
from xetstore.backends.memory import MemoryBackend
from xetstore.errors import EXIT_LOCKED, EXIT_NOT_FOUND
from xetstore.maintenance.check import DAMAGE
from xetstore.maintenance.leases import Lease

from .rel_support import objects, run_cli
from .samples import random_bytes, write_file

DAY = 24 * 3600


def age(repo_dir: Path, key: str, seconds: float) -> None:
    """Make an object look `seconds` old (the grace period reads backend mtimes)."""
    path = repo_dir / key
    t = time.time() - seconds
    os.utime(path, (t, t))


def fake_lease(repo_dir: Path, kind: str, phase: str, pid: int, age_seconds: float = 0) -> Path:
    path = repo_dir / "locks" / f"{kind}-{'ab' * 8}-0"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"kind": kind, "phase": phase, "host": socket.gethostname(), "pid": pid, "time": time.time()}
    path.write_text(json.dumps(record))
    if age_seconds:
        age(repo_dir, f"locks/{path.name}", age_seconds)
    return path


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as r:
        files = {r.add_bytes(d).file_hash: d for d in (random_bytes(400_000, 1), random_bytes(300_000, 2))}
    return repo_dir, files


def test_rm_then_gc_frees_exactly_the_dead_xorb(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = two_files
    gone, kept = list(files)
    with Repository.open(str(repo_dir)) as r:
        before = objects(repo_dir, "xorbs")
        removed = r.remove([gone])
        assert [f.file_hash for f in removed] == [gone]
        with pytest.raises(FileNotInRepository):
            r.read_bytes(gone)
        report = r.gc(grace=0.0)
        assert len(report.deleted_xorbs) == 1 and set(report.deleted_xorbs) < before
        assert r.read_bytes(kept) == files[kept]
        assert r.check(read_data=True).problems == []
        assert r.gc(grace=0.0).deleted_xorbs == []  # a second gc has nothing to do
        assert objects(repo_dir, "deletes") == set()


def test_grace_period_keeps_young_objects(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = two_files
    gone = next(iter(files))
    with Repository.open(str(repo_dir)) as r:
        r.remove([gone])
        young = r.gc()  # default grace: 24 hours
        assert young.deleted_xorbs == [] and len(young.young) == 1
        for key in objects(repo_dir, "xorbs"):
            age(repo_dir, key, DAY + 60)
        old = r.gc()
        assert old.deleted_xorbs == young.young


def test_rm_unknown_file_changes_nothing(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = two_files
    proc = run_cli("rm", "-r", str(repo_dir), next(iter(files)), "00" * 32)
    assert proc.returncode == EXIT_NOT_FOUND and "00" * 32 in proc.stderr
    assert objects(repo_dir, "deletes") == set()
    with Repository.open(str(repo_dir)) as r:
        assert len(list(r.files())) == 2


def test_readd_after_rm_is_live_again(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = two_files
    fh = next(iter(files))
    with Repository.open(str(repo_dir)) as r:
        r.remove([fh])
        assert r.add_bytes(files[fh]).file_hash == fh
        r.gc(grace=0.0)
        assert r.read_bytes(fh) == files[fh]
    with Repository.open(str(repo_dir), cache_dir=repo_dir.parent / "fresh") as fresh:
        assert fh in {f.file_hash for f in fresh.files()}


@pytest.mark.parametrize("data", [b"", b"x" * 1000], ids=["empty", "small"])
def test_removed_and_added_again_within_a_second_is_live(tmp_path: Path, data: bytes) -> None:
    """Adding a file again writes a shard of only its manifest; removed and added
    twice within one second, that shard has the bytes of the one the deletion
    record names (found by the state-machine test for the empty file)."""
    with Repository.init(str(tmp_path / "repo"), cache_dir=tmp_path / "cache") as r:
        fh = r.add_bytes(data).file_hash
        for _ in range(3):
            r.remove([fh])
            assert fh not in {f.file_hash for f in r.files()}
            assert r.add_bytes(data).file_hash == fh
            assert fh in {f.file_hash for f in r.files()}
    with Repository.open(str(tmp_path / "repo"), cache_dir=tmp_path / "fresh") as fresh:
        assert fh in {f.file_hash for f in fresh.files()} and fresh.read_bytes(fh) == data


def test_stale_client_sees_deletion_and_readds_with_a_new_manifest(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = two_files
    fh = next(iter(files))
    stale = Repository.open(str(repo_dir), cache_dir=repo_dir.parent / "stale")
    with Repository.open(str(repo_dir)) as r:
        r.remove([fh])
    assert fh in {f.file_hash for f in stale.files()}  # not synced yet
    stale.add_bytes(files[fh])  # the add syncs first: the file is new again, so a manifest is written
    stale.close()
    with Repository.open(str(repo_dir), cache_dir=repo_dir.parent / "fresh") as fresh:
        assert fresh.read_bytes(fh) == files[fh]
        fresh.gc(grace=0.0)
        assert fresh.read_bytes(fh) == files[fh]


def test_repack_keeps_live_files_and_stale_readers_resume(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    data = {n: random_bytes(s, i) for i, (n, s) in enumerate([("a", 2_000_000), ("b", 500_000), ("c", 300_000)])}
    paths = {n: write_file(tmp_path / n, d) for n, d in data.items()}
    with Repository.init(str(repo_dir)) as r:
        a, b, c = r.add_files(list(paths.values()))
    reader = Repository.open(str(repo_dir), cache_dir=tmp_path / "reader-cache")
    stream = reader.open_file(b.file_hash)
    first = stream.read(100_000)
    with Repository.open(str(repo_dir)) as r:
        r.remove([a.file_hash])
        report = r.gc(grace=0.0)
        assert len(report.repacked_xorbs) == 1 and len(report.new_xorbs) == 1
        assert r.check(read_data=True).problems == []
    # The reader's index still names the deleted xorb: reads re-sync and go on.
    assert first + stream.read() == data["b"]
    assert reader.read_bytes(c.file_hash) == data["c"]
    out = tmp_path / "b.out"
    reader.close()
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "reader-cache") as again:
        again.read_file(b.file_hash, out)
    assert out.read_bytes() == data["b"]
    new_size = sum((repo_dir / k).stat().st_size for k in objects(repo_dir, "xorbs"))
    assert new_size < 900_000


def stale_reader_after_repack(tmp_path: Path) -> tuple[Repository, str, bytes]:
    """A reader opened before a gc repacked the xorb of its file: (reader, file hash, bytes)."""
    repo_dir = tmp_path / "repo"
    big, victim = random_bytes(3_000_000, 1), random_bytes(4_000_000, 2)
    paths = [write_file(tmp_path / "big", big), write_file(tmp_path / "victim", victim)]
    with Repository.init(str(repo_dir)) as r:
        b, v = r.add_files(paths)
    reader = Repository.open(str(repo_dir), cache_dir=tmp_path / "reader-cache")
    with Repository.open(str(repo_dir)) as r:
        r.remove([v.file_hash])
        assert r.gc(grace=0.0).repacked_xorbs
    return reader, b.file_hash, big


def test_stale_reader_writing_a_file_rewrites_it_after_a_resync(tmp_path: Path) -> None:
    """read_file writes a regular file from the reader threads; a xorb gc repacked
    meanwhile makes it re-sync and write the file again, whole and right."""
    reader, file_hash, big = stale_reader_after_repack(tmp_path)
    out = tmp_path / "big.out"
    out.write_bytes(b"an older file in the way")
    reader.read_file(file_hash, out)
    assert out.read_bytes() == big
    reader.close()


def test_stale_reader_streaming_resumes(tmp_path: Path) -> None:
    reader, file_hash, big = stale_reader_after_repack(tmp_path)
    assert b"".join(reader.iter_file(file_hash)) == big
    reader.close()


def test_dry_run_is_the_default_on_remote_repositories() -> None:
    class RemoteLike(MemoryBackend):
        """A memory backend under a URL that is neither a folder nor memory://."""

    backend = RemoteLike("s3://bucket/prefix")
    with Repository.init(backend) as r:
        fh = r.add_bytes(random_bytes(100_000, 1)).file_hash
        r.remove([fh])
        report = r.gc(grace=0.0)
        assert report.dry_run and report.deleted_xorbs and list(backend.list("xorbs/"))
        assert not r.gc(grace=0.0, dry_run=False).dry_run
        assert list(backend.list("xorbs/")) == []


def test_second_gc_is_refused(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, _ = two_files
    with Repository.open(str(repo_dir)) as r, Lease.gc(r._backend):
        proc = run_cli("gc", "-r", str(repo_dir), "--grace", "0")
        assert proc.returncode == EXIT_LOCKED and "another gc" in proc.stderr


def test_stale_gc_lease_does_not_block(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = two_files
    fake_lease(repo_dir, "gc", "sweep", os.getpid(), age_seconds=2 * 3600)  # alive pid, but old
    with Repository.open(str(repo_dir)) as r:
        r.add_bytes(random_bytes(1000, 9))  # a writer is not held up by a stale sweep
        r.remove([next(iter(files))])
        report = r.gc(grace=0.0)
        assert report.deleted_xorbs and objects(repo_dir, "locks") == set()


def test_writer_waits_for_a_sweeping_gc(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, _ = two_files
    record = fake_lease(repo_dir, "gc", "sweep", os.getpid())
    with Repository.open(str(repo_dir)) as r:
        with pytest.raises(LockedError, match="gc is deleting"):
            Lease.writer(r._backend, wait=0.3)
        record.unlink()
        with Lease.writer(r._backend, wait=0.3):
            pass


def test_lapsed_lease_refuses_to_act() -> None:
    lease = Lease.writer(MemoryBackend(), ttl=60)
    lease._last_ok -= 31  # as if the process was suspended for half the TTL
    with pytest.raises(LockedError, match="lapsed"):
        lease.check()
    lease.refresh()  # never revives
    with pytest.raises(LockedError):
        lease.check()
    lease.release()


def test_suspended_gc_deletes_nothing_after_its_lease_lapsed(
    tmp_path: Path, two_files: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_dir, files = two_files
    with Repository.open(str(repo_dir)) as r:
        r.remove([next(iter(files))])
    before = objects(repo_dir, "xorbs") | objects(repo_dir, "shards")
    monkeypatch.setenv("XETSTORE_LEASE_TTL", "2")
    proc = run_cli_async(repo_dir, "gc.after_mark:sleep=1")
    while not objects(repo_dir, "locks"):  # the gc holds its lease
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGSTOP)  # a laptop lid closing
    time.sleep(2.5)
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_LOCKED and "lapsed" in err
    assert before <= objects(repo_dir, "xorbs") | objects(repo_dir, "shards")  # nothing deleted
    with Repository.open(str(repo_dir)) as r:
        assert r.check(read_data=True).exit_code == 0


def test_gc_rescues_a_xorb_a_writer_dedups_against_mid_gc(tmp_path: Path) -> None:
    """The dedup hazard: a writer reuses chunks of a dead xorb after gc marked it."""
    repo_dir = tmp_path / "repo"
    victim = random_bytes(600_000, 3)
    with Repository.init(str(repo_dir)) as r:
        dead = r.add_bytes(victim)
        r.remove([dead.file_hash])
        gc = run_cli_async(repo_dir, "gc.after_mark:sleep=1.5")
        while not objects(repo_dir, "locks"):
            time.sleep(0.02)
        reuse = r.add_bytes(victim + b"tail")  # dedups against the dead xorb while gc sleeps
        out, err = gc.communicate(timeout=60)
        assert gc.returncode == 0, err
        assert "an add that ran during gc uses it" in out
        assert r.read_bytes(reuse.file_hash) == victim + b"tail"
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "fresh") as fresh:
        assert fresh.check(read_data=True).exit_code == 0
        assert fresh.read_bytes(reuse.file_hash) == victim + b"tail"


def test_gc_waits_for_a_writer_that_started_before_the_sweep(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    victim = random_bytes(600_000, 4)
    with Repository.init(str(repo_dir)) as r:
        r.remove([r.add_bytes(victim).file_hash])
    src = write_file(tmp_path / "reuse", victim + b"more")
    writer = run_cli_async(repo_dir, "repository.after_xorbs:sleep=1.5", "add", str(src), "--json")
    while not objects(repo_dir, "locks"):
        time.sleep(0.02)
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "gc-cache") as r:
        r.gc(grace=0.0)  # must wait for the writer, then see its shard
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    fh = json.loads(out.splitlines()[0])["file_hash"]
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "fresh") as fresh:
        assert fresh.read_bytes(fh) == victim + b"more"
        assert fresh.check(read_data=True).exit_code == 0


def test_deletion_during_gc_is_carried_to_the_new_shard(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    data = {n: random_bytes(s, i) for i, (n, s) in enumerate([("a", 1_500_000), ("b", 300_000), ("c", 300_000)])}
    paths = [write_file(tmp_path / n, d) for n, d in data.items()]
    with Repository.init(str(repo_dir)) as r:
        a, b, c = r.add_files(paths)
        r.remove([a.file_hash])
        gc = run_cli_async(repo_dir, "gc.after_mark:sleep=1.5", "gc", "--grace", "0", "--no-dry-run")
        while not objects(repo_dir, "locks"):
            time.sleep(0.02)
        r.remove([b.file_hash])  # names only the old shard: gc must carry it over
        out, err = gc.communicate(timeout=60)
        assert gc.returncode == 0, err
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "fresh") as fresh:
        assert {f.file_hash for f in fresh.files()} == {c.file_hash}
        assert fresh.check(read_data=True).exit_code == 0
        fresh.gc(grace=0.0)
        assert {f.file_hash for f in fresh.files()} == {c.file_hash}
        assert fresh.read_bytes(c.file_hash) == data["c"]


def test_damaged_deletion_record_keeps_files_live(two_files: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = two_files
    with Repository.open(str(repo_dir)) as r:
        r.remove([next(iter(files))])
    (record,) = (repo_dir / "deletes").iterdir()
    record.write_bytes(b"{not json")
    with Repository.open(str(repo_dir), cache_dir=repo_dir.parent / "fresh") as r:
        report = r.check()
        assert any(p.severity == DAMAGE and p.key.startswith("deletes/") for p in report.problems)
        assert r.gc(grace=0.0).deleted_xorbs == []  # unknown deletions delete nothing
        assert len(list(r.files())) == 2


def run_cli_async(repo_dir: Path, fault: str, *args: str):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    env = dict(os.environ, XETSTORE_FAULTPOINT=fault)
    cmd = list(args) or ["gc", "--grace", "0", "--no-dry-run"]
    return subprocess.Popen(
        [sys.executable, "-m", "xetstore", cmd[0], "-r", str(repo_dir), *cmd[1:]],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
