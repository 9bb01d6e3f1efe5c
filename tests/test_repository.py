"""The library API: round trips, dedup, packing, ranges, stats, and bad input."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xetstore import (
    ConfigError,
    FileNotInRepository,
    HashMismatch,
    InputError,
    IntegrityError,
    MissingData,
    Repository,
    RepositoryNotFound,
)
from xetstore.backends.memory import MemoryBackend
from xetstore.intake import WHOLE_FILE

from .samples import random_bytes, tree_size, write_file


@pytest.fixture(scope="module")
def shared_repo():
    with Repository.init(MemoryBackend("memory://props")) as r:
        yield r


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.builds(random_bytes, st.integers(100_000, 400_000), st.integers(0, 100)),
        st.builds(lambda n, b: bytes([b]) * n, st.integers(100_000, 400_000), st.integers(0, 255)),
    ),
    seed=st.integers(0, 1000),
)
def test_round_trip_whole_and_ranges(shared_repo: Repository, data: bytes, seed: int) -> None:
    res = shared_repo.add_bytes(data)
    assert res.size == len(data)
    assert shared_repo.read_bytes(res.file_hash) == data
    rng = random.Random(seed)
    for _ in range(5):
        a = rng.randint(0, len(data))
        b = rng.randint(a, len(data) + 10)
        assert shared_repo.read_bytes(res.file_hash, a, b) == data[a:b]


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(range(256)) * 1000, random_bytes(3 << 20, 1)], ids=["empty", "one-byte", "every-byte", "3MiB"])
def test_read_file_writes_identical_bytes(repo: Repository, tmp_path: Path, data: bytes) -> None:
    src = write_file(tmp_path / "in.bin", data)
    res = repo.add_file(src)
    repo.read_file(res.file_hash, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert res.sha256 == __import__("hashlib").sha256(data).hexdigest()
    assert repo.find(res.sha256) == res.file_hash


def test_open_file_is_seekable_and_reads_like_a_file(repo: Repository) -> None:
    data = random_bytes(2 << 20, 2) + b"tail line\n"
    res = repo.add_bytes(data)
    with repo.open_file(res.file_hash) as f:
        f.seek(1_000_000)
        assert f.read(5000) == data[1_000_000:1_005_000]
        f.seek(-10, io.SEEK_END)
        assert f.readline() == b"tail line\n"
        assert f.tell() == len(data)
        assert f.read() == b""


def test_second_add_of_the_same_file_stores_nothing(repo: Repository) -> None:
    data = random_bytes(5 << 20, 3)
    first = repo.add_bytes(data)
    before = repo.stats()
    second = repo.add_bytes(data)
    assert first.file_hash == second.file_hash
    assert (second.new_bytes, second.stored_bytes) == (0, 0)
    assert repo.stats().stored_bytes == before.stored_bytes


def test_an_insert_in_the_middle_stores_little(repo: Repository) -> None:
    data = random_bytes(20 << 20, 4)
    repo.add_bytes(data)
    mid = len(data) // 2
    res = repo.add_bytes(data[:mid] + random_bytes(1024, 5) + data[mid:])
    assert res.new_bytes < 0.05 * len(data)
    assert res.stored_bytes < 0.05 * len(data)


def test_runs_of_one_chunk_are_few_terms_and_tiny(repo: Repository) -> None:
    # A run of identical chunks (zeros, padding) is stored as at most 64 copies
    # that compress away; longer runs read those copies again, one term per 64.
    zeros = bytes(48 << 20)  # 384 chunks of 128 KiB
    first = repo.add_bytes(zeros)
    assert 6 <= len(repo.manifest(first.file_hash).terms) <= 7
    assert repo.stats().chunks <= 65 and first.stored_bytes < 32 << 10
    assert repo.read_bytes(first.file_hash) == zeros
    # A later version follows the stored xorb's chunk list around its edit.
    edited = zeros[: 10 << 20] + random_bytes(4096, 6) + zeros[10 << 20 :]
    second = repo.add_bytes(edited)
    assert len(repo.manifest(second.file_hash).terms) <= 10
    assert second.stored_bytes < 64 << 10
    assert repo.read_bytes(second.file_hash) == edited
    assert repo.read_bytes(second.file_hash, (10 << 20) - 5, (10 << 20) + 5) == edited[(10 << 20) - 5 : (10 << 20) + 5]


def test_many_small_files_share_xorbs_and_one_shard(repo: Repository, tmp_path: Path) -> None:
    paths = [write_file(tmp_path / f"f{i}.txt", f"file {i}\n".encode() * 50) for i in range(200)]
    results = repo.add_files(paths)
    stats = repo.stats()
    assert len(results) == 200 and stats.files == 200
    assert (stats.xorbs, stats.shards) == (1, 1)
    for p, r in zip(paths, results):
        assert repo.read_bytes(r.file_hash) == p.read_bytes()
    assert sum(r.stored_bytes for r in results) == sum(i.size for i in repo._backend.list("xorbs/"))


def test_small_files_read_whole_give_the_streamed_results(tmp_path: Path) -> None:
    # add_files reads files up to WHOLE_FILE whole and streams larger ones;
    # either way a file's hash (so its chunk boundaries and chunk hashes), sha256
    # and bytes are the same as add_stream's.
    sizes = [0, 1, 8191, 65536, WHOLE_FILE - 1, WHOLE_FILE, WHOLE_FILE + 1, 3 * WHOLE_FILE]
    paths = [write_file(tmp_path / "in" / f"f{n}", random_bytes(n, n)) for n in sizes]
    with Repository.init(str(tmp_path / "whole")) as whole, Repository.init(str(tmp_path / "streamed")) as streamed:
        results = whole.add_files(paths)
        for p, r in zip(paths, results):
            with p.open("rb") as f:
                s = streamed.add_stream(f)
            assert (r.file_hash, r.sha256, r.size) == (s.file_hash, s.sha256, s.size)
            assert whole.read_bytes(r.file_hash) == p.read_bytes()


def test_stats_report_dedup_and_compression(repo: Repository) -> None:
    text = b"".join(b"%08d some repetitive log line\n" % i for i in range(100_000))
    repo.add_bytes(text)
    repo.add_bytes(text)
    s = repo.stats()
    assert s.logical_bytes == len(text) and s.files == 1
    repo.add_bytes(text + b"more")
    s = repo.stats()
    assert s.logical_bytes == 2 * len(text) + 4 and s.files == 2
    assert s.dedup_ratio > 1.8
    assert s.compression_ratio > 2
    assert s.stored_bytes == tree_size(Path(repo._backend.root)) - len(repo._backend.get("config"))


def test_another_process_shard_is_merged_on_open(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    Repository.init(url, cache_dir=tmp_path / "cache-a").close()
    data = random_bytes(1 << 20, 6)
    with Repository.open(url, cache_dir=tmp_path / "cache-a") as a:
        fh = a.add_bytes(data).file_hash
    with Repository.open(url, cache_dir=tmp_path / "cache-b") as b:
        assert b.read_bytes(fh) == data
        assert b.add_bytes(data).new_bytes == 0


def test_flipped_byte_names_the_xorb_chunk_and_file(repo: Repository) -> None:
    res = repo.add_bytes(random_bytes(1 << 20, 7))
    (xorb,) = repo._backend.list("xorbs/")
    path = Path(repo._backend.root) / xorb.key
    damaged = bytearray(path.read_bytes())
    damaged[100_000] ^= 0x40
    path.chmod(0o644)
    path.write_bytes(bytes(damaged))
    with pytest.raises(HashMismatch) as err:
        repo.read_bytes(res.file_hash)
    message = str(err.value)
    assert xorb.key.split("/")[1] in message and res.file_hash in message and "chunk" in message
    with pytest.raises(IntegrityError):
        repo.read_file(res.file_hash, Path(repo._backend.root).parent / "out")
    assert not (Path(repo._backend.root).parent / "out").exists()


def test_missing_xorb_names_the_file(repo: Repository) -> None:
    res = repo.add_bytes(random_bytes(300_000, 8))
    (xorb,) = repo._backend.list("xorbs/")
    repo._backend.delete(xorb.key)
    with pytest.raises(MissingData, match=res.file_hash):
        repo.read_bytes(res.file_hash)


def test_expected_sha256_is_enforced(repo: Repository) -> None:
    with pytest.raises(HashMismatch):
        repo.add_stream(io.BytesIO(b"content"), expected_sha256="00" * 32)
    assert list(repo.files()) == []


class TestBadInput:
    def test_missing_path_writes_nothing(self, repo: Repository, tmp_path: Path) -> None:
        good = write_file(tmp_path / "good", random_bytes(100_000, 9))
        with pytest.raises(InputError, match="no such file"):
            repo.add_files([good, tmp_path / "missing"])
        assert list(repo._backend.list("xorbs/")) == [] and list(repo._backend.list("shards/")) == []

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
    def test_unreadable_path(self, repo: Repository, tmp_path: Path) -> None:
        p = write_file(tmp_path / "secret", b"x")
        p.chmod(0)
        with pytest.raises(InputError, match="permission denied"):
            repo.add_file(p)

    def test_directory_path(self, repo: Repository, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="directory"):
            repo.add_file(tmp_path)

    def test_unknown_file_hash(self, repo: Repository) -> None:
        with pytest.raises(FileNotInRepository):
            repo.read_bytes("ab" * 32)
        with pytest.raises(FileNotInRepository, match="64 hex digits"):
            repo.read_bytes("not-a-hash")

    def test_not_a_repository(self, tmp_path: Path) -> None:
        with pytest.raises(RepositoryNotFound, match="xetstore init"):
            Repository.open(str(tmp_path / "nothing"))
        assert not (tmp_path / "nothing").exists()

    def test_newer_format_version(self, tmp_path: Path) -> None:
        url = tmp_path / "repo"
        Repository.init(str(url)).close()
        config = url / "config"
        config.write_bytes(config.read_bytes().replace(b'"version": 1', b'"version": 7'))
        before = sorted(p.name for p in url.rglob("*"))
        with pytest.raises(ConfigError, match="newer"):
            Repository.open(str(url))
        assert sorted(p.name for p in url.rglob("*")) == before

    def test_init_twice_is_refused(self, tmp_path: Path) -> None:
        Repository.init(str(tmp_path / "r")).close()
        with pytest.raises(ConfigError, match="already"):
            Repository.init(str(tmp_path / "r"))


class _ListCounting(MemoryBackend):
    """A memory backend that counts listings of shards/ (each add syncs by listing them)."""

    def __init__(self) -> None:
        super().__init__()
        self.shard_listings = 0

    def list(self, prefix: str = ""):  # type: ignore[no-untyped-def]
        self.shard_listings += prefix == "shards/"
        return super().list(prefix)


def test_adding_an_unknown_stream_lists_the_shards_once(tmp_path: Path) -> None:
    """A git-lfs push commits one shard per object: an object the index does not
    know is looked up without a listing and added after one; one it knows costs
    a second listing at commit (another client may have removed it)."""
    backend = _ListCounting()
    with Repository.init(backend, cache_dir=tmp_path / "cache") as r:
        data = random_bytes(50_000, 1)
        oid = hashlib.sha256(data).hexdigest()
        backend.shard_listings = 0
        assert r.find_stored(oid, len(data), sync=False) is None
        assert backend.shard_listings == 0
        r.add_stream(io.BytesIO(data), expected_sha256=oid, size=len(data))
        assert backend.shard_listings == 1
        backend.shard_listings = 0
        assert r.find_stored(oid, len(data), sync=False) is not None  # known: checked after a sync
        assert backend.shard_listings == 1
        backend.shard_listings = 0
        r.add_stream(io.BytesIO(data))
        assert backend.shard_listings == 2


def test_failed_xorb_publish_leaves_no_shard_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder writes the shard under a temp name while the xorb publishes: when the
    # publish fails, neither the shard nor its temp may remain, and a retry stores the file.
    repo_dir = tmp_path / "repo"
    data = random_bytes(200_000, 3)
    with Repository.init(str(repo_dir)) as r:
        monkeypatch.setenv("XETSTORE_FAULTPOINT", "clean.before_xorb:raise")
        with pytest.raises(OSError, match="clean.before_xorb"):
            r.add_bytes(data)
        assert list((repo_dir / "shards").iterdir()) == []
        assert list(repo_dir.rglob(".tmp-*")) == []
        monkeypatch.delenv("XETSTORE_FAULTPOINT")
        assert r.read_bytes(r.add_bytes(data).file_hash) == data
