"""A full disk, for real: an 8 MiB tmpfs holds the repository or the index cache.

A failed add must say "disk full", leave the repository consistent, and succeed
once space is freed. Skipped where tmpfs cannot be mounted (not root).
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from xetstore import DiskFull, Repository
from xetstore.errors import EXIT_FAILURE

from .rel_support import json_lines, run_cli, temp_files
from .samples import random_bytes, write_file


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int) -> Path:
    """Write a filler file so that about `leave` bytes stay free."""
    filler = mnt / "filler"
    st = os.statvfs(mnt)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(filler, "ab") as f:
        while size > 0:
            block = min(size, 1 << 20)
            try:
                f.write(b"\xaa" * block)
                f.flush()
            except OSError:
                break
            size -= block
    return filler


def test_full_repository_disk(tmp_path: Path, small_fs: Path) -> None:
    repo_dir = small_fs / "repo"
    with Repository.init(str(repo_dir)) as r:
        first = r.add_bytes(random_bytes(1_000_000, 1))
    filler = fill(small_fs, 1 << 20)
    big = write_file(tmp_path / "big", random_bytes(3_000_000, 2))
    proc = run_cli("add", "-r", str(repo_dir), str(big))
    assert proc.returncode == EXIT_FAILURE
    assert "disk full" in proc.stderr and "Traceback" not in proc.stderr and proc.stdout == ""
    assert not temp_files(repo_dir)
    with Repository.open(str(repo_dir)) as r:
        assert r.check(read_data=True).exit_code == 0
        assert r.read_bytes(first.file_hash) == random_bytes(1_000_000, 1)
        filler.unlink()
        again = r.add_file(big)
        assert r.read_bytes(again.file_hash) == big.read_bytes()
        r.gc(grace=0.0)
        assert r.check(read_data=True).problems == []


def test_completely_full_disk_refuses_even_the_lease(tmp_path: Path, small_fs: Path) -> None:
    repo_dir = small_fs / "repo"
    Repository.init(str(repo_dir)).close()
    filler = fill(small_fs, 0)
    proc = run_cli("add", "-r", str(repo_dir), str(write_file(tmp_path / "f", b"x" * 1000)))
    assert proc.returncode == EXIT_FAILURE and "disk full" in proc.stderr
    filler.unlink()
    proc = run_cli("add", "-r", str(repo_dir), str(tmp_path / "f"))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_randomized_disk_full_passes(tmp_path: Path, small_fs: Path) -> None:
    """borg's test_disk_full, shrunk: random free space, random files, check after each pass."""
    rng = random.Random(364)
    repo_dir = small_fs / "repo"
    acked: dict[str, bytes] = {}
    Repository.init(str(repo_dir)).close()
    failures = 0
    for n in range(8):
        filler = fill(small_fs, rng.randrange(0, 3 << 20))
        data = random_bytes(rng.randrange(10_000, 2_500_000), 100 + n)
        try:
            with Repository.open(str(repo_dir)) as r:
                acked[r.add_bytes(data).file_hash] = data
        except DiskFull as exc:
            failures += 1
            assert "disk full" in str(exc)
        filler.unlink()
        with Repository.open(str(repo_dir)) as r:
            assert r.check(read_data=True).exit_code == 0
            for fh, expected in acked.items():
                assert r.read_bytes(fh) == expected
            if n % 3 == 2:
                r.gc(grace=0.0)
    assert failures and acked


def test_full_index_cache_disk(tmp_path: Path, small_fs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shard is durable, so the add reports the file stored; old files stay readable."""
    monkeypatch.setenv("XETSTORE_CACHE", str(small_fs / "cache"))
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as r:
        first = r.add_bytes(random_bytes(500_000, 1))
    filler = fill(small_fs, 0)
    many = write_file(tmp_path / "many", random_bytes(6_000_000, 2))
    proc = run_cli("add", "-r", str(repo_dir), "--json", str(many))
    assert proc.returncode == 0, proc.stderr  # before: exit 1 although the shard was durable
    assert "index could not record it" in proc.stderr and "Traceback" not in proc.stderr
    (added,) = [d for d in json_lines(proc.stdout) if d["type"] == "added"]
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "other-cache") as other:  # another client adds
        other.add_bytes(random_bytes(300_000, 3))
    got = run_cli("get", "-r", str(repo_dir), first.file_hash, "-o", str(tmp_path / "first"))
    assert got.returncode == 0, got.stderr  # before: the sync's index write failed, so did the read
    assert (tmp_path / "first").read_bytes() == random_bytes(500_000, 1)
    filler.unlink()
    with Repository.open(str(repo_dir)) as r:  # the next sync merges the shard
        assert r.check(read_data=True).exit_code == 0
        assert r.read_bytes(added["file_hash"]) == many.read_bytes()
