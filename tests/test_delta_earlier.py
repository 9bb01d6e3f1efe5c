"""Finding the earlier version on its own: by snapshot path for tagged adds, by size otherwise."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from xetstore import Repository
from xetstore.delta_bases import SameSize
from xetstore.hashing import xet_hex

from .samples import random_bytes, write_file
from .test_delta import weights

N = 400_000  # float32 weights: 1.6 MB, about 25 chunks


def tagged_versions(tmp: Path, versions: list[bytes], delta: bool) -> list[int]:
    """Add each version as `model/w.bin` under its own tag; the bytes each add stored."""
    grown = []
    with Repository.init(str(tmp / "repo"), cache_dir=tmp / "cache", delta=delta) as r:
        for i, data in enumerate(versions):
            shutil.rmtree(tmp / "model", ignore_errors=True)
            write_file(tmp / "model" / "w.bin", data)
            made = r.add_snapshot([tmp / "model"], f"v{i}")
            grown.append(made.added[0].stored_bytes)
            assert r.read_bytes(made.added[0].file_hash) == data
    return grown


def test_tagged_add_uses_the_file_at_the_same_path(tmp_path: Path) -> None:
    # a grown vocabulary: the size changes, so only the path can find the earlier version
    v0 = weights(N, 1)
    v1 = weights(N, 1, nudge=1e-3) + weights(20_000, 2)
    plain = tagged_versions(tmp_path / "plain", [v0, v1], delta=False)
    delta = tagged_versions(tmp_path / "delta", [v0, v1], delta=True)
    assert delta[0] == plain[0]
    assert delta[1] < 0.75 * plain[1]


def test_a_chain_of_tagged_fine_tunes_reads_bases_from_older_versions(tmp_path: Path) -> None:
    # v2's chunks at v1's positions are deltas (never bases): v0's plain ones stand in
    versions = [weights(N, 1)] + [weights(N, 1, nudge=1e-3 * k) + weights(20_000, 2) for k in (1, 2)]
    plain = tagged_versions(tmp_path / "plain", versions, delta=False)
    delta = tagged_versions(tmp_path / "delta", versions, delta=True)
    assert delta[2] < 0.75 * plain[2]


def plain_adds(tmp: Path, versions: list[bytes], delta: bool) -> list[int]:
    with Repository.init(str(tmp / "repo"), cache_dir=tmp / "cache", delta=delta) as r:
        added = [r.add_file(write_file(tmp / f"f{i}", data)) for i, data in enumerate(versions)]
        for a, data in zip(added, versions):
            assert r.read_bytes(a.file_hash) == data
    return [a.stored_bytes for a in added]


def test_plain_add_uses_a_stored_file_of_the_same_size(tmp_path: Path) -> None:
    other = random_bytes(N * 2, 5)  # another size: not a candidate
    versions = [weights(N, 1), other, weights(N, 1, nudge=1e-3)]
    plain = plain_adds(tmp_path / "plain", versions, delta=False)
    delta = plain_adds(tmp_path / "delta", versions, delta=True)
    assert delta[:2] == plain[:2]
    assert delta[2] < 0.75 * plain[2]


def test_same_size_finds_only_that_size(tmp_path: Path) -> None:
    with Repository.init(str(tmp_path / "repo"), cache_dir=tmp_path / "cache", delta=True) as r:
        a = r.add_file(write_file(tmp_path / "a", random_bytes(100_000, 1)))
        r.add_file(write_file(tmp_path / "b", random_bytes(100_001, 2)))
        assert [m.size for m in SameSize(r._index)(100_000)] == [100_000]
        assert r.manifest(a.file_hash) == SameSize(r._index)(100_000)[0]
        assert SameSize(r._index)(99_999) == []


def test_same_size_puts_the_most_recently_added_first(tmp_path: Path) -> None:
    with Repository.init(str(tmp_path / "repo"), cache_dir=tmp_path / "cache", delta=True) as r:
        old = r.add_file(write_file(tmp_path / "a", random_bytes(100_000, 1)))
        time.sleep(1.1)  # the index records when it merged a shard in whole seconds
        new = r.add_file(write_file(tmp_path / "b", random_bytes(100_000, 2)))
        assert [xet_hex(m.file_hash) for m in SameSize(r._index)(100_000)] == [new.file_hash, old.file_hash]
        assert [xet_hex(m.file_hash) for m in SameSize(r._index, limit=1)(100_000)] == [new.file_hash]
