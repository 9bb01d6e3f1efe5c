"""Compression, xorb and shard codecs: round trips, frames, and garbage in -> our errors out."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xetstore import compression
from xetstore.compression import Scheme, bg4_join, bg4_split, compress_frame, decompress_frame, prefers_bg4
from xetstore.config import RepositoryConfig, decode_config, encode_config
from xetstore.errors import ConfigError, DecompressionError, FormatError, HashMismatch, XetStoreError
from xetstore.hashing import chunk_hash, file_hash, xet_hex
from xetstore.packing import XorbBuilder
from xetstore.params import MAX_CHUNK, RepositoryParams
from xetstore.shard import Manifest, Shard, ShardXorb, Term, decode_shard, encode_shard
from xetstore.xorb import HEADER_SIZE, ChunkHeader, XorbFooter, decode_xorb, read_chunks, read_frames, verify_xorb

from .samples import random_bytes
from .xet_vectors import build


def build_xorb(chunks: list[bytes], frame_bytes: int = 1 << 20, compress: bool = True):
    builder = XorbBuilder(3, frame_bytes, compress)
    for c in chunks:
        builder.add(chunk_hash(c), c)
    return builder.seal()


def text_chunks(n: int) -> list[bytes]:
    return [b"".join(b"row %d,%d,hello\n" % (i, j) for j in range(3000))[:60000] for i in range(n)]


def float_chunks(n: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    return [rng.normal(0, 0.02, 16000).astype("<f4").tobytes() for _ in range(n)]


@given(st.binary(max_size=5000))
def test_bg4_round_trip(data: bytes) -> None:
    assert bg4_join(bg4_split(data)) == data


@given(st.binary(max_size=5000))
def test_bg4_split_without_numpy_groups_as_numpy(data: bytes) -> None:
    """A process's first frames are split without numpy; both ways give the same bytes."""
    assert compression._bg4_split_pure(data) == compression._bg4_split_numpy(data)
    assert compression._bg4_split_pure(memoryview(data)) == compression._bg4_split_numpy(memoryview(data))


def test_bg4_layout_is_xets_lanes_with_the_remainder_first() -> None:
    grouped = bytes([0, 4, 8, 1, 5, 9, 2, 6, 3, 7])  # lanes of 3, 3, 2, 2 bytes
    assert bg4_split(bytes(range(10))) == grouped
    assert bg4_join(memoryview(grouped)) == bytes(range(10))  # frames arrive as views


def numpy_divergence(sample: bytes) -> float:
    """The predictor as Xet states it, in numpy: the reference for the pure-Python path."""
    arr = np.frombuffer(sample, dtype=np.uint8)[: len(sample) // 4 * 4]
    popcount = np.array([bin(i).count("1") for i in range(256)])
    lanes = np.stack([np.bincount(popcount[arr[k::4]], minlength=9) for k in range(4)])
    q = (lanes.sum(axis=0) + 1.0) / (lanes.sum() + 9.0)
    p = lanes / lanes.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.nansum(np.where(p > 0, p * np.log(p / q), 0.0), axis=1).max())


def test_bg4_predictor_without_numpy_counts_and_decides_as_numpy() -> None:
    samples = [*float_chunks(3), random_bytes(65536, seed=2), build({"kind": "numbered_text", "size": 65536}),
               bytes(65536), b"abcd" * 16385, np.arange(20000, dtype="<f4").tobytes(), random_bytes(5001, seed=3)]
    for sample in samples:
        pure = compression._lane_histograms_pure(sample)
        assert pure == compression._lane_histograms_numpy(sample)
        assert compression._max_divergence(pure) == pytest.approx(numpy_divergence(sample), rel=1e-9, abs=1e-12)


def code_like_frame() -> bytes:
    """Repeated 16-byte records whose top byte per 32-bit word is 0 or 0xff: lanes with
    different bit statistics (the predictor says BG4) and long matches, as in machine code."""
    rng = np.random.default_rng(1)
    records = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    records[:, 3::4] = rng.choice([0, 0xFF], (300, 4))
    return records[rng.integers(0, 300, 65536)].tobytes()


def test_frames_that_grouping_would_grow_are_compressed_ungrouped() -> None:
    frame = code_like_frame()
    assert prefers_bg4(frame[:65536])
    scheme, payload = compress_frame(frame, 3, bg4=True)
    grouped = zstandard.ZstdCompressor(level=1).compress(bg4_split(frame))
    assert scheme == Scheme.ZSTD and len(payload) < len(grouped)
    assert decompress_frame(scheme, payload, len(frame), "frame") == frame
    weights = b"".join(float_chunks(16))
    assert compress_frame(weights, 3, bg4=True)[0] == Scheme.BG4_ZSTD  # float tensors stay grouped


def reference_compress_frame(data: bytes, level: int, bg4: bool) -> tuple[Scheme, bytes]:
    """compress_frame as it was before it reused its grouping trial: a level-1
    trial of the 64 KiB sample both ways, then the frame compressed again."""
    c1 = zstandard.ZstdCompressor(level=1).compress
    if bg4 and len(data) >= 4096 and not len(c1(bg4_split(data[:65536]))) < 1.05 * len(c1(data[:65536])):
        bg4 = False
    if len(data) >= 4 * 65536 and compression._incompressible(compression._spread_sample(data), bg4):
        return Scheme.NONE, b""
    plain = bg4_split(data) if bg4 else data
    payload = zstandard.ZstdCompressor(level=1 if bg4 else level, write_checksum=False).compress(plain)
    if len(payload) >= len(data):
        return Scheme.NONE, b""
    return (Scheme.BG4_ZSTD if bg4 else Scheme.ZSTD), payload


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["floats", "text", "code", "random"]),
    size=st.sampled_from([100, 4095, 4096, 30_000, 65535, 65536, 65537, 300_000]),
    level=st.sampled_from([1, 3]),
    bg4=st.booleans(),
)
def test_frames_compress_to_the_same_bytes_as_without_reusing_the_trial(kind: str, size: int, level: int, bg4: bool) -> None:
    """A frame no longer than the sample takes its payload from the grouping trial; it is the same payload."""
    source = {"floats": lambda: b"".join(float_chunks(5)), "text": lambda: b"".join(text_chunks(5)),
              "code": code_like_frame, "random": lambda: random_bytes(300_000)}[kind]()  # fmt: skip
    data = (source * (size // len(source) + 1))[:size]
    assert compress_frame(data, level, bg4) == reference_compress_frame(data, level, bg4)


def test_bg4_predictor_tells_floats_from_text() -> None:
    assert prefers_bg4(float_chunks(1)[0])
    assert not prefers_bg4(build({"kind": "numbered_text", "size": 65536}))


def test_incompressible_frame_is_stored_raw() -> None:
    assert compress_frame(random_bytes(100_000), 3, False) == (Scheme.NONE, b"")
    assert compress_frame(random_bytes(1 << 20), 3, False) == (Scheme.NONE, b"")


def test_a_frame_that_opens_incompressible_is_still_compressed() -> None:
    """The probe samples four places: a library's frame may open with compressed
    data (a CUDA fatbin) and go on with code."""
    frame = random_bytes(200_000, 3) + b"".join(text_chunks(14))[: (1 << 20) - 200_000]
    scheme, payload = compress_frame(frame, 3, False)
    assert scheme == Scheme.ZSTD and len(payload) < 0.5 * len(frame)
    assert decompress_frame(scheme, payload, len(frame), "frame") == frame


@pytest.mark.parametrize("dtype", ["<f2", "<f4"])
def test_float_frames_are_compressed_though_mantissa_bytes_are_random(dtype: str) -> None:
    # The quick incompressibility probe must look at every byte lane: the first
    # lane of a grouped float frame alone is random and would wrongly say "raw".
    frame = np.random.default_rng(2).normal(0, 0.02, 300_000).astype(dtype).tobytes()
    assert prefers_bg4(frame[:65536])
    scheme, payload = compress_frame(frame, 3, True)
    assert scheme == Scheme.BG4_ZSTD and len(payload) < 0.9 * len(frame)
    assert decompress_frame(scheme, payload, len(frame), "floats") == frame


def test_decompression_refuses_a_bomb() -> None:
    bomb = zstandard.ZstdCompressor().compress(bytes(50 << 20))
    with pytest.raises(DecompressionError):
        decompress_frame(Scheme.ZSTD, bomb, MAX_CHUNK, "bomb")
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(50 << 20))
    with pytest.raises(DecompressionError):
        decompress_frame(Scheme.ZSTD, no_size, MAX_CHUNK, "bomb")


@pytest.mark.parametrize(
    "chunks,frame_bytes",
    [
        (text_chunks(40), 1 << 20),
        (text_chunks(40), 0),
        (float_chunks(20), 1 << 20),
        ([random_bytes(70000, s) for s in range(10)], 1 << 20),
        (text_chunks(3) + [random_bytes(50000, 7)] + text_chunks(5), 200_000),
    ],
    ids=["text-frames", "text-per-chunk", "floats-bg4", "random-raw", "mixed"],
)
def test_xorb_round_trip_and_random_access(chunks: list[bytes], frame_bytes: int) -> None:
    sealed = build_xorb(chunks, frame_bytes)
    footer = verify_xorb(sealed.data, "test")
    assert footer == sealed.footer
    assert decode_xorb(sealed.data, "test") == footer
    assert read_chunks(sealed.data[: footer.serialized_ends[-1]], footer, 0, len(chunks), "t") == chunks
    for first in range(0, len(chunks), 3):
        end = min(len(chunks), first + 2)
        start, stop = footer.byte_range(first, end)
        assert read_chunks(sealed.data[start:stop], footer, first, end, "t") == chunks[first:end]


def test_a_zstd_frame_is_decoded_only_as_far_as_wanted() -> None:
    """With `want`, decoding stops there: a frame whose tail is garbage still gives
    its head, and only a whole decode meets the garbage."""
    data = b"".join(csv_chunks(16))
    payload = bytearray(zstandard.ZstdCompressor(level=3).compress(data))
    payload[-200:] = bytes(200)  # the last blocks of the frame, zeroed
    assert decompress_frame(Scheme.ZSTD, bytes(payload), len(data), "head", want=5000) == data[:5000]
    with pytest.raises(DecompressionError):
        decompress_frame(Scheme.ZSTD, bytes(payload), len(data), "whole")
    floats = b"".join(float_chunks(2))  # byte-grouped: any byte needs the whole frame
    grouped = compress_frame(floats, 1, True)
    assert grouped[0] == Scheme.BG4_ZSTD
    assert decompress_frame(grouped[0], grouped[1], len(floats), "bg4", want=10) == floats


def decode_header(xorb: bytes) -> ChunkHeader:
    return ChunkHeader.decode(xorb[:HEADER_SIZE], "first record")


def csv_chunks(n: int) -> list[bytes]:
    """Text that zstd frames hold ungrouped (text_chunks' rows happen to group well)."""
    text = "".join(f"{i},event {i * 7 % 13},user{i % 97}\n" for i in range(n * 3000)).encode()
    return [text[k : k + 50_000] for k in range(0, n * 50_000, 50_000)]


def test_frames_read_with_a_reach_stop_where_the_read_needs_them() -> None:
    chunks = csv_chunks(40)
    sealed = build_xorb(chunks, 1 << 20)
    assert decode_header(sealed.data).scheme == Scheme.ZSTD
    footer = sealed.footer
    start, stop = footer.byte_range(0, 3)
    raw = sealed.data[start:stop]
    whole = read_frames(raw, footer, 0, 3, "t")
    assert [len(c) for _, c in whole] == [footer.frame_end(0)]  # the frame's chunks past 3 as well
    (at, head), = read_frames(raw, footer, 0, 3, "t", reach={})
    assert at == 0 and head == chunks[:3]
    (at, further), = read_frames(raw, footer, 0, 3, "t", reach={0: 7})  # a later term reads up to 7
    assert further == chunks[:7]


def test_frames_shrink_text_more_than_per_chunk_compression() -> None:
    chunks = text_chunks(40)
    framed = len(build_xorb(chunks, 1 << 20).data)
    alone = len(build_xorb(chunks, 0).data)
    assert framed < alone


def test_flipped_byte_is_a_hash_mismatch_or_format_error() -> None:
    chunks = text_chunks(5)
    sealed = build_xorb(chunks, 0)
    damaged = bytearray(sealed.data)
    damaged[HEADER_SIZE + 10] ^= 0xFF
    with pytest.raises((HashMismatch, DecompressionError)):
        verify_xorb(bytes(damaged), "damaged")
    raw = bytearray(build_xorb([random_bytes(20000, 1)], compress=False).data)
    raw[HEADER_SIZE + 5] ^= 1
    with pytest.raises(HashMismatch, match="chunk 0"):
        verify_xorb(bytes(raw), "damaged")


def test_a_compressor_that_returns_other_bytes_fails_the_first_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    # A broken compression library must fail the add before a xorb is published.
    import xetstore.packing as packing

    def broken(data, level, bg4):  # type: ignore[no-untyped-def]
        wrong = bytes(data)[::-1]
        return Scheme.ZSTD, zstandard.ZstdCompressor(level=1).compress(wrong)

    monkeypatch.setattr(packing, "compress_frame", broken)
    with pytest.raises(HashMismatch, match="compression round trip"):
        build_xorb(text_chunks(20), 1 << 20)


def test_forged_footer_length_is_a_format_error() -> None:
    sealed = build_xorb(text_chunks(2))
    forged = sealed.data[:-4] + struct.pack("<I", 0xFFFFFFF0)
    with pytest.raises(FormatError):
        decode_xorb(forged, "forged")
    with pytest.raises(FormatError):
        decode_xorb(sealed.data[: len(sealed.data) // 2], "truncated")


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_xorb_decoder_fed_garbage_raises_only_our_errors(data: bytes) -> None:
    with pytest.raises(XetStoreError):
        verify_xorb(data, "garbage")


@settings(max_examples=200)
@given(st.binary(min_size=0, max_size=200), st.integers(0, 3))
def test_mutated_xorb_raises_only_our_errors(noise: bytes, where: int) -> None:
    """A changed xorb is refused, or (a change the hashes do not cover) still reads as the same chunks."""
    chunks = text_chunks(3)
    data = bytearray(build_xorb(chunks, 0).data)
    at = [0, len(data) // 2, len(data) - 100, len(data) - 8][where]
    data[at : at + len(noise)] = noise
    try:
        footer = verify_xorb(bytes(data), "mutated")
    except XetStoreError:
        return
    raw = bytes(data)[: footer.serialized_ends[-1]]
    assert read_chunks(raw, footer, 0, footer.num_chunks, "mutated") == chunks


def sample_shard() -> Shard:
    chunks = text_chunks(4)
    sealed = build_xorb(chunks)
    entries = [(chunk_hash(c), len(c)) for c in chunks]
    term = Term(sealed.hash, 0, 4, sum(len(c) for c in chunks))
    m = Manifest(file_hash(entries), b"\x11" * 32, (term,))
    empty = Manifest(bytes(32), b"\x22" * 32, ())
    return Shard((m, empty), (ShardXorb(sealed.footer, sealed.size),), created=1700000000)


def test_shard_round_trip() -> None:
    shard = sample_shard()
    decoded = decode_shard(encode_shard(shard), "s")
    assert sorted(decoded.manifests, key=lambda m: m.file_hash) == sorted(shard.manifests, key=lambda m: m.file_hash)
    assert decoded.xorbs == shard.xorbs
    assert decoded.created == shard.created


@settings(max_examples=200)
@given(st.binary(max_size=3000))
def test_shard_decoder_fed_garbage_raises_only_our_errors(data: bytes) -> None:
    with pytest.raises(XetStoreError):
        decode_shard(data, "garbage")


@settings(max_examples=200)
@given(st.integers(0, 10_000), st.binary(min_size=1, max_size=16))
@example(52, b"\x00\x00\x00h")  # a file hash rewritten so that the files decode out of the encoder's order
def test_mutated_shard_raises_only_our_errors(at: int, noise: bytes) -> None:
    data = bytearray(encode_shard(sample_shard()))
    at %= len(data)
    data[at : at + len(noise)] = noise
    try:
        decoded = decode_shard(bytes(data), "mutated")
    except XetStoreError:
        return
    # What the decoder accepts is a well-formed shard: it encodes, and decodes back to itself.
    again = decode_shard(encode_shard(decoded), "re-encoded")
    # the encoder writes files in the order of their hex file hashes, as Xet does
    by_hash = sorted(decoded.manifests, key=lambda m: xet_hex(m.file_hash))
    assert (again.manifests, again.xorbs, again.created) == (tuple(by_hash), decoded.xorbs, decoded.created)


def test_config_round_trip_and_newer_version() -> None:
    config = RepositoryConfig.new(RepositoryParams(chunker="xet"))
    assert decode_config(encode_config(config)) == config
    newer = encode_config(config).replace(b'"version": 1', b'"version": 99')
    with pytest.raises(ConfigError, match="upgrade xetstore"):
        decode_config(newer)


@given(st.binary(max_size=500))
def test_config_decoder_fed_garbage_raises_only_our_errors(data: bytes) -> None:
    with pytest.raises(XetStoreError):
        decode_config(data)


def test_footer_sizes_match_xet() -> None:
    sealed = build_xorb(text_chunks(3))
    n = sealed.footer.num_chunks
    (info_len,) = struct.unpack("<I", sealed.data[-4:])
    assert info_len == 92 + 40 * n
    assert XorbFooter.decode(sealed.data[-4 - info_len :], "f") == sealed.footer
