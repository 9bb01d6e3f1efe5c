"""Xet hashing against the golden vectors (computed by hf_xet, Hugging Face's client)."""

from __future__ import annotations

import hashlib

import pytest

from xetstore.errors import FormatError
from xetstore.hashing import (
    chunk_hash,
    file_hash,
    from_xet_hex,
    merkle_root,
    range_hash,
    xet_hex,
    xorb_hash,
)

from .xet_vectors import CASES, build

WITH_CHUNKS = [c for c in CASES if "chunks" in c]


def test_xet_hex_reverses_each_word() -> None:
    raw = bytes(range(32))
    text = "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert xet_hex(raw) == text
    assert from_xet_hex(text) == raw


@pytest.mark.parametrize("bad", ["", "00", "zz" * 32, "0" * 63, "0" * 65])
def test_from_xet_hex_rejects_malformed_text(bad: str) -> None:
    with pytest.raises(FormatError):
        from_xet_hex(bad)


@pytest.mark.parametrize("case", WITH_CHUNKS, ids=[c["name"] for c in WITH_CHUNKS])
def test_golden_chunk_lists_give_xet_hashes(case: dict) -> None:
    data = build(case["recipe"])
    assert hashlib.sha256(data).hexdigest() == case["sha256"]
    starts = [0] + case["chunk_ends"][:-1]
    chunks = [data[s:e] for s, e in zip(starts, case["chunk_ends"])]
    hashes = [chunk_hash(c) for c in chunks]
    assert [xet_hex(h) for h in hashes] == [c["hash"] for c in case["chunks"]]
    entries = [(h, len(c)) for h, c in zip(hashes, chunks)]
    assert xet_hex(merkle_root(entries)) == case["merkle_root_before_final_keyed_hash"]
    assert xet_hex(xorb_hash(entries)) == case["xorb_hash_if_single_xorb"]
    assert xet_hex(range_hash(hashes)) == case["verification_range_hash_all_chunks"]
    assert xet_hex(file_hash(entries)) == case["expected_file_hash"]


def test_empty_file_hash_is_zero() -> None:
    assert xet_hex(file_hash([])) == "0" * 64


def test_merkle_of_one_entry_is_that_hash() -> None:
    h = chunk_hash(b"a")
    assert merkle_root([(h, 1)]) == h


@pytest.mark.parametrize("size", [0, 1, 100_000, 300_000, 3_000_000])
@pytest.mark.parametrize("block", [64 * 1024, 1 << 20, 8 << 20])
def test_stream_sha256_whatever_the_blocks(size: int, block: int) -> None:
    # Small blocks are hashed on the chunking thread, larger ones on a worker: in any
    # mix, the sha256 sees every byte once and in order.
    import io
    import random

    from xetstore.intake import hash_stream

    data = random.Random(size).randbytes(size)
    assert hash_stream(io.BytesIO(data), block_size=block).sha256 == hashlib.sha256(data).hexdigest()
