"""The call filter (docs/format.md §6.9): a bijection, the calls it picks, and compact using it.

The selection is checked against a plain Python loop written from the format's
words; the compact tests use machine-code-like bytes (calls to a few functions
among varied instruction bytes) in a real folder repository.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xetstore import Repository
from xetstore.call_filter import _calls, filter_calls, filtered_code, unfilter_calls
from xetstore.compression import Scheme, compress_as, decompress_frame
from xetstore.maintenance import compact
from xetstore.shard import decode_shard

from .samples import random_bytes, write_file

# Bytes that make calls, overlapping calls and operands at the range's edges likely.
call_heavy = st.lists(st.sampled_from([0xE8, 0xE8, 0x00, 0xFF, 0x0F, 0xF0, 0x10, 0x7F]), max_size=400).map(bytes)


def selected_by_loop(data: bytes) -> list[int]:
    """The format's rule as a loop: scan forward; an E8 with 4 bytes after it is a call, and the scan skips them."""
    found, p = [], 0
    while p + 5 <= len(data):
        if data[p] == 0xE8:
            found.append(p)
            p += 5
        else:
            p += 1
    return found


@given(call_heavy)
@settings(max_examples=400, deadline=None)
def test_the_filter_is_a_bijection_and_picks_the_calls_the_rule_names(data: bytes) -> None:
    assert _calls(np.frombuffer(data, dtype=np.uint8)).tolist() == selected_by_loop(data)
    filtered = filter_calls(data)
    assert len(filtered) == len(data)
    assert unfilter_calls(filtered) == data
    assert filter_calls(unfilter_calls(data)) == data
    assert _calls(np.frombuffer(bytes(filtered), dtype=np.uint8)).tolist() == selected_by_loop(data)


def call(at: int, target: int) -> bytes:
    return b"\xe8" + struct.pack("<i", target - at - 5)


def test_calls_to_one_target_hold_one_value_filtered() -> None:
    """The worked example of docs/format.md §6.9."""
    data = b"\x90" * 16 + call(16, 0x1000) + b"\x90" * 11 + call(32, 0x1000) + call(37, -0x20000000)
    filtered = bytes(filter_calls(data))
    assert filtered[17:21] == filtered[33:37] == struct.pack("<i", 0x1000 - 5)
    assert filtered[38:42] == data[38:42]  # an operand outside the range stays
    assert filtered.hex()[32:84] == "e8fb0f0000" + "90" * 11 + "e8fb0f0000" + "e8d6ffffdf"
    assert unfilter_calls(filtered) == data


def test_operands_at_the_range_s_edges() -> None:
    """[-2**28, 2**28) rotates by the call's offset, wrapping inside the range; the rest stays."""
    cases = {(1 << 28) - 1: 15 - (1 << 28), -(1 << 28): 16 - (1 << 28), 1 << 28: 1 << 28, -(1 << 28) - 1: -(1 << 28) - 1}
    for rel, expected in cases.items():
        data = b"\x90" * 16 + b"\xe8" + struct.pack("<i", rel)
        assert filter_calls(data)[17:] == struct.pack("<i", expected), rel
        assert unfilter_calls(filter_calls(data)) == data


def machine_code(size: int, seed: int) -> bytes:
    """Instruction-like bytes: short varied runs and a call to one of 40 functions every ~30 bytes."""
    rng = random.Random(seed)
    targets = [rng.randrange(-(1 << 22), 1 << 22) for _ in range(40)]
    ops = [bytes(rng.randrange(0, 0xE0) for _ in range(rng.randrange(3, 9))) for _ in range(300)]
    out = bytearray()
    while len(out) < size:
        for _ in range(rng.randrange(2, 6)):
            out += rng.choice(ops)
        out += call(len(out), rng.choice(targets))
    return bytes(out[:size])


@given(st.integers(0, 300_000))
@settings(max_examples=60, deadline=None)
def test_a_filtered_frame_decodes_any_prefix(want: int) -> None:
    data = machine_code(300_000, 1)
    payload = compress_as(data, Scheme.CALLS_ZSTD, 3)
    whole = decompress_frame(Scheme.CALLS_ZSTD, payload, len(data), "frame")
    assert bytes(whole) == data
    part = decompress_frame(Scheme.CALLS_ZSTD, payload, len(data), "frame", want)
    assert len(part) >= want and bytes(part[:want]) == data[:want]


def test_only_code_like_bytes_are_worth_the_filter() -> None:
    code = machine_code(1 << 20, 2)
    assert filtered_code(code) == filter_calls(code)
    text = b"".join(b"%d,item-%d,%.3f\n" % (i, i % 97, i / 7) for i in range(40_000))
    floats = np.random.default_rng(3).normal(0, 0.02, 250_000).astype(np.float32).tobytes()
    for other in (random_bytes(1 << 20, 4), text, floats, bytes(1 << 20)):
        assert filtered_code(other) is None


def first_schemes(repo_dir: Path, shard_key: str) -> list[int]:
    """The scheme of every frame's first record in the layouts a compact shard describes."""
    schemes = []
    for xorb in decode_shard((repo_dir / shard_key).read_bytes(), shard_key).xorbs:
        raw, ends = (repo_dir / xorb.footer.key).read_bytes(), xorb.footer.serialized_ends
        starts = [0, *ends[:-1]]
        schemes += [raw[s + 4] for k, s in enumerate(starts) if ends[k] - s > 8]
    return schemes


def test_compact_stores_large_files_machine_code_filtered_and_reads_it_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact, "CALL_FILTER_FROM", 2 << 20)  # a 3 MiB library counts as large
    code, text = machine_code(3 << 20, 5), b"".join(b"row %d,%d\n" % (i, i * 7 % 1000) for i in range(200_000))
    repo_dir = tmp_path / "repo"
    with Repository.init(str(repo_dir)) as repo:
        files = {repo.add_file(write_file(tmp_path / name, data)).file_hash: data for name, data in (("lib", code), ("csv", text))}
        plain_size = len(compress_as(code, Scheme.ZSTD, 9))
        report = repo.compact()
        schemes = first_schemes(repo_dir, report.new_shards[0])
        assert Scheme.CALLS_ZSTD in schemes and Scheme.ZSTD in schemes  # the text stays plain zstd
        assert report.stored_after < report.stored_before - 0.2 * plain_size
        for file_hash, data in files.items():
            assert repo.read_bytes(file_hash) == data
            assert repo.read_bytes(file_hash, 1_000_003, 1_200_000) == data[1_000_003:1_200_000]
        assert repo.check(read_data=True).exit_code == 0
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "fresh") as repo:
        assert all(repo.read_bytes(file_hash) == data for file_hash, data in files.items())


def test_compact_leaves_smaller_files_unfiltered(tmp_path: Path) -> None:
    """Below CALL_FILTER_FROM a read would pay numpy's import for a few percent."""
    code = machine_code(3 << 20, 5)
    with Repository.init(str(tmp_path / "repo")) as repo:
        file_hash = repo.add_file(write_file(tmp_path / "lib", code)).file_hash
        report = repo.compact()
        assert set(first_schemes(tmp_path / "repo", report.new_shards[0])) == {Scheme.ZSTD}
        assert repo.read_bytes(file_hash) == code
