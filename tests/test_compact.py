"""compact: a second, smaller layout of each xorb; reads switch to it, gc removes the first.

Real folder repositories throughout; objects are damaged, deleted and aged on disk
the way a user's disk or a lost upload would.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from xetstore import Repository
from xetstore.index import Index
from xetstore.keys import parse_xorb_key
from xetstore.maintenance.check import DAMAGE, INFO
from xetstore.shard import decode_shard

from .rel_support import objects, run_cli
from .samples import random_bytes, write_file

DAY = 24 * 3600


def table_text(rows: int, seed: int) -> bytes:
    """CSV-like text: compressible, and compressing better at higher zstd levels."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 10_000, size=(rows, 3))
    return "".join(f"{i},{a},{b / 7:.3f},item-{c % 97}\n" for i, (a, b, c) in enumerate(values)).encode()


def floats(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).normal(0, 0.02, n).astype(np.float32).tobytes()


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A repository of text (two versions), float weights and random bytes, one add each."""
    repo_dir = tmp_path / "repo"
    v1 = table_text(60_000, 1)
    contents = [v1, v1 + table_text(5_000, 2), floats(400_000, 3), random_bytes(700_000, 4)]
    files = {}
    with Repository.init(str(repo_dir)) as r:
        for n, data in enumerate(contents):
            files[r.add_file(write_file(tmp_path / f"f{n}", data)).file_hash] = data
    return repo_dir, files


def layouts(repo_dir: Path) -> dict[bytes, set[int]]:
    found: dict[bytes, set[int]] = {}
    for key in objects(repo_dir, "xorbs"):
        named = parse_xorb_key(key)
        assert named is not None, key
        found.setdefault(named[0], set()).add(named[1])
    return found


def age(repo_dir: Path, key: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(repo_dir / key, (t, t))


def assert_reads(r: Repository, files: dict[str, bytes]) -> None:
    for fh, data in files.items():
        assert r.read_bytes(fh) == data
        assert r.read_bytes(fh, len(data) // 3, len(data) // 3 + 70_000) == data[len(data) // 3 : len(data) // 3 + 70_000]


def test_compact_stores_less_and_every_file_reads_back(stored: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    repo_dir, files = stored
    with Repository.open(str(repo_dir)) as r:
        report = r.compact()
        assert report.xorbs >= 2 and report.stored_after < 0.97 * report.stored_before
        assert report.skipped >= 1  # the random bytes' xorb: nothing shrinks
        assert len(report.new_shards) == 1
        assert_reads(r, files)
        assert r.compact().xorbs == 0  # nothing left in its first layout that would shrink
    compacted = {h for h, ls in layouts(repo_dir).items() if ls == {0, 1}}
    assert len(compacted) == report.xorbs
    for key in objects(repo_dir, "xorbs"):  # reads no longer touch those first layouts: remove them
        named = parse_xorb_key(key)
        if named is not None and named[0] in compacted and named[1] == 0:
            (repo_dir / key).unlink()
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "other-client") as fresh:
        assert_reads(fresh, files)
        assert fresh.check(read_data=True).exit_code == 0


def test_gc_removes_the_first_layouts_only_after_the_grace_period(stored: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = stored
    with Repository.open(str(repo_dir)) as r:
        report = r.compact()
        check = r.check(read_data=True)
        superseded = {p.key for p in check.problems if p.severity == INFO}
        assert check.exit_code == 0 and len(superseded) == report.xorbs
        assert all("." not in key for key in superseded)
        young = r.gc()  # default grace: the compact's shard is minutes old
        assert young.deleted_xorbs == []
        for key in report.new_shards:
            age(repo_dir, key, DAY + 60)
        old = r.gc()
        assert set(old.deleted_xorbs) == superseded and old.freed_bytes == report.stored_before
        assert r.check(read_data=True).problems == []
        assert_reads(r, files)
        again = r.gc()  # converged: nothing left to delete or rewrite
        assert again.deleted_xorbs == again.deleted_shards == again.new_shards == []
        r.repair_index()
        assert_reads(r, files)
    assert all(ls in ({1}, {0}) for ls in layouts(repo_dir).values())
    # The adds' shards were rewritten without the tables of the layouts gc removed:
    # every xorb is described once, in the layout that is stored.
    tables = [(x.footer.xorb_hash, x.footer.layout) for k in objects(repo_dir, "shards")
              for x in decode_shard((repo_dir / k).read_bytes(), k).xorbs]  # fmt: skip
    assert sorted(tables) == sorted((h, max(ls)) for h, ls in layouts(repo_dir).items())


def test_gc_keeps_the_first_layout_while_the_one_in_use_is_missing(stored: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, _files = stored
    with Repository.open(str(repo_dir)) as r:
        r.compact()
        lost = sorted(k for k in objects(repo_dir, "xorbs") if k.endswith(".1"))[0]
        (repo_dir / lost).unlink()
        r.gc(grace=0.0)
        assert (repo_dir / lost.removesuffix(".1")).exists()  # possibly the only copy: kept
        damage = [p for p in r.check().problems if p.severity == DAMAGE]
        assert [p.key for p in damage] == [lost] and "missing" in damage[0].reason


def test_a_replaced_compact_shard_keeps_the_layouts_that_stay(tmp_path: Path) -> None:
    """gc replaces the compact's shard when a xorb it describes goes; the layouts of
    the xorbs that stay must be described by the replacement, not dropped because
    the adds' shards describe their first layouts."""
    repo_dir = tmp_path / "repo"
    kept, gone = table_text(40_000, 5), table_text(40_000, 6)
    with Repository.init(str(repo_dir)) as r:
        a = r.add_file(write_file(tmp_path / "a", kept))
        b = r.add_file(write_file(tmp_path / "b", gone))
        assert len(r.compact().new_shards) == 1
        r.remove([b.file_hash])
        r.gc(grace=0.0)
        assert r.check(read_data=True).problems == []
        assert r.read_bytes(a.file_hash) == kept
        r.repair_index()
        assert r.read_bytes(a.file_hash) == kept
    assert list(layouts(repo_dir).values()) == [{1}]


def test_the_index_keeps_the_highest_layout_whatever_the_merge_order(
    stored: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    repo_dir, _files = stored
    with Repository.open(str(repo_dir)) as r:
        compact_key = r.compact().new_shards[0]
    shards = {k: decode_shard((repo_dir / k).read_bytes(), k) for k in objects(repo_dir, "shards")}
    compacted = {x.footer.xorb_hash for x in shards[compact_key].xorbs}
    for n, order in enumerate((sorted(shards), sorted(shards, key=lambda k: k != compact_key))):
        with Index.open(tmp_path / f"index-{n}") as index:
            for key in order:
                index.add_shard(key, shards[key])
            for h in compacted:
                entry = index.xorb(h)
                assert entry is not None and entry[0].layout == 1 and index.xorb_key(h).endswith(".1")


def test_compact_copies_delta_chunks_and_gc_keeps_their_bases(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    rng = np.random.default_rng(7)
    base = rng.normal(0, 0.02, 600_000).astype(np.float32)
    tuned = (base + rng.normal(0, 1e-5, base.size).astype(np.float32)).astype(np.float32)
    texts = table_text(30_000, 8)
    with Repository.init(str(repo_dir), delta=True) as r:
        v1 = r.add_file(write_file(tmp_path / "w1", base.tobytes()))
        v2 = r.add_files([write_file(tmp_path / "w2", tuned.tobytes()), write_file(tmp_path / "t", texts)],
                         earlier=v1.file_hash)[0]  # fmt: skip
        assert r.compact().xorbs >= 1
        r.remove([v1.file_hash])  # its xorb stays only as the base of v2's delta chunks
        r.gc(grace=0.0)
        assert r.read_bytes(v2.file_hash) == tuned.tobytes()
        assert r.check(read_data=True).problems == []
    shards = [decode_shard((repo_dir / k).read_bytes(), k) for k in objects(repo_dir, "shards")]
    deltas = {(x.footer.xorb_hash, x.footer.layout): x.deltas for s in shards for x in s.xorbs}
    assert any(deltas.values())  # the fine-tune was stored as delta chunks
    for (h, layout), marked in deltas.items():
        if layout == 1 and (h, 0) in deltas:
            assert marked == deltas[(h, 0)]  # gc finds bases through these flags


def test_repair_rewrites_a_compacted_xorb_whose_footer_is_damaged(stored: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = stored
    with Repository.open(str(repo_dir)) as r:
        r.compact()
        r.gc(grace=0.0)
        victim = repo_dir / sorted(k for k in objects(repo_dir, "xorbs") if k.endswith(".1"))[0]
        data = bytearray(victim.read_bytes())
        data[-30] ^= 0xFF  # inside the footer's chunk table: every chunk is still intact
        victim.write_bytes(bytes(data))
        assert r.check(read_data=True).exit_code == 3
        repaired = r.repair_xorbs(confirm=True)
        assert repaired.lost_files == [] and repaired.salvaged_xorbs
        assert r.check(read_data=True).problems == []
        assert_reads(r, files)


def test_compact_command(stored: tuple[Path, dict[str, bytes]]) -> None:
    repo_dir, files = stored
    done = run_cli("compact", "-r", str(repo_dir), "--level", "12", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["type"] == "summary" and summary["level"] == 12 and summary["xorbs"] >= 2
    assert summary["stored_after"] < summary["stored_before"]
    with Repository.open(str(repo_dir)) as r:
        assert_reads(r, files)


def frame_count(footer_ends: tuple[int, ...]) -> int:
    """Frames of a chunk table: records longer than a bare header start one."""
    return sum(1 for k, end in enumerate(footer_ends) if end - (footer_ends[k - 1] if k else 0) > 8)


def test_compact_joins_zstd_frames_up_to_the_frame_size(tmp_path: Path) -> None:
    data = table_text(250_000, 9)  # about 7 MB: seven 1 MiB frames in one xorb
    counts = {}
    for mib in (1, 2, 4):
        repo_dir = tmp_path / f"repo-{mib}"
        with Repository.init(str(repo_dir)) as r:
            fh = r.add_file(write_file(tmp_path / "t", data)).file_hash
            key = r.compact(frame_bytes=mib << 20).new_shards[0]
            assert r.read_bytes(fh) == data and r.read_bytes(fh, 3_000_000, 3_100_000) == data[3_000_000:3_100_000]
        (table,) = decode_shard((repo_dir / key).read_bytes(), key).xorbs
        counts[mib] = frame_count(table.footer.serialized_ends)
    first = {k: v for k, v in layouts(tmp_path / "repo-1").items()}
    assert len(first) == 1
    assert counts[1] >= 6 and counts[2] == -(-counts[1] // 2) and counts[4] == -(-counts[1] // 4)


def test_compact_starts_a_frame_where_a_large_file_s_term_starts(tmp_path: Path) -> None:
    """v2 reuses v1's chunks from its middle on: after compacting, the frame of v1's
    xorb that v2's term starts in begins at that chunk, so reading v2 decodes none of
    the chunks before it."""
    repo_dir = tmp_path / "repo"
    v1 = table_text(200_000, 10)
    v2 = table_text(10_000, 11) + v1[len(v1) // 2 :]
    with Repository.init(str(repo_dir)) as r:
        first = r.add_file(write_file(tmp_path / "v1", v1))
        second = r.add_file(write_file(tmp_path / "v2", v2))
        old = r._index.xorb(r.manifest(first.file_hash).terms[0].xorb_hash)
        key = r.compact().new_shards[0]
        reused = [t for t in r.manifest(second.file_hash).terms if t.xorb_hash == old[0].xorb_hash][0]
        assert r.read_bytes(second.file_hash) == v2 and r.read_bytes(first.file_hash) == v1
    assert reused.first > 0 and reused.first not in frame_starts(old[0].serialized_ends)
    tables = {x.footer.xorb_hash: x.footer for x in decode_shard((repo_dir / key).read_bytes(), key).xorbs}
    assert reused.first in frame_starts(tables[reused.xorb_hash].serialized_ends)


def frame_starts(ends: tuple[int, ...]) -> set[int]:
    return {k for k, end in enumerate(ends) if end - (ends[k - 1] if k else 0) > 8}


def test_compact_compresses_raw_chunks_that_shrink_as_a_whole(tmp_path: Path) -> None:
    """An add judges a frame by samples; runs of raw chunks repeating at a distance
    (as the same kernel built for several GPUs does in a library) shrink as a whole."""
    block = random_bytes(256 * 1024, 12)
    copies = []
    for n in range(16):  # a byte changed every 4 KiB: no chunk repeats, their bytes nearly do
        copy = bytearray(block)
        copy[n * 7 :: 4096] = bytes([n]) * len(copy[n * 7 :: 4096])
        copies.append(bytes(copy))
    data = b"".join(copies)  # every 16 KiB sample is random; the frames repeat themselves
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as r:
        added = r.add_file(write_file(tmp_path / "lib", data))
        assert added.stored_bytes > 0.5 * len(data)  # stored raw where no sample caught a repeat
        report = r.compact()
        assert report.xorbs == 1 and report.stored_after < 0.25 * len(data)
        assert r.read_bytes(added.file_hash) == data
        assert r.check(read_data=True).exit_code == 0


def test_a_frame_too_big_for_its_record_is_stored_raw(tmp_path: Path) -> None:
    """Compacting into 16 MiB frames: a frame of 16 MiB or more that barely compresses
    would need a payload size past the record's u24 field (docs/format.md §6.3); its
    chunks are stored raw instead, and everything reads back."""
    import numpy as np

    data = bytes(16 << 10) + np.random.default_rng(7).bytes(18 << 20)  # ~16 MiB frame compressing by 16 KiB
    with Repository.init(str(tmp_path / "repo"), cache_dir=tmp_path / "cache") as repo:
        file_hash = repo.add_bytes(data).file_hash
        repo.compact(frame_bytes=16 << 20)
    with Repository.init(str(tmp_path / "big-frames"), frame_bytes=16 << 20, cache_dir=tmp_path / "cache2") as repo:
        assert repo.add_bytes(data).file_hash == file_hash  # adds use the same rule
    for name in ("repo", "big-frames"):
        with Repository.open(str(tmp_path / name), cache_dir=tmp_path / f"fresh-{name}") as repo:
            assert repo.read_bytes(file_hash, 0, len(data)) == data
            assert repo.check(read_data=True).problems == []
