"""Delta chunks: near-copies stored as XOR against an earlier version, read, checked, kept by gc."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xetstore import Repository
from xetstore.delta_bases import bases_needed
from xetstore.errors import IntegrityError, Refused
from xetstore.hashing import from_xet_hex, xet_hex
from xetstore.maintenance.inventory import take_inventory

from .rel_support import flip_byte, objects, run_cli
from .s3_servers import S3Server, aws_env, bucket, moto_server, rgw_server, s3_server  # noqa: F401
from .samples import random_bytes, write_file
from .test_crash import ADD_FAULTS, KILLED, _assert_clean, _gc_removes_exactly_orphans


def near_copy(data: bytes, seed: int, flips: int, insert: int = 0) -> bytes:
    """`data` with `flips` random bytes changed and `insert` random bytes inserted."""
    rnd = random.Random(seed)
    out = bytearray(data)
    for _ in range(flips):
        i = rnd.randrange(len(out))
        out[i] ^= rnd.randrange(1, 256)
    if insert:
        at = rnd.randrange(len(out))
        out[at:at] = rnd.randbytes(insert)
    return bytes(out)


def weights(n_floats: int, seed: int, nudge: float = 0.0) -> bytes:
    """float32 weights; with `nudge`, each moved by about nudge of its magnitude."""
    values = np.random.default_rng(seed).standard_normal(n_floats, dtype=np.float32) * np.float32(0.02)
    if nudge:
        noise = np.random.default_rng(seed + 1).standard_normal(n_floats, dtype=np.float32)
        values = values + noise * np.float32(nudge) * np.abs(values)
    return values.astype("<f4").tobytes()


def stored(repo_dir: Path) -> int:
    return sum(p.stat().st_size for p in (repo_dir / "xorbs").iterdir() if not p.name.startswith("."))


def delta_xorbs(repo_dir: Path) -> dict[bytes, frozenset[int]]:
    """Xorb hash -> indices of its delta chunks, as the shards record them."""
    inv = take_inventory(Repository.open(str(repo_dir))._backend)
    return {h: x.deltas for h, x in inv.xorb_infos().items() if x.deltas}


def _two_versions(tmp: Path, v1: bytes, v2: bytes, delta: bool = True) -> tuple[Repository, str, str]:
    r = Repository.init(str(tmp / "repo"), cache_dir=tmp / "cache", delta=delta)
    a = r.add_file(write_file(tmp / "v1", v1))
    b = r.add_file(write_file(tmp / "v2", v2), earlier=a.file_hash)
    return r, a.file_hash, b.file_hash


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    size=st.integers(1, 400_000),
    flips=st.integers(0, 50),
    insert=st.sampled_from([0, 0, 1, 5000]),
    floats=st.booleans(),
    remove_base=st.booleans(),
)
def test_near_copies_round_trip(seed: int, size: int, flips: int, insert: int, floats: bool, remove_base: bool) -> None:
    v1 = weights(size // 4 + 1, seed) if floats else random_bytes(size, seed)
    v2 = near_copy(v1, seed, flips, insert)
    with tempfile.TemporaryDirectory() as d:
        r, a, b = _two_versions(Path(d), v1, v2)
        with r:
            if remove_base and a != b:  # gc must keep the base chunks v2's deltas read
                r.remove([a])
                r.gc(grace=0.0)
            assert r.read_bytes(b) == v2
            lo = random.Random(seed).randrange(len(v2))
            with r.open_file(b) as f:
                f.seek(lo)
                assert f.read(70_000) == v2[lo : lo + 70_000]
            assert r.check(read_data=True).problems == []


def test_near_copy_is_stored_as_deltas_and_smaller(tmp_path: Path) -> None:
    v1 = weights(1_000_000, 3)
    v2 = weights(1_000_000, 3, nudge=1e-3)  # a full fine-tune: every weight moved
    sizes = {}
    for delta in (False, True):
        r, _, b = _two_versions(tmp_path / str(delta), v1, v2, delta)
        with r:
            assert r.read_bytes(b) == v2
        sizes[delta] = stored(tmp_path / str(delta) / "repo")
    assert delta_xorbs(tmp_path / "True" / "repo")
    assert not delta_xorbs(tmp_path / "False" / "repo")
    v1_stored = stored_alone(tmp_path / "v1only", v1)
    # v2's share: with deltas it costs well under what it costs alone
    assert sizes[True] - v1_stored < 0.75 * (sizes[False] - v1_stored)


def stored_alone(tmp: Path, data: bytes) -> int:
    with Repository.init(str(tmp / "repo"), cache_dir=tmp / "cache") as r:
        r.add_file(write_file(tmp / "f", data))
    return stored(tmp / "repo")


def test_earlier_in_a_repository_without_delta_changes_nothing(tmp_path: Path) -> None:
    v1 = random_bytes(500_000, 1)
    v2 = near_copy(v1, 2, 20)
    _two_versions(tmp_path / "with", v1, v2, delta=False)[0].close()
    with Repository.init(str(tmp_path / "plain"), cache_dir=tmp_path / "c") as r:
        r.add_file(write_file(tmp_path / "a", v1))
        r.add_file(write_file(tmp_path / "b", v2))
    assert stored(tmp_path / "with" / "repo") == stored(tmp_path / "plain")
    assert not delta_xorbs(tmp_path / "with" / "repo")


def test_xet_repository_keeps_delta_off_unless_asked(tmp_path: Path) -> None:
    with Repository.init(str(tmp_path / "x"), chunker="xet") as r:
        assert r.config.params.delta is False
    assert b"delta" not in (tmp_path / "x" / "config").read_bytes()
    with Repository.init(str(tmp_path / "y"), chunker="xet", delta=True):
        pass
    with Repository.open(str(tmp_path / "y")) as r:
        assert r.config.params.delta is True


def test_bases_in_other_xorbs(tmp_path: Path) -> None:
    """v1's chunks live in two xorbs (two sessions); v2's deltas read bases from both."""
    head, tail = random_bytes(400_000, 5), random_bytes(400_000, 6)
    with Repository.init(str(tmp_path / "repo"), cache_dir=tmp_path / "cache", delta=True) as r:
        r.add_file(write_file(tmp_path / "head", head))
        a = r.add_file(write_file(tmp_path / "v1", head + tail))
        v2 = near_copy(head + tail, 7, 30)
        b = r.add_file(write_file(tmp_path / "v2", v2), earlier=a.file_hash)
        inv = take_inventory(r._backend)
        infos = inv.xorb_infos()
        needed = bases_needed(r._backend, infos, {h: set(x.deltas) for h, x in infos.items()})
        assert len(needed) == 2
        assert r.read_bytes(b.file_hash) == v2


def test_gc_keeps_bases_then_frees_them(tmp_path: Path) -> None:
    v1 = random_bytes(600_000, 8)
    v2 = near_copy(v1, 9, 25)
    r, a, b = _two_versions(tmp_path, v1, v2)
    with r:
        before = objects(tmp_path / "repo", "xorbs")
        r.remove([a])
        report = r.gc(grace=0.0, repack_below=1.0)  # would repack v1's xorb, were it not a base
        assert report.deleted_xorbs == [] and report.repacked_xorbs == []
        assert objects(tmp_path / "repo", "xorbs") == before
        assert r.read_bytes(b) == v2
        r.remove([b])
        r.gc(grace=0.0)
        assert objects(tmp_path / "repo", "xorbs") == set()


def test_corrupted_base_is_damage_of_every_file_that_depends_on_it(tmp_path: Path) -> None:
    v1 = weights(75_000, 10)  # compressible: one frame, so one flipped byte spoils every base chunk
    v2, v3 = near_copy(v1, 11, 10), near_copy(v1, 12, 10)
    r, a, b = _two_versions(tmp_path, v1, v2)
    with r:
        c = r.add_file(write_file(tmp_path / "v3", v3), earlier=a).file_hash
        (base_xorb,) = {t.xorb_hash for t in r.manifest(a).terms}
        deltas = delta_xorbs(tmp_path / "repo")
        assert base_xorb not in deltas and len(deltas) == 2
        flip_byte(tmp_path / "repo" / "xorbs" / xet_hex(base_xorb), 100)
        report = r.check(read_data=True)
        assert report.damaged_files() == {a, b, c}
        assert {p.key for p in report.damaged} == {f"xorbs/{xet_hex(h)}" for h in {base_xorb, *deltas}}
    # A read takes the grouped base first; its wrong result sends it the verified
    # way, which names the damaged base rather than the delta chunk.
    with (
        Repository.open(str(tmp_path / "repo"), cache_dir=tmp_path / "cache") as fresh,
        pytest.raises(IntegrityError, match=xet_hex(base_xorb)),
    ):
        fresh.read_bytes(b)


def test_delta_reads_take_base_lanes_from_grouped_frames(tmp_path: Path) -> None:
    """Byte-grouped residuals are XORed with lanes cut from the base's grouped frames
    (no regrouping, no base hashes); every delta chunk of these near-copies is read
    that way, and the files come back whole, streamed and by range."""
    from xetstore import grouped_bases

    v1 = weights(400_000, 31)
    v2 = weights(400_000, 31, nudge=1e-3)  # a full fine-tune: every chunk a delta
    r, a, b = _two_versions(tmp_path, v1, v2)
    r.close()
    served: list[bool] = []
    original = grouped_bases.GroupedBases.grouped_window

    def spy(self: grouped_bases.GroupedBases, *args: object) -> bytes | None:
        window = original(self, *args)  # type: ignore[arg-type]
        served.append(window is not None)
        return window

    grouped_bases.GroupedBases.grouped_window = spy  # type: ignore[method-assign]
    try:
        with Repository.open(str(tmp_path / "repo"), cache_dir=tmp_path / "cache") as fresh:
            assert b"".join(fresh.iter_file(b)) == v2
            assert fresh.read_bytes(b, 70_001, 900_003) == v2[70_001:900_003]
    finally:
        grouped_bases.GroupedBases.grouped_window = original  # type: ignore[method-assign]
    assert served and all(served)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=4),
    grouped=st.lists(st.booleans(), min_size=4, max_size=4),
    lo=st.integers(0, 1200),
    length=st.integers(1, 1200),
    seed=st.integers(0, 2**16),
)
def test_window_lanes_are_the_windows_byte_grouping(
    sizes: list[int], grouped: list[bool], lo: int, length: int, seed: int
) -> None:
    """Lanes cut from consecutive frames, grouped or plain, equal bg4_split of the window."""
    from xetstore.compression import bg4_split
    from xetstore.grouped_bases import _window_lanes

    rnd = random.Random(seed)
    frames = [rnd.randbytes(n) for n in sizes]
    whole = b"".join(frames)
    lo = lo % len(whole)
    hi = min(len(whole), lo + length)
    pieces, start = [], 0
    for frame, as_lanes in zip(frames, grouped):
        a, z = max(lo, start), min(hi, start + len(frame))
        if a < z:
            data = bg4_split(frame) if as_lanes else frame
            pieces.append(((as_lanes, data, len(frame)), a - start, z - a))
        start += len(frame)
    assert _window_lanes(pieces) == bg4_split(whole[lo:hi])


def test_corrupted_delta_is_damage_of_its_file_only(tmp_path: Path) -> None:
    v1 = random_bytes(300_000, 13)
    v2 = near_copy(v1, 14, 10)
    r, a, b = _two_versions(tmp_path, v1, v2)
    with r:
        (delta_xorb,) = delta_xorbs(tmp_path / "repo")
        flip_byte(tmp_path / "repo" / "xorbs" / xet_hex(delta_xorb), 8 + 77 + 20)  # in the first residual
        report = r.check(read_data=True)
        assert report.damaged_files() == {b}


@pytest.mark.parametrize("fault", ADD_FAULTS)
def test_sigkill_while_publishing_deltas(tmp_path: Path, fault: str) -> None:
    repo_dir = tmp_path / "repo"
    v1 = random_bytes(700_000, 15)
    with Repository.init(str(repo_dir), delta=True) as r:
        a = r.add_file(write_file(tmp_path / "v1", v1)).file_hash
    v2 = write_file(tmp_path / "in" / "v2", near_copy(v1, 16, 40))
    proc = run_cli("add", "-r", str(repo_dir), "--json", "--earlier", a, str(v2), fault=fault)
    assert proc.returncode == KILLED, proc.stderr
    assert proc.stdout == ""
    with Repository.open(str(repo_dir)) as r:
        _assert_clean(r, {a: v1})
        b = r.add_file(v2, earlier=a).file_hash  # the interrupted add succeeds when run again
        files = {a: v1, b: v2.read_bytes()}
        assert delta_xorbs(repo_dir)
        _gc_removes_exactly_orphans(r, repo_dir, files)


def test_repair_finds_intact_deltas_intact(tmp_path: Path) -> None:
    v1 = random_bytes(300_000, 17)
    r, _, b = _two_versions(tmp_path, v1, near_copy(v1, 18, 10))
    with r:
        report = r.repair_xorbs(confirm=True)
        assert report.damaged == {} and report.lost_files == []
        assert r.check(read_data=True).problems == []


def test_repair_salvages_delta_chunks_of_a_damaged_xorb(tmp_path: Path) -> None:
    """A flipped byte in one chunk of a xorb that also holds deltas: the lost file goes,
    the delta chunks other files use are kept (decoded, repacked plain)."""
    v1 = random_bytes(300_000, 19)
    r, a, _ = _two_versions(tmp_path, v1, near_copy(v1, 20, 10))
    with r:
        other = random_bytes(200_000, 21)
        v2 = near_copy(v1, 22, 10)  # its deltas go into the same xorb as `other`
        added = r.add_files([write_file(tmp_path / "o", other), write_file(tmp_path / "v2b", v2)], earlier=a)
        (mixed,) = {t.xorb_hash for t in r.manifest(added[0].file_hash).terms}
        assert mixed in delta_xorbs(tmp_path / "repo")
        flip_byte(tmp_path / "repo" / "xorbs" / xet_hex(mixed), 1000)  # inside `other`'s first raw chunk
        report = r.repair_xorbs(confirm=True)
        assert [m.file_hash for m in report.lost_files] == [from_xet_hex(added[0].file_hash)]
        assert r.read_bytes(added[1].file_hash) == v2
        assert r.check(read_data=True).exit_code == 0


def test_gc_keeps_the_base_of_a_young_unreferenced_delta_xorb(tmp_path: Path) -> None:
    """A removed v2 whose xorb is still young (an add may dedup against it) keeps
    its base, even when v1, the base's only file, is removed and old."""
    v1 = random_bytes(300_000, 23)
    v2 = near_copy(v1, 24, 10)
    r, a, b = _two_versions(tmp_path, v1, v2)
    with r:
        (base_xorb,) = {t.xorb_hash for t in r.manifest(a).terms}
        base_path = tmp_path / "repo" / "xorbs" / xet_hex(base_xorb)
        os.utime(base_path, (1, 1))  # old: past any grace period
        r.remove([a, b])
        r.gc(grace=3600.0)
        assert base_path.exists()
        again = r.add_file(write_file(tmp_path / "v2again", v2))  # dedups against the young delta xorb
        assert again.new_bytes == 0
        assert r.read_bytes(again.file_hash) == v2


@pytest.mark.s3
def test_deltas_on_s3_read_by_another_client(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:  # noqa: F811
    """One client stores a near-copy as deltas; another reads it back through its range
    cache (fetching bases too), checks it, and gc there keeps the base."""
    url = s3_server.url(bucket)
    v1 = random_bytes(500_000, 25)
    v2 = near_copy(v1, 26, 20)
    with Repository.init(url, cache_dir=tmp_path / "a", delta=True) as r:
        a = r.add_file(write_file(tmp_path / "v1", v1)).file_hash
        b = r.add_file(write_file(tmp_path / "v2", v2), earlier=a).file_hash
        assert any(x.deltas for x in take_inventory(r._backend).xorb_infos().values())
    with Repository.open(url, cache_dir=tmp_path / "b") as r:
        with r.open_file(b) as f:
            f.seek(123_456)
            assert f.read(100_000) == v2[123_456:223_456]
        assert r.read_bytes(b) == v2
        assert r.check(read_data=True).problems == []
        r.remove([a])
        r.gc(grace=0.0, dry_run=False)
    with Repository.open(url, cache_dir=tmp_path / "c") as r:
        assert r.read_bytes(b) == v2


def test_repair_refuses_to_set_aside_a_damaged_base(tmp_path: Path) -> None:
    """v2's deltas read intact chunks of a xorb whose first chunk is damaged: moving
    those chunks would break v2, so repair changes nothing and says why."""
    v1 = random_bytes(400_000, 27)  # incompressible: one record per chunk
    half = len(v1) // 2
    r, a, b = _two_versions(tmp_path, v1, v1[:half] + near_copy(v1[half:], 28, 10))
    with r:
        (base_xorb,) = {t.xorb_hash for t in r.manifest(a).terms}
        path = tmp_path / "repo" / "xorbs" / xet_hex(base_xorb)
        flip_byte(path, 100)
        damaged = path.read_bytes()
        with pytest.raises(Refused, match="delta chunks in other xorbs read their bases"):
            r.repair_xorbs(confirm=True)
        assert path.read_bytes() == damaged and {f.file_hash for f in r.files()} == {a, b}


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200), run=st.binary(max_size=300))
def test_garbage_delta_records_raise_only_our_errors(payload: bytes, run: bytes) -> None:
    """A forged scheme-6 record, whatever its payload and its base's bytes, is a
    FormatError/IntegrityError or decodes to bytes that must still match the chunk hash."""
    from xetstore.errors import IntegrityError
    from xetstore.xorb import ChunkHeader, XorbFooter, read_chunks

    size = 97
    record = ChunkHeader(len(payload), 6, size).encode() + payload
    footer = XorbFooter(bytes(32), (bytes(32),), (len(record),), (size,))
    try:
        read_chunks(record, footer, 0, 1, "forged", lambda base, what: run)
    except IntegrityError:
        return
    raise AssertionError("a forged delta chunk decoded to the zero hash")


def test_check_counts_a_base_as_referenced(tmp_path: Path) -> None:
    """v1 removed, v2's deltas still read its xorb: check must not call it an orphan
    (gc keeps it), and it becomes one once v2 goes too."""
    v1 = weights(75_000, 29)
    r, a, b = _two_versions(tmp_path, v1, near_copy(v1, 30, 10))
    with r:
        (base_xorb,) = {t.xorb_hash for t in r.manifest(a).terms}
        r.remove([a])
        assert r.check().problems == []
        r.remove([b])
        orphans = {p.key for p in r.check().problems if p.severity == "info"}
        assert f"xorbs/{xet_hex(base_xorb)}" in orphans


@given(data=st.binary(max_size=3000), base=st.binary(max_size=3000))
def test_xor_residual_is_bytewise_xor(data: bytes, base: bytes) -> None:
    """Delta residuals XOR byte by byte, base cut or zero-padded to the data's length."""
    from xetstore.compression import xor_residual

    padded = base[: len(data)].ljust(len(data), b"\0")
    expected = bytes(x ^ y for x, y in zip(data, padded))
    assert xor_residual(data, base) == expected
    assert xor_residual(memoryview(data), memoryview(base)) == expected
    assert xor_residual(expected, base) == data


def test_near_copy_that_does_not_pay_is_stored_alone() -> None:
    """A chunk sent to encode_near_copy whose delta would not store less is kept
    as the chunk compressed alone, and reads back without its base; the
    prospect keeps unrelated bases and clear losses in the frame."""
    from xetstore.hashing import chunk_hash
    from xetstore.near_copies import delta_prospect
    from xetstore.packing import XorbBuilder, encode_near_copy
    from xetstore.xorb import DeltaBase, read_chunks

    chunk = b"".join(b"row %d,%d\n" % (i, i * 7) for i in range(6000))
    unrelated = random_bytes(len(chunk), seed=3)
    near = near_copy(chunk, seed=4, flips=30)
    base = DeltaBase(bytes(32), 0, 1, 0, bytes(32))
    _records, _sizes, delta = encode_near_copy(chunk, base, unrelated, 3, 0.3)
    assert not delta
    assert delta_prospect(chunk, unrelated, 0.9) == "plain"  # few zero bytes
    assert delta_prospect(near, chunk, 0.9) == "workers"  # a near-copy of weights-like content
    assert delta_prospect(near, chunk, 0.3) == "here"  # of compressible content: decided where frames are built
    builder = XorbBuilder(3)
    builder.add_near_copy(chunk_hash(chunk), chunk, base, unrelated, 0.3)
    sealed = builder.seal()
    assert sealed.deltas == frozenset()
    records = sealed.kept_data()[: sealed.footer.serialized_ends[-1]]
    assert read_chunks(records, sealed.footer, 0, 1, "alone") == [chunk]
    assert encode_near_copy(near, base, chunk, 3, 0.3)[2]  # a near-copy of it pays
