"""The chunk-cutting helper process: the same cuts as in-process chunking, and whatever
happens to it or to the file, every byte exactly once."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xetstore import Repository, cutting
from xetstore.chunking import Block, chunk_ends, make_chunker
from xetstore.cutting import Cutter
from xetstore.intake import hash_stream
from xetstore.params import MAX_CHUNK

from .samples import random_bytes

BLOCK = 256 * 1024  # small blocks: a 3 MiB file is a dozen of them


@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutting, "CUT_APART_FROM", 1 << 20)
    monkeypatch.setattr(cutting, "CUTTER_START_FROM", 2 << 20)


@pytest.fixture
def cutter() -> Iterator[Cutter]:
    c = Cutter("fastcdc")
    yield c
    c.close()


@pytest.fixture
def local_cuts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The stream positions at which cutting fell back to this process."""
    calls: list[int] = []
    real = cutting.iter_blocks

    def spy(stream: Any, *args: Any) -> Iterator[Block]:
        calls.append(stream.tell())
        return real(stream, *args)

    monkeypatch.setattr(cutting, "iter_blocks", spy)
    return calls


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def cut(cutter: Cutter, f: Any, chunker: str = "fastcdc") -> tuple[bytes, list[int]]:
    """The bytes and absolute chunk ends of the blocks `cutter` gives for `f` (each block
    copied as it comes: the buffers are reused)."""
    return absolute_ends([Block(bytes(b.data), b.ends) for b in cutter.blocks(f, make_chunker(chunker), BLOCK)])


def absolute_ends(blocks: list[Block]) -> tuple[bytes, list[int]]:
    data, ends, pos = bytearray(), [], 0
    for block in blocks:
        data += block.data
        ends += [pos + e for e in block.ends]
        pos += len(block.data)
    return bytes(data), ends


@pytest.mark.parametrize("chunker", ["fastcdc", "xet"])
def test_the_helper_cuts_where_this_process_would(tmp_path: Path, local_cuts: list[int], chunker: str) -> None:
    data = random_bytes(3 << 20, seed=1) + bytes(400_000) + random_bytes(200_000, seed=2)
    path = write(tmp_path / "big.bin", data)
    c = Cutter(chunker)
    try:
        with open(path, "rb") as f:
            got, ends = cut(c, f, chunker)
        assert c._proc is not None and c._proc.poll() is None  # it served and is still up
    finally:
        c.close()
    assert got == data
    assert ends == chunk_ends(data, make_chunker(chunker))
    assert local_cuts == [len(data)]  # only the (empty) rest after the helper's end was cut here


def test_small_files_and_unnamed_streams_are_cut_here(tmp_path: Path, cutter: Cutter, local_cuts: list[int]) -> None:
    small = write(tmp_path / "small.bin", random_bytes(500_000, seed=3))
    with open(small, "rb") as f:
        assert cut(cutter, f)[0] == small.read_bytes()
    big = random_bytes(3 << 20, seed=4)
    assert cut(cutter, io.BytesIO(big))[0] == big
    assert cutter._proc is None and local_cuts == [0, 0]


def test_a_file_that_grows_after_the_helper_read_it_is_finished_here(
    tmp_path: Path, cutter: Cutter, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random_bytes(3 << 20, seed=5)
    path = write(tmp_path / "growing.bin", data)
    extra = random_bytes(700_000, seed=6)
    real, at = cutting.iter_blocks, []

    def grow_then_cut(stream: Any, *args: Any) -> Iterator[Block]:
        at.append(stream.tell())
        with open(path, "ab") as g:  # after the helper's end of file, before this process reads on
            g.write(extra)
        return real(stream, *args)

    monkeypatch.setattr(cutting, "iter_blocks", grow_then_cut)
    with open(path, "rb") as f:
        got, ends = cut(cutter, f)
    assert got == data + extra
    assert ends[: len(chunk_ends(data, make_chunker("fastcdc")))] == chunk_ends(data, make_chunker("fastcdc"))
    assert all(0 < e - s <= MAX_CHUNK for s, e in zip([0, *ends], ends)) and ends[-1] == len(data) + len(extra)
    assert at == [len(data)]


def test_a_file_that_shrinks_is_cut_here_and_the_helper_serves_the_next(
    tmp_path: Path, cutter: Cutter, local_cuts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random_bytes(3 << 20, seed=7)
    path = write(tmp_path / "shrinking.bin", data)
    real = Cutter._cuts

    def shrink_after_answers(self: Cutter, *args: Any) -> Iterator[list[int]]:
        answers = list(real(self, *args))  # the helper has cut all 3 MiB
        os.truncate(path, 2 << 20)
        yield from answers

    monkeypatch.setattr(Cutter, "_cuts", shrink_after_answers)
    with open(path, "rb") as f:
        got, ends = cut(cutter, f)
    assert got == data[: 2 << 20]
    assert ends == chunk_ends(got, make_chunker("fastcdc"))  # cut where a read of the short file cuts
    assert len(local_cuts) == 1 and 0 < local_cuts[0] < 2 << 20
    monkeypatch.setattr(Cutter, "_cuts", real)
    helper = cutter._proc
    other = write(tmp_path / "other.bin", random_bytes(3 << 20, seed=8))
    with open(other, "rb") as f:
        assert cut(cutter, f)[0] == other.read_bytes()
    assert cutter._proc is helper and local_cuts[1:] == [3 << 20]


def test_a_dead_helper_is_replaced_by_cutting_here(tmp_path: Path, cutter: Cutter, local_cuts: list[int]) -> None:
    data = random_bytes(3 << 20, seed=9)
    path = write(tmp_path / "big.bin", data)
    cutter.start()
    cutter._proc.kill()  # type: ignore[union-attr]
    cutter._proc.wait()  # type: ignore[union-attr]
    with open(path, "rb") as f:
        got, ends = cut(cutter, f)
    assert got == data and ends == chunk_ends(data, make_chunker("fastcdc"))
    assert cutter._proc is None and local_cuts == [0]
    cutter.start()  # not again in this process
    assert cutter._proc is None


def test_answers_that_stop_mid_file_are_continued_here(
    tmp_path: Path, cutter: Cutter, local_cuts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random_bytes(3 << 20, seed=13)
    path = write(tmp_path / "big.bin", data)
    real, reads = cutting._read_exactly, []

    def pipe_closes(pipe: Any, n: int) -> bytes:
        reads.append(n)
        if len(reads) > 6:  # three blocks' answers, then the helper is gone
            raise EOFError("the chunk cutting helper stopped")
        return real(pipe, n)

    monkeypatch.setattr(cutting, "_read_exactly", pipe_closes)
    with open(path, "rb") as f:
        got, ends = cut(cutter, f)
    assert got == data and ends == chunk_ends(data, make_chunker("fastcdc"))
    assert len(local_cuts) == 1 and 0 < local_cuts[0] < len(data) and cutter._proc is None


def test_a_file_replaced_before_the_helper_opens_it_is_not_cut_by_it(
    tmp_path: Path, cutter: Cutter, local_cuts: list[int]
) -> None:
    data = random_bytes(3 << 20, seed=10)
    path = write(tmp_path / "big.bin", data)
    cutter.start()
    with open(path, "rb") as f:
        os.replace(write(tmp_path / "new.bin", random_bytes(3 << 20, seed=11)), path)  # this open still reads the old file
        got, ends = cut(cutter, f)
    assert got == data and ends == chunk_ends(data, make_chunker("fastcdc"))
    assert local_cuts == [0] and cutter._proc is not None  # refused, not broken


def test_an_add_through_the_helper_stores_the_file_hash_of_a_plain_hash(
    tmp_path: Path, local_cuts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random_bytes(5 << 20, seed=12) + random_bytes(1 << 20, seed=12)
    path = write(tmp_path / "model.bin", data)
    served: list[int] = []
    real = Cutter._cuts

    def counted(self: Cutter, *args: Any) -> Iterator[list[int]]:
        for ends in real(self, *args):
            served.append(len(ends))
            yield ends

    monkeypatch.setattr(Cutter, "_cuts", counted)
    with Repository.init(str(tmp_path / "repo")) as repo:
        result = repo.add_file(path)
    assert sum(served) == len(chunk_ends(data, make_chunker("fastcdc"))) and local_cuts == [len(data)]
    with open(path, "rb") as f:
        assert result.file_hash == hash_stream(f).file_hash
    with Repository.open(str(tmp_path / "repo")) as repo:
        repo.read_file(result.file_hash, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data


def test_files_large_together_start_the_helper_before_the_first_is_read(tmp_path: Path, cutter: Cutter) -> None:
    cutter.expect([900_000] * 5)  # only files of CUT_APART_FROM and more count
    assert cutter._proc is None
    cutter.expect([1 << 20, 500_000, 1 << 20])
    assert cutter._proc is not None


def test_an_add_of_shards_goes_through_the_helper(
    tmp_path: Path, local_cuts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutting, "CUTTER_START_FROM", 4 << 20)  # above each shard, below their sum
    shards = [write(tmp_path / f"shard-{i}.bin", random_bytes(1_500_000, seed=20 + i)) for i in range(3)]
    with Repository.init(str(tmp_path / "repo")) as repo:
        results = repo.add_files(shards)
    assert local_cuts == [1_500_000] * 3  # each cut by the helper, up to its end
    for shard, result in zip(shards, results):
        with open(shard, "rb") as f:
            assert result.file_hash == hash_stream(f).file_hash


def test_a_helper_whose_requester_goes_away_mid_answer_exits_quietly(tmp_path: Path) -> None:
    path = write(tmp_path / "big.bin", random_bytes(8 << 20, seed=30))
    st = os.stat(path)
    name = os.fsencode(path)
    helper = subprocess.Popen(cutting.helper_command("fastcdc"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)  # fmt: skip
    assert helper.stdin is not None and helper.stdout is not None and helper.stderr is not None
    helper.stdin.write(cutting._REQUEST.pack(st.st_dev, st.st_ino, 1 << 20, len(name)) + name)
    helper.stdin.flush()
    helper.stdout.close()  # gone before its first answer: the interpreter takes longer to start
    helper.stdin.close()
    assert helper.wait(timeout=30) == 0
    assert helper.stderr.read() == b""


def test_large_streams_met_one_by_one_start_the_helper_once_large_together(
    tmp_path: Path, cutter: Cutter, local_cuts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutting, "CUTTER_START_FROM", 2_500_000)  # as a git-lfs agent meets objects
    files = [write(tmp_path / f"object-{i}", random_bytes(1_500_000, seed=40 + i)) for i in range(3)]
    for path in files:
        with open(path, "rb") as f:
            got, ends = cut(cutter, f)
        assert got == path.read_bytes() and ends == chunk_ends(got, make_chunker("fastcdc"))
    assert local_cuts == [0, 1_500_000, 1_500_000]  # the first cut here, the next two by the helper


def test_a_file_named_relative_to_a_later_working_directory_is_found(
    tmp_path: Path, cutter: Cutter, local_cuts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cutter.start()  # in this directory
    (tmp_path / "later").mkdir()
    data = random_bytes(3 << 20, seed=50)
    write(tmp_path / "later" / "big.bin", data)
    monkeypatch.chdir(tmp_path / "later")
    with open("big.bin", "rb") as f:
        assert cut(cutter, f) == (data, chunk_ends(data, make_chunker("fastcdc")))
    assert local_cuts == [len(data)]  # cut by the helper, not refused
