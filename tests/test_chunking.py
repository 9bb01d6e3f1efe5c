"""The fastcdc chunker: golden boundaries, streaming invariance, size bounds, locality."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xetstore.chunking import FastCdcChunker, chunk_ends, iter_chunks, make_chunker
from xetstore.errors import ConfigError
from xetstore.hashing import chunk_hash, file_hash, xet_hex
from xetstore.params import MAX_CHUNK, MIN_CHUNK

from .samples import random_bytes
from .xet_vectors import build

GOLDEN = json.loads((Path(__file__).parent / "data" / "fastcdc-vectors.json").read_text())["cases"]


def streamed_ends(data: bytes, block_size: int) -> list[int]:
    ends, pos = [], 0
    for chunk in iter_chunks(io.BytesIO(data), FastCdcChunker(), block_size):
        pos += len(chunk)
        ends.append(pos)
    return ends


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_boundaries_are_stable(case: dict) -> None:
    data = build(case["recipe"])
    ends = chunk_ends(data, FastCdcChunker())
    assert ends == case["chunk_ends"]
    starts = [0, *ends[:-1]]
    entries = [(chunk_hash(data[s:e]), e - s) for s, e in zip(starts, ends)]
    assert xet_hex(file_hash(entries)) == case["file_hash"]


@pytest.mark.parametrize("block_size", [1024, 37 * 1024 + 1, 65536, 131073, 1 << 20, 8 << 20])
def test_boundaries_do_not_depend_on_read_block_size(block_size: int) -> None:
    data = random_bytes(3 << 20, seed=3) + bytes(300_000) + random_bytes(500_000, seed=4)
    assert streamed_ends(data, block_size) == chunk_ends(data, FastCdcChunker())


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=300_000),
    block_size=st.integers(min_value=1, max_value=200_000),
)
def test_streaming_invariance_property(data: bytes, block_size: int) -> None:
    assert streamed_ends(data, block_size) == chunk_ends(data, FastCdcChunker())


@settings(max_examples=25, deadline=None)
@given(size=st.integers(min_value=0, max_value=2_000_000), seed=st.integers(0, 2**32))
def test_chunk_sizes_are_bounded_and_cover_the_input(size: int, seed: int) -> None:
    data = random_bytes(size, seed)
    chunks = [bytes(c) for c in iter_chunks(io.BytesIO(data), FastCdcChunker(), 1 << 20)]
    assert b"".join(chunks) == data
    assert all(len(c) <= MAX_CHUNK for c in chunks)
    assert all(len(c) >= MIN_CHUNK for c in chunks[:-1])


def test_constant_data_cuts_at_the_maximum() -> None:
    ends = chunk_ends(bytes(1 << 20), FastCdcChunker())
    assert ends == list(range(MAX_CHUNK, (1 << 20) + 1, MAX_CHUNK))


def test_an_insert_changes_only_nearby_chunks() -> None:
    data = random_bytes(20 << 20, seed=9)
    mid = len(data) // 2
    edited = data[:mid] + random_bytes(1024, seed=10) + data[mid:]
    before = {chunk_hash(c) for c in _chunks(data)}
    changed = [c for c in _chunks(edited) if chunk_hash(c) not in before]
    assert 1 <= len(changed) <= 4
    assert sum(len(c) for c in changed) < 0.05 * len(data)


def _chunks(data: bytes) -> list[bytes]:
    return [bytes(c) for c in iter_chunks(io.BytesIO(data), FastCdcChunker())]


def test_unknown_chunker_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        make_chunker("rabin")
