"""Repositories on S3: a team shares one bucket (moto's server and Ceph RGW).

Each client has its own cache directory (index and fetched ranges) and talks to
the server through a CountingBackend, so tests can assert on what crossed the wire.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from xetstore import Repository
from xetstore.backends.memory import MemoryBackend
from xetstore.backends.retrying import RetryingBackend
from xetstore.backends.s3 import S3Backend
from xetstore.errors import TransientBackendError
from xetstore.hashing import xet_hex
from xetstore.shard import decode_shard

from .backend_wrappers import CountingBackend, FaultyBackend
from .fault_proxy import Fault, FaultProxy
from .s3_servers import S3Server, aws_env, bucket, moto_server, proxied, rgw_server, s3_server  # noqa: F401
from .samples import random_bytes

pytestmark = pytest.mark.s3

MiB = 1024 * 1024


@dataclass
class Client:
    """One user of the bucket: a repository and the counter below its cache."""

    repo: Repository
    wire: CountingBackend


@pytest.fixture
def clients(s3_server: S3Server, bucket: str, tmp_path: Path) -> Iterator[Callable[..., Client]]:  # noqa: F811
    """`clients(name, endpoint=None, attempts=6, init=False)`: a client with its own cache."""
    opened: list[Repository] = []

    def make(name: str, endpoint: str | None = None, attempts: int = 6, init: bool = False) -> Client:
        s3 = S3Backend.from_url(s3_server.url(bucket, endpoint=endpoint))
        wire = CountingBackend(RetryingBackend(s3, attempts, base_delay=0.01))
        opener = Repository.init if init else Repository.open
        repo = opener(wire, cache_dir=tmp_path / f"cache-{name}")
        opened.append(repo)
        return Client(repo, wire)

    yield make
    for repo in opened:
        repo.close()


def edited(data: bytes, seed: int) -> bytes:
    """`data` with three 4 KiB overwrites and a 100-byte insertion: a small edit."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for pos in rng.integers(0, len(out) - 4096, 3):
        out[pos : pos + 4096] = rng.bytes(4096)
    middle = len(out) // 2
    out[middle:middle] = rng.bytes(100)
    return bytes(out)


def dangling_references(server: S3Server, bucket_name: str, prefix: str = "repo/") -> list[str]:
    """Xorbs that some shard on the server refers to but the server lacks."""
    keys = server.keys(bucket_name, prefix)
    missing = []
    for key in keys:
        if key.startswith(f"{prefix}shards/"):
            body = server.client().get_object(Bucket=bucket_name, Key=key)["Body"].read()
            shard = decode_shard(body, key)
            wanted = {t.xorb_hash for m in shard.manifests for t in m.terms}
            wanted |= {x.footer.xorb_hash for x in shard.xorbs}
            missing += [f"{prefix}xorbs/{xet_hex(h)}" for h in wanted if f"{prefix}xorbs/{xet_hex(h)}" not in keys]
    return missing


def read_back(repo: Repository, file_hash: str, tmp_path: Path) -> bytes:
    dest = tmp_path / f"out-{file_hash[:12]}"
    repo.read_file(file_hash, dest)
    return dest.read_bytes()


# -- a team on one bucket ----------------------------------------------------------


def test_two_clients_share_one_bucket(clients, s3_server: S3Server, bucket: str, tmp_path: Path) -> None:  # noqa: F811
    v1 = random_bytes(64 * MiB + 12345, seed=11)
    versions = [v1, edited(v1, 1)]
    versions.append(edited(versions[-1], 2))
    a = clients("a", init=True)
    hashes = []
    for n, data in enumerate(versions):
        path = tmp_path / f"model-v{n + 1}.bin"
        path.write_bytes(data)
        hashes.append(a.repo.add_file(path).file_hash)
    assert len(set(hashes)) == 3

    b = clients("b")
    for file_hash, data in zip(hashes, versions):
        assert read_back(b.repo, file_hash, tmp_path) == data

    before = s3_server.keys(bucket, "repo/xorbs/")
    b.wire.reset()
    v4 = edited(versions[-1], 4)
    (tmp_path / "model-v4.bin").write_bytes(v4)
    added = b.repo.add_file(tmp_path / "model-v4.bin")
    new_xorbs = b.wire.written("xorbs/")
    assert new_xorbs, "a changed file needs some new chunks"
    assert not {f"repo/{k}" for k, _ in new_xorbs} & set(before)
    assert [k for k, _, wrote in b.wire.puts if k.startswith("xorbs/") and not wrote] == []
    assert sum(n for _, n in new_xorbs) <= 0.05 * len(v4)  # only the edited neighbourhoods
    assert len(b.wire.written("shards/")) == 1
    # Dedup needs the index, not the data: only the footer of each stored xorb it
    # dedups against is read, once (its length, then the table), to verify the index.
    xorb_gets = [k for k, _ in b.wire.gets if k.startswith("xorbs/")]
    assert all(xorb_gets.count(k) == 2 for k in xorb_gets)
    assert b.wire.bytes_read("xorbs/") <= 0.01 * len(v4)

    a.repo.close()
    a = clients("a")  # A again, with its own cache: the reopen merges B's shard only
    assert len([k for k, _ in a.wire.gets if k.startswith("shards/")]) == 1
    assert {f.file_hash for f in a.repo.files()} == set(hashes) | {added.file_hash}
    assert hashlib.sha256(read_back(a.repo, added.file_hash, tmp_path)).digest() == hashlib.sha256(v4).digest()
    assert dangling_references(s3_server, bucket) == []


def test_compact_on_a_bucket_other_clients_read_and_collect(clients, tmp_path: Path) -> None:
    """One client compacts; another reads the new layouts only, and its gc removes the old ones."""
    text = "".join(f"{i},{i * 37 % 10007},row {i % 113}\n" for i in range(200_000)).encode()
    a = clients("a", init=True)
    file_hash = a.repo.add_bytes(text).file_hash
    a.wire.reset()
    report = a.repo.compact()
    assert report.xorbs == 1 and report.stored_after < report.stored_before
    (layout,) = [k for k, _ in a.wire.written("xorbs/")]
    assert layout.endswith(".1") and len(a.wire.written("shards/")) == 1
    b = clients("b")
    b.wire.reset()
    assert read_back(b.repo, file_hash, tmp_path) == text
    assert {k for k, _ in b.wire.gets if k.startswith("xorbs/")} == {layout}
    # gc's "now" is its lease record's Last-Modified from a HEAD, which S3 gives to the
    # second, while listings give milliseconds: within the same second the compact's
    # shard would look younger than "now" even with no grace period.
    time.sleep(1.1)
    gone = b.repo.gc(grace=0.0, dry_run=False)
    assert len(gone.deleted_xorbs) == 1 and not gone.deleted_xorbs[0].endswith(".1")
    assert b.repo.check(read_data=True).problems == []


def test_open_merges_only_unseen_shards(clients, tmp_path: Path) -> None:
    a = clients("a", init=True)
    first = a.repo.add_bytes(random_bytes(300_000, seed=1))
    b = clients("b")
    assert {f.file_hash for f in b.repo.files()} == {first.file_hash}
    seen = b.repo._index.shard_keys()
    b.repo.close()

    second = a.repo.add_bytes(random_bytes(300_000, seed=2))
    (unseen,) = a.repo._index.shard_keys() - seen
    b_again = clients("b")
    assert [k for k, _ in b_again.wire.gets if k.startswith("shards/")] == [unseen]
    assert {f.file_hash for f in b_again.repo.files()} == {first.file_hash, second.file_hash}


def test_adding_what_others_pushed_uploads_no_xorb(clients, tmp_path: Path) -> None:
    data = random_bytes(5 * MiB, seed=3)
    a = clients("a", init=True)
    a.repo.add_bytes(data)
    b = clients("b")
    (tmp_path / "copy.bin").write_bytes(data)
    result = b.repo.add_file(tmp_path / "copy.bin")
    assert result.new_bytes == 0
    assert b.wire.written("xorbs/") == []
    assert b.wire.bytes_read("xorbs/") < 0.001 * len(data)  # the footer that verifies the index, no data


def test_open_file_fetches_only_the_range_it_reads(clients, tmp_path: Path) -> None:
    data = random_bytes(64 * MiB, seed=5)
    a = clients("a", init=True)
    file_hash = a.repo.add_bytes(data).file_hash
    b = clients("b")
    b.wire.reset()
    middle = 32 * MiB + 777
    with b.repo.open_file(file_hash) as f:
        f.seek(middle)
        assert f.read(4096) == data[middle : middle + 4096]
    assert 0 < b.wire.bytes_read() < MiB


def test_fetched_ranges_are_cached_and_checked(
    clients, s3_server: S3Server, bucket: str, tmp_path: Path  # noqa: F811
) -> None:
    data = random_bytes(6 * MiB, seed=6)
    a = clients("a", init=True)
    file_hash = a.repo.add_bytes(data).file_hash
    b = clients("b")
    assert read_back(b.repo, file_hash, tmp_path) == data
    fetched = b.wire.bytes_read("xorbs/")
    assert fetched > 0
    b.wire.reset()
    assert read_back(b.repo, file_hash, tmp_path) == data
    assert b.wire.bytes_read("xorbs/") == 0  # all from the local cache

    entries = [p for p in (tmp_path / "cache-b" / "xorb-ranges").rglob("*") if p.is_file()]
    assert entries
    for entry in entries:  # damage every cached range on disk
        raw = bytearray(entry.read_bytes())
        raw[len(raw) // 2] ^= 0x55
        entry.write_bytes(raw)
    server_before = s3_server.keys(bucket)
    assert read_back(b.repo, file_hash, tmp_path) == data
    assert b.wire.bytes_read("xorbs/") == fetched  # dropped and fetched again
    assert b.wire.puts == [] and s3_server.keys(bucket) == server_before


# -- faults ------------------------------------------------------------------------


def test_faults_below_the_retry_limit_are_invisible(clients, proxied: FaultProxy, tmp_path: Path) -> None:
    data = random_bytes(20 * MiB, seed=7)
    (tmp_path / "f.bin").write_bytes(data)
    a = clients("a", endpoint=proxied.endpoint, init=True)
    upload_faults = [
        proxied.add(Fault("reset_request", method="PUT", path_contains="/xorbs/", after=MiB)),
        proxied.add(Fault("status", method="PUT", path_contains="/xorbs/", status=503)),
        proxied.add(Fault("lose_response", method="PUT", path_contains="/xorbs/")),
        proxied.add(Fault("status", method="PUT", path_contains="/shards/", status=500)),
    ]
    file_hash = a.repo.add_file(tmp_path / "f.bin").file_hash
    assert [f.fired for f in upload_faults] == [1, 1, 1, 1]

    download_faults = [
        proxied.add(Fault("cut_response", method="GET", path_contains="/xorbs/", after=100_000)),
        proxied.add(Fault("status", method="GET", path_contains="/xorbs/", status=503)),
        proxied.add(Fault("reset_request", method="GET", path_contains="/shards/")),
    ]
    b = clients("b", endpoint=proxied.endpoint)
    assert read_back(b.repo, file_hash, tmp_path) == data
    assert [f.fired for f in download_faults] == [1, 1, 1]


def test_upload_faults_above_the_limit_leave_nothing_referenced(
    clients, proxied: FaultProxy, s3_server: S3Server, bucket: str, tmp_path: Path  # noqa: F811
) -> None:
    a = clients("a", endpoint=proxied.endpoint, attempts=3, init=True)
    kept = a.repo.add_bytes(random_bytes(2 * MiB, seed=8))
    proxied.add(Fault("status", method="PUT", path_contains="/xorbs/", status=503, times=100))
    (tmp_path / "g.bin").write_bytes(random_bytes(3 * MiB, seed=9))
    with pytest.raises(TransientBackendError) as info:
        a.repo.add_file(tmp_path / "g.bin")
    assert info.value.key.startswith("xorbs/")
    assert "gave up after 3 attempts" in str(info.value) and info.value.key in str(info.value)
    assert {f.file_hash for f in a.repo.files()} == {kept.file_hash}
    assert dangling_references(s3_server, bucket) == []

    proxied.clear()
    proxied.add(Fault("reset_request", method="PUT", path_contains="/shards/", times=100))
    with pytest.raises(TransientBackendError) as info:
        a.repo.add_file(tmp_path / "g.bin")  # xorbs land, the shard does not
    assert info.value.key.startswith("shards/")
    assert {f.file_hash for f in a.repo.files()} == {kept.file_hash}
    assert len(s3_server.keys(bucket, "repo/shards/")) == 1
    assert dangling_references(s3_server, bucket) == []
    proxied.clear()
    b = clients("b")
    assert {f.file_hash for f in b.repo.files()} == {kept.file_hash}
    assert b.repo.add_file(tmp_path / "g.bin").new_bytes == 3 * MiB  # orphans are not referenced


def test_download_faults_above_the_limit_name_the_object(clients, proxied: FaultProxy, tmp_path: Path) -> None:
    a = clients("a", init=True)
    file_hash = a.repo.add_bytes(random_bytes(MiB, seed=10)).file_hash
    b = clients("b", endpoint=proxied.endpoint, attempts=2)
    proxied.add(Fault("status", method="GET", path_contains="/xorbs/", status=503, times=100))
    dest = tmp_path / "never.bin"
    with pytest.raises(TransientBackendError) as info:
        b.repo.read_file(file_hash, dest)
    assert info.value.key.startswith("xorbs/") and "gave up after 2 attempts to read it" in str(info.value)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".never")] == []


def test_faulty_backend_below_and_above_the_limit(tmp_path: Path) -> None:
    """The same promises without a server: FaultyBackend under the retry policy."""
    faulty = FaultyBackend(MemoryBackend())
    backend = RetryingBackend(faulty, attempts=4, base_delay=0.0)
    repo = Repository.init(backend, cache_dir=tmp_path / "cache")
    faulty.fail("put", "xorbs/", times=2)
    faulty.fail("put", "xorbs/", times=1, after_call=True)  # a lost response
    first = repo.add_bytes(random_bytes(MiB, seed=12))
    assert repo.read_bytes(first.file_hash) == random_bytes(MiB, seed=12)
    faulty.fail("put", "shards/", times=4)
    with pytest.raises(TransientBackendError, match="shards/"):
        repo.add_bytes(random_bytes(MiB, seed=13))
    assert {f.file_hash for f in repo.files()} == {first.file_hash}
    repo.close()


# -- the command line --------------------------------------------------------------


def test_cli_on_an_s3_repository(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:  # noqa: F811
    url = s3_server.url(bucket, prefix="cli")
    data = random_bytes(3 * MiB, seed=14)
    (tmp_path / "w.bin").write_bytes(data)

    def xetstore(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xetstore", *args], capture_output=True, text=True, timeout=120)

    assert xetstore("init", url).returncode == 0
    added = xetstore("add", "-q", "--json", "-r", url, str(tmp_path / "w.bin"))
    assert added.returncode == 0, added.stderr
    file_hash = next(line for line in added.stdout.splitlines() if '"added"' in line).split('"file_hash": "')[1][:64]
    listed = xetstore("ls", "-r", url)
    assert file_hash in listed.stdout
    got = xetstore("get", "-q", "-r", url, file_hash, "-o", str(tmp_path / "back.bin"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "back.bin").read_bytes() == data
    again = xetstore("init", url)
    assert again.returncode != 0 and "already holds a repository" in again.stderr
    missing = xetstore("ls", "-r", s3_server.url(bucket, prefix="nothing-here"))
    assert missing.returncode == 10 and "no xetstore repository" in missing.stderr
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in added.stdout + added.stderr + listed.stdout


def test_cli_gives_one_clear_error_when_retries_run_out(
    s3_server: S3Server, bucket: str, proxied: FaultProxy, tmp_path: Path  # noqa: F811
) -> None:
    url = s3_server.url(bucket, prefix="cli", endpoint=proxied.endpoint)
    (tmp_path / "w.bin").write_bytes(random_bytes(MiB, seed=15))

    def xetstore(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xetstore", *args], capture_output=True, text=True, timeout=120)

    assert xetstore("init", url).returncode == 0
    failing = proxied.add(Fault("status", method="PUT", path_contains="/xorbs/", status=503, times=1000))
    added = xetstore("add", "-q", "-r", url, str(tmp_path / "w.bin"))
    assert added.returncode == 1
    (line,) = added.stderr.strip().splitlines()
    assert line.startswith("xetstore: error: xorbs/") and "gave up after 6 attempts to write it" in line
    assert failing.fired == 6
    proxied.clear()
    assert xetstore("ls", "-r", url).stdout == ""
    assert dangling_references(s3_server, bucket, "cli/") == []
