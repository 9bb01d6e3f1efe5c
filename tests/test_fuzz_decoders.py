"""Decoders of stored bytes given garbage: only xetstore's errors, bounded memory, no bombs.

Xorb footers and records, shards, the config and deletion records all come
from storage that may be damaged or hostile. Every size, count and offset in
them is a claim to be bounded before anything is allocated.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tracemalloc

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xetstore import IntegrityError, Repository
from xetstore import packing as packing_module
from xetstore.compression import Scheme, decompress_frame
from xetstore.config import RepositoryConfig, decode_config, encode_config
from xetstore.errors import ConfigError, XetStoreError
from xetstore.maintenance.deletes import DeleteRecord, decode_delete_record, encode_delete_record
from xetstore.packing import XorbBuilder
from xetstore.params import RepositoryParams
from xetstore.shard import Manifest, Shard, ShardXorb, Term, decode_shard, encode_manifest, encode_shard
from xetstore.xorb import XorbFooter, decode_xorb, read_chunks, verify_xorb

from .samples import random_bytes

# FUZZ_EXAMPLES=5000 for a longer hunt than CI affords.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _xorb(n_chunks: int = 12, compress: bool = True) -> bytes:
    builder = XorbBuilder(3, 64 * 1024, compress=compress)
    from xetstore.hashing import chunk_hash

    for i in range(n_chunks):
        chunk = (b"weights %d " % i) * (900 + 37 * i) if i % 2 else random_bytes(9000 + i, i)
        builder.add(chunk_hash(chunk), chunk)
    return builder.seal().data


XORB = _xorb()
XORB_RAW = _xorb(compress=False)
FOOTER = decode_xorb(XORB, "fixture")


def _shard() -> bytes:
    t = Term(FOOTER.xorb_hash, 0, 4, FOOTER.unpacked_ends[3])
    m = Manifest(
        bytes(range(32)),
        bytes(32),
        (t, Term(FOOTER.xorb_hash, 5, 9, FOOTER.unpacked_ends[8] - FOOTER.unpacked_ends[4])),
    )
    return encode_shard(Shard((m,), (ShardXorb(FOOTER, len(XORB)),), 1_700_000_000))


SHARD = _shard()
CONFIG = encode_config(RepositoryConfig.new(RepositoryParams()))
RECORD = encode_delete_record(DeleteRecord(((bytes(32), ("shards/" + "a" * 64,)),), 5))


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with a few flips, overwrites, insertions, deletions or a truncation."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "u32"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "u32" and len(data) >= at + 4:
            data[at : at + 4] = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])).to_bytes(4, "little")
    return bytes(data)


def bounded(  # type: ignore[no-untyped-def]
    fn, data: bytes, limit: int = 8 << 20, allowed: tuple[type[XetStoreError], ...] = (IntegrityError,)
) -> None:
    """Run a decoder on `data`: it may fail only with the `allowed` errors, and may not
    allocate far more than it was given (a forged count must not reserve memory)."""
    tracemalloc.start()
    try:
        fn(data)
    except allowed:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < limit + 64 * len(data), f"peak {peak} bytes decoding {len(data)}"


@FUZZ
@given(st.one_of(st.binary(max_size=4096), mutated(XORB), mutated(XORB_RAW)))
def test_whole_xorb(data: bytes) -> None:
    bounded(lambda d: verify_xorb(d, "fuzzed xorb"), data)


@FUZZ
@given(st.one_of(st.binary(max_size=2048), mutated(XORB[FOOTER.serialized_ends[-1] :])))
def test_xorb_footer(data: bytes) -> None:
    bounded(lambda d: XorbFooter.decode(d, "fuzzed footer"), data)


@FUZZ
@given(mutated(XORB[: FOOTER.serialized_ends[-1]]), st.integers(0, FOOTER.num_chunks - 1))
def test_xorb_records_against_a_good_footer(records: bytes, first: int) -> None:
    """The chunk table is trusted (it came from a verified shard); the records are not."""
    end = min(FOOTER.num_chunks, first + 3)
    start, stop = FOOTER.byte_range(first, end)

    def read(d: bytes) -> None:
        chunks = read_chunks(d[start:stop], FOOTER, first, end, "fuzzed records")
        good = read_chunks(XORB[start:stop], FOOTER, first, end, "fixture")
        assert chunks == good  # decoded bytes are never wrong: they match their hashes

    bounded(read, records)


@FUZZ
@given(st.one_of(st.binary(max_size=4096), mutated(SHARD)))
def test_shard(data: bytes) -> None:
    def decode(d: bytes) -> None:
        shard = decode_shard(d, "fuzzed shard")
        again = decode_shard(encode_shard(shard), "re-encoded")  # what decodes is self-consistent
        assert again.xorbs == shard.xorbs and again.created == shard.created
        assert sorted(map(encode_manifest, again.manifests)) == sorted(map(encode_manifest, shard.manifests))

    bounded(decode, data)


@FUZZ
@given(st.one_of(st.binary(max_size=1024), mutated(CONFIG), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
).map(lambda doc: json.dumps(doc).encode())))  # fmt: skip
def test_config(data: bytes) -> None:
    # A newer version or bad parameters is a ConfigError: also a clear, typed error,
    # and the memory bound still holds when it is raised.
    bounded(lambda d: decode_config(d, "fuzzed config"), data, limit=1 << 20, allowed=(IntegrityError, ConfigError))


_RECORD_DOCS = st.dictionaries(
    st.sampled_from(["format", "version", "created", "files"]),
    st.one_of(
        st.integers(),
        st.text(max_size=20),
        st.lists(
            st.dictionaries(
                st.sampled_from(["file_hash", "shards"]),
                st.one_of(st.text(max_size=70), st.lists(st.text(max_size=80))),
            )
        ),
    ),
).map(lambda doc: json.dumps(doc).encode())


@FUZZ
@given(st.one_of(st.binary(max_size=1024), mutated(RECORD), _RECORD_DOCS))
def test_deletion_record(data: bytes) -> None:
    bounded(lambda d: decode_delete_record(d, "fuzzed record"), data, limit=1 << 20)


def test_deep_json_is_a_format_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for decode in (decode_config, decode_delete_record):
        with pytest.raises(IntegrityError):
            decode(deep, "deep")


BOMB = """
import resource, sys, zstandard
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from xetstore.compression import Scheme, decompress_frame
from xetstore.errors import DecompressionError
payload = sys.stdin.buffer.read()
try:
    decompress_frame(Scheme.ZSTD, payload, 65536, "bomb")
except DecompressionError as exc:
    print("refused:", exc)
"""


@pytest.mark.parametrize("declared", [True, False])
def test_decompression_bomb_is_refused_within_a_memory_limit(declared: bool) -> None:
    """2 GiB of zeros in a few KiB, offered as a 64 KiB chunk, under a 1 GiB address-space limit."""
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=declared)
    chunk = bytes(64 << 20)
    writer = cctx.chunker(chunk_size=1 << 20)
    parts = [p for _ in range(32) for p in writer.compress(chunk)] + list(writer.finish())
    bomb = b"".join(parts)
    assert len(bomb) < 1 << 20
    proc = subprocess.run([sys.executable, "-c", BOMB], input=bomb, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"refused:")


def test_bomb_in_a_stored_xorb_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A xorb whose one record decompresses to far more than the footer allows."""
    with Repository.init(str(tmp_path / "repo")) as r:
        res = r.add_bytes(b"z" * 100_000)
        (path,) = (tmp_path / "repo" / "xorbs").iterdir()
        footer = decode_xorb(path.read_bytes(), "x")
        bomb = zstandard.ZstdCompressor(level=19).compress(bytes(256 << 20))
        header = bytes((0, len(bomb) & 255, len(bomb) >> 8 & 255, len(bomb) >> 16, Scheme.ZSTD))
        record = header + (footer.chunk_size(0)).to_bytes(3, "little") + bomb
        path.write_bytes(record + path.read_bytes()[footer.serialized_ends[0] :])
        with pytest.raises(IntegrityError):
            r.read_bytes(res.file_hash)
        assert r.check(read_data=True).exit_code == 3


def test_verify_before_publish_catches_a_broken_compressor(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """restic #4523/#4677: a compressor that returns wrong bytes must not store anything."""
    real = packing_module.compress_frame

    def broken(data: bytes, level: int, bg4: bool) -> tuple[Scheme, bytes]:
        scheme, payload = real(data, level, bg4)
        if scheme == Scheme.NONE:
            return scheme, payload
        return scheme, zstandard.ZstdCompressor().compress(bytes(data)[:-1] + b"?")  # one byte off

    with Repository.init(str(tmp_path / "repo")) as r:
        monkeypatch.setattr(packing_module, "compress_frame", broken)
        with pytest.raises(IntegrityError, match="new xorb"):
            r.add_bytes(b"compressible text " * 20_000)
        assert list(r._backend.list("xorbs/")) == [] and list(r._backend.list("shards/")) == []
        monkeypatch.setattr(packing_module, "compress_frame", real)
        res = r.add_bytes(b"compressible text " * 20_000)
        assert r.read_bytes(res.file_hash) == b"compressible text " * 20_000


def test_decoders_raise_only_xetstore_errors_on_empty_input() -> None:
    for decode in (
        lambda d: verify_xorb(d, "e"), lambda d: XorbFooter.decode(d, "e"), lambda d: decode_shard(d, "e"),
        lambda d: decode_config(d, "e"), lambda d: decode_delete_record(d, "e"),
        lambda d: decompress_frame(Scheme.ZSTD, d, 10, "e"),
    ):  # fmt: skip
        with pytest.raises(XetStoreError):
            decode(b"")
    assert resource.getrlimit(resource.RLIMIT_AS)  # the limit API the bomb test relies on exists
