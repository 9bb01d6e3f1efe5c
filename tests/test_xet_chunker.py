"""The `xet` chunker: Xet's test vectors, streaming invariance, and hf_xet itself as the oracle.

hf_xet (Hugging Face's own client) is a test dependency only: its `hash_files` gives the file
hash of a path without any network, so every generated file is checked against it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import hf_xet
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xetstore import Repository
from xetstore.chunking import chunk_ends, iter_chunks, make_chunker
from xetstore.gear import GEAR_TABLE, XetChunker, window_matches
from xetstore.hashing import chunk_hash, xet_hex
from xetstore.intake import hash_stream
from xetstore.params import MAX_CHUNK, MIN_CHUNK

from .samples import random_bytes
from .xet_vectors import CASES, build

WITH_CHUNKS = [c for c in CASES if "chunk_ends" in c]
BLOCK_SIZES = [1024, 37 * 1024 + 3, 1 << 20, 64 << 20]


def hf_hash(path: Path) -> str:
    return hf_xet.hash_files([str(path)])[0].hash


def streamed(data: bytes, block_size: int) -> list[tuple[int, str]]:
    """(chunk end, chunk hash) of every chunk, read through iter_chunks."""
    out, pos = [], 0
    for chunk in iter_chunks(io.BytesIO(data), XetChunker(), block_size):
        pos += len(chunk)
        out.append((pos, xet_hex(chunk_hash(chunk))))
    return out


# -- an independent reference: the byte loop of Xet's Chunker::next_boundary ---------------

_TABLE = [int(v) for v in GEAR_TABLE]
_U64 = (1 << 64) - 1


def reference_ends(data: bytes) -> list[int]:
    """Xet's stateful rule, one byte at a time: skip the first MIN_CHUNK - 65 bytes of a chunk,
    hash from h = 0, ignore matches before MIN_CHUNK, force a cut at MAX_CHUNK."""
    ends, start = [], 0
    while start < len(data):
        limit = min(start + MAX_CHUNK, len(data))
        cut, h = limit, 0
        for i in range(start + MIN_CHUNK - 65, limit):
            h = ((h << 1) + _TABLE[data[i]]) & _U64
            if h >> 48 == 0 and i + 1 - start >= MIN_CHUNK:
                cut = i + 1
                break
        ends.append(cut)
        start = cut
    return ends


@cache
def matching_windows() -> tuple[bytes, ...]:
    """64-byte windows whose gear hash matches, found in random data by a plain
    64-pass sum (independent of the chunker's doubling)."""
    data = np.frombuffer(random_bytes(2 << 20, seed=12345), np.uint8)
    gear = GEAR_TABLE[data]
    w = np.zeros(len(data) - 63, np.uint64)
    for k in range(64):
        w += gear[63 - k : len(data) - k] << np.uint64(k)
    found = np.flatnonzero(w < np.uint64(1 << 48)) + 64
    assert len(found) > 10
    return tuple(data[e - 64 : e].tobytes() for e in found)


@cache
def dense_pattern() -> bytes:
    """A 4-byte pattern whose repetition matches at every 4th byte (a worst case:
    a candidate cut every few bytes), found by searching random patterns."""
    patterns = np.random.default_rng(0).integers(0, 256, (200_000, 4), dtype=np.uint8)
    w = np.zeros(len(patterns), np.uint64)
    for i in range(64):
        w = (w << np.uint64(1)) + GEAR_TABLE[patterns[:, i % 4]]
    return patterns[np.flatnonzero(w < np.uint64(1 << 48))[0]].tobytes()


def planted(size: int, seed: int, offsets: list[int]) -> bytes:
    """Random bytes with matching windows ending at the given offsets (where they fit)."""
    data = bytearray(random_bytes(size, seed))
    windows = matching_windows()
    for n, end in enumerate(offsets):
        if 64 <= end <= size:
            data[end - 64 : end] = windows[(seed + n) % len(windows)]
    return bytes(data)


# -- Xet's test vectors --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_file_hash(case: dict) -> None:
    data = build(case["recipe"])
    assert len(data) == case["size"]
    fh, sha, size = hash_stream(io.BytesIO(data), "xet")
    assert (fh, size) == (case["expected_file_hash"], case["size"])
    if "sha256" in case:  # the edge cases do not list one
        assert sha == case["sha256"]
    if "num_chunks" in case:
        assert len(chunk_ends(data, XetChunker())) == case["num_chunks"]


@pytest.mark.parametrize("case", WITH_CHUNKS, ids=[c["name"] for c in WITH_CHUNKS])
def test_vector_chunks(case: dict) -> None:
    data = build(case["recipe"])
    expected = [(end, c["hash"]) for end, c in zip(case["chunk_ends"], case["chunks"])]
    assert [c["size"] for c in case["chunks"]] == np.diff([0, *case["chunk_ends"]]).tolist()
    assert streamed(data, 8 << 20) == expected


def test_vector_windows_are_matches() -> None:
    """The planted window of the edge vectors matches, and the three placements around
    MIN_CHUNK behave as Xet says: ignored at 8191, a cut at 8192 and at 8193."""
    recipes = {c["name"]: c["recipe"] for c in CASES}
    for end in (8191, 8192, 8193):
        data = build(recipes[f"edge_window_match_at_{end}"])
        ends = chunk_ends(data, XetChunker())
        assert (ends[0] == end) == (end >= MIN_CHUNK)
        assert window_matches(np.frombuffer(data, np.uint8), end, end).tolist() == [end]


# -- streaming invariance and the reference rule ---------------------------------------------


STREAM_INPUTS = ["random_planted", "numbered_text", "zeros", "dense_matches"]


@cache
def stream_input(name: str) -> bytes:
    if name == "random_planted":
        return planted(3 << 20, 5, [MIN_CHUNK - 1, MIN_CHUNK, 3 * MIN_CHUNK + 1, 1 << 20, (1 << 20) + 8193])
    if name == "numbered_text":
        return build({"kind": "numbered_text", "size": 2 << 20})
    if name == "zeros":
        return bytes(1 << 20) + b"\x01"
    return dense_pattern() * 200_000 + random_bytes(300_000, 6) + dense_pattern() * 100_001


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("name", STREAM_INPUTS)
def test_boundaries_do_not_depend_on_read_block_size(name: str, block_size: int) -> None:
    data = stream_input(name)
    if block_size < 4096:
        data = data[: 1 << 20]  # every small read re-scans the held tail: keep it quick
    got = streamed(data, block_size)
    assert [end for end, _ in got] == chunk_ends(data, make_chunker("xet"))


def spread_sizes(step: int, steps: int) -> st.SearchStrategy[int]:
    """Sizes spread over [0, step * (steps + 1)]: hypothesis alone favours small integers."""
    return st.builds(lambda n, extra: n * step + extra, st.integers(0, steps), st.integers(0, step))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=spread_sizes(100_000, 3),
    seed=st.integers(0, 2**32),
    offsets=st.lists(st.integers(0, 400_000), max_size=12),
    block_size=st.integers(1, 300_000),
)
def test_matches_the_byte_loop_rule(size: int, seed: int, offsets: list[int], block_size: int) -> None:
    data = planted(size, seed, offsets)
    expected = reference_ends(data)
    assert [end for end, _ in streamed(data, block_size)] == expected
    sizes = np.diff([0, *expected])
    assert all(MIN_CHUNK <= s <= MAX_CHUNK for s in sizes[:-1]) and all(sizes <= MAX_CHUNK)


def test_dense_matches_follow_the_byte_loop_rule() -> None:
    """Matches every 4 bytes, including inside the ignored zone before MIN_CHUNK."""
    for skew in range(4):
        data = random_bytes(skew + 5000, skew) + dense_pattern() * 70_000 + random_bytes(20_000, 9)
        assert [end for end, _ in streamed(data, 100_003)] == reference_ends(data)


def test_undecided_tail_is_shorter_than_a_chunk() -> None:
    data = memoryview(planted(1 << 20, 7, [200_000, 500_000]))
    whole = chunk_ends(data, XetChunker())
    for cut in (0, 5000, 131071, 131072, 700_001, 1 << 20):
        ends = list(XetChunker().cut_points(data[:cut], final=False))
        decided = ends[-1] if ends else 0
        assert cut - decided < MAX_CHUNK
        assert ends == [e for e in whole if e <= decided]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_chunk() -> None:
    """The child of a process that already used the thread pool gets a working one."""
    data = random_bytes(20 << 20, seed=8)
    expected = chunk_ends(data, XetChunker())
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        os._exit(0 if chunk_ends(data, XetChunker()) == expected else 1)
    assert os.waitpid(pid, 0)[1] == 0


# -- hf_xet as the oracle ----------------------------------------------------------------------

EDGE_SIZES = [0, 1, 63, 64, 65, 8191, 8192, 8193, 131071, 131072, 131073, 139264, 262145]


@st.composite
def files(draw: st.DrawFn) -> bytes:
    size = draw(st.one_of(st.sampled_from(EDGE_SIZES), spread_sizes(1 << 20, 4)))
    seed = draw(st.integers(0, 2**32))
    kind = draw(st.sampled_from(["random", "zeros", "text", "edited", "planted", "dense"]))
    if kind == "zeros":
        return bytes(size)
    if kind == "dense":
        cut = draw(st.integers(0, size))
        return (dense_pattern() * (size // 4 + 1))[:cut] + random_bytes(size - cut, seed)
    if kind == "text":
        line = draw(st.binary(min_size=1, max_size=200))
        return (line * (size // len(line) + 1))[:size]
    if kind == "planted":
        starts = draw(st.lists(st.integers(0, max(size, 1)), max_size=8))
        deltas = draw(st.lists(st.sampled_from([-1, 0, 1, MIN_CHUNK - 1, MIN_CHUNK, MIN_CHUNK + 1, MAX_CHUNK]), min_size=8, max_size=8))
        return planted(size, seed, [s + d for s, d in zip(starts, deltas)] + starts)
    data = bytearray(random_bytes(size, seed))
    if kind == "edited":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data)))
            edit = random_bytes(draw(st.integers(1, 5000)), seed + at)
            if draw(st.booleans()):
                data[at:at] = edit
            else:
                data[at : at + len(edit)] = edit[: len(data) - at]
    return bytes(data)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=files())
def test_file_hash_equals_hf_xet(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        ours = hash_stream(f, "xet")[0]
    assert ours == hf_hash(path)


def test_cli_hash_equals_hf_xet(tmp_path: Path) -> None:
    paths = []
    for name in STREAM_INPUTS:
        paths.append(tmp_path / name)
        paths[-1].write_bytes(stream_input(name))
    out = _cli("hash", "--chunker", "xet", "--json", *map(str, paths))
    assert {(r["path"], r["file_hash"]) for r in out} == {(str(p), hf_hash(p)) for p in paths}


# -- a repository that uses the xet chunker ---------------------------------------------------


def test_repository_round_trip_with_xet_hashes(tmp_path: Path) -> None:
    base = random_bytes(3 << 20, seed=21)
    inputs = {
        "base": base,
        "edited": base[: 1 << 20] + b"inserted" * 100 + base[1 << 20 :],
        "text": stream_input("numbered_text"),
        "zeros": bytes(700_000),
        "tiny": b"x",
        "empty": b"",
    }
    paths = {name: tmp_path / "in" / name for name in inputs}
    for name, data in inputs.items():
        paths[name].parent.mkdir(exist_ok=True)
        paths[name].write_bytes(data)
    rng = np.random.default_rng(3)
    with Repository.init(str(tmp_path / "repo"), chunker="xet") as repo:
        results = repo.add_files(list(paths.values()))
        for (name, data), res in zip(inputs.items(), results):
            assert res.file_hash == hf_hash(paths[name])
            repo.read_file(res.file_hash, tmp_path / "out")
            assert (tmp_path / "out").read_bytes() == data
            for start, length in rng.integers(0, len(data) + 2, size=(5, 2)):
                assert repo.read_bytes(res.file_hash, int(start), int(start + length)) == data[start : start + length]
        edited = repo.add_file(paths["edited"])
        assert edited.new_bytes == 0  # already stored: nothing new
    with Repository.open(str(tmp_path / "repo")) as repo:
        assert repo.config.params.chunker == "xet"


def test_cli_repository_lists_hf_xet_hashes(tmp_path: Path) -> None:
    repo = str(tmp_path / "repo")
    paths = []
    for n, size in enumerate([0, 1, 8193, 131073, 2 << 20]):
        paths.append(tmp_path / f"f{n}")
        paths[-1].write_bytes(planted(size, n, [MIN_CHUNK, 100_000]))
    (init,) = _cli("init", repo, "--chunker", "xet", "--json")
    assert init["chunker"] == "xet"
    _cli("add", "-r", repo, "--json", "-q", *map(str, paths))
    listed = {r["file_hash"] for r in _cli("ls", "-r", repo, "--json")}
    assert listed == {hf_hash(p) for p in paths}
    for p in paths:
        _cli("get", "-r", repo, hf_hash(p), "-o", str(tmp_path / "out"), "--force", "--json")
        assert (tmp_path / "out").read_bytes() == p.read_bytes()


def _cli(*args: str) -> list[dict]:
    """Run the real `xetstore` command; its JSON lines."""
    done = subprocess.run([sys.executable, "-m", "xetstore", *args], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]
