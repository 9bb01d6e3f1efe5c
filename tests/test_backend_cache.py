"""The local cache of fetched xorb ranges (xetstore/backends/cache.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xetstore.backends import with_local_cache
from xetstore.backends.cache import CachingBackend, cache_bytes_from_env
from xetstore.backends.memory import MemoryBackend
from xetstore.errors import ConfigError

from .backend_wrappers import CountingBackend

XORB = "xorbs/" + "ab" * 32
DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def counting() -> CountingBackend:
    inner = MemoryBackend()
    inner.put(XORB, DATA)
    inner.put("config", b"config v1")
    inner.put("shards/s", b"shard bytes")
    return CountingBackend(inner)


def entry_files(directory: Path) -> list[Path]:
    return sorted(p for p in (directory / "xorbs").rglob("*") if p.is_file())


def test_repeated_ranges_come_from_disk(counting: CountingBackend, tmp_path: Path) -> None:
    cache = CachingBackend(counting, tmp_path / "c", max_bytes=1 << 20)
    assert cache.get(XORB, 100, 5000) == DATA[100:5000]
    assert cache.get(XORB, 100, 5000) == DATA[100:5000]
    assert cache.get(XORB, 200, 300) == DATA[200:300]  # inside a cached range
    assert len(counting.gets) == 1
    assert (cache.hits, cache.misses) == (2, 1)
    assert cache.get(XORB, 4000, 6000) == DATA[4000:6000]  # overlaps, not inside: fetched
    assert len(counting.gets) == 2


def test_cache_survives_the_process(counting: CountingBackend, tmp_path: Path) -> None:
    CachingBackend(counting, tmp_path / "c", max_bytes=1 << 20).get(XORB, 0, 1000)
    again = CachingBackend(counting, tmp_path / "c", max_bytes=1 << 20)
    assert again.get(XORB, 10, 20) == DATA[10:20]
    assert len(counting.gets) == 1


def test_only_xorb_ranges_are_cached(counting: CountingBackend, tmp_path: Path) -> None:
    cache = CachingBackend(counting, tmp_path / "c", max_bytes=1 << 20)
    for _ in range(2):
        assert cache.get("config", 0, 6) == b"config"
        assert cache.get("shards/s", 0, 5) == b"shard"
        assert cache.get(XORB) == DATA  # no explicit end: not cached
        assert cache.get(XORB, 10_000, 10_300) == DATA[10_000:]  # past the end: not cached
    assert len(counting.gets) == 8
    assert entry_files(tmp_path / "c") == []


def test_least_recently_used_ranges_are_evicted(counting: CountingBackend, tmp_path: Path) -> None:
    cache = CachingBackend(counting, tmp_path / "c", max_bytes=2500)
    cache.get(XORB, 0, 1000)
    cache.get(XORB, 1000, 2000)
    cache.get(XORB, 0, 1000)  # now the most recent
    cache.get(XORB, 2000, 3000)  # over the cap: [1000, 2000) goes
    assert [p.name for p in entry_files(tmp_path / "c")] == ["0-1000", "2000-3000"]
    counting.reset()
    cache.get(XORB, 0, 1000)
    cache.get(XORB, 2000, 3000)
    assert counting.gets == []
    cache.get(XORB, 1000, 2000)
    assert len(counting.gets) == 1
    assert sum(p.stat().st_size for p in entry_files(tmp_path / "c")) <= 2500 + 2 * 4  # two entries with a crc32 each


def test_damaged_entry_is_dropped_and_fetched_again(counting: CountingBackend, tmp_path: Path) -> None:
    cache = CachingBackend(counting, tmp_path / "c", max_bytes=1 << 20)
    cache.get(XORB, 0, 4096)
    (entry,) = entry_files(tmp_path / "c")
    raw = bytearray(entry.read_bytes())
    raw[100] ^= 0xFF
    entry.write_bytes(raw)
    assert cache.get(XORB, 0, 4096) == DATA[:4096]
    assert len(counting.gets) == 2
    assert cache.get(XORB, 0, 4096) == DATA[:4096]  # the refetched copy is good
    assert len(counting.gets) == 2
    assert counting.inner.get(XORB) == DATA  # the backend was never written to
    assert counting.puts == []


def test_truncated_and_missing_entries(counting: CountingBackend, tmp_path: Path) -> None:
    cache = CachingBackend(counting, tmp_path / "c", max_bytes=1 << 20)
    cache.get(XORB, 0, 4096)
    cache.get(XORB, 5000, 6000)
    first, second = entry_files(tmp_path / "c")
    first.write_bytes(first.read_bytes()[:50])
    second.unlink()  # as if another process evicted it
    assert cache.get(XORB, 0, 4096) == DATA[:4096]
    assert cache.get(XORB, 5000, 6000) == DATA[5000:6000]
    assert len(counting.gets) == 4


def test_delete_forgets_cached_ranges(counting: CountingBackend, tmp_path: Path) -> None:
    cache = CachingBackend(counting, tmp_path / "c", max_bytes=1 << 20)
    cache.get(XORB, 0, 100)
    cache.delete(XORB)
    assert entry_files(tmp_path / "c") == []


def test_zero_cap_disables_the_cache(counting: CountingBackend, tmp_path: Path) -> None:
    cache = CachingBackend(counting, tmp_path / "c", max_bytes=0)
    cache.get(XORB, 0, 100)
    cache.get(XORB, 0, 100)
    assert len(counting.gets) == 2


@pytest.mark.parametrize(
    "text, size", [("0", 0), ("12345", 12345), ("500M", 500 << 20), ("4G", 4 << 30), ("2GiB", 2 << 30)]
)
def test_cache_size_from_environment(monkeypatch: pytest.MonkeyPatch, text: str, size: int) -> None:
    monkeypatch.setenv("XETSTORE_CACHE_BYTES", text)
    assert cache_bytes_from_env() == size


def test_bad_cache_size_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XETSTORE_CACHE_BYTES", "lots")
    with pytest.raises(ConfigError, match="XETSTORE_CACHE_BYTES"):
        cache_bytes_from_env()


def test_only_remote_backends_get_a_cache(tmp_path: Path) -> None:
    local = MemoryBackend()
    assert with_local_cache(local, tmp_path) is local
    remote = CountingBackend(MemoryBackend())
    remote.remote = True
    assert isinstance(with_local_cache(remote, tmp_path), CachingBackend)


def test_a_range_may_come_from_several_entries(counting: CountingBackend, tmp_path: Path) -> None:
    """Another file's reads of the same xorb cut it at other places."""
    cache = CachingBackend(counting, tmp_path / "c", max_bytes=1 << 20)
    for start, end in [(0, 3000), (2000, 6000), (6000, 9000)]:
        cache.get(XORB, start, end)
    counting.reset()
    assert cache.get(XORB, 1000, 8500) == DATA[1000:8500]
    assert cache.get(XORB, 2500, 6000) == DATA[2500:6000]
    assert counting.gets == []
    assert cache.get(XORB, 8000, 9500) == DATA[8000:9500]  # a gap at the end: fetched
    assert len(counting.gets) == 1
