"""Reads fetch several windows at once and write them in place; uploads overlap cleaning."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from xetstore import FileNotInRepository, OutputError, Repository

from .samples import random_bytes

MiB = 1024 * 1024


def test_parallel_reads_into_files_pipes_and_appends(repo: Repository, tmp_path: Path) -> None:
    data = random_bytes(40 * MiB + 321, seed=21)  # several 8 MiB windows
    file_hash = repo.add_bytes(data).file_hash

    seen: list[int] = []
    repo.read_file(file_hash, tmp_path / "out.bin", progress=seen.append)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert sum(seen) == len(data)

    buffer = io.BytesIO(b"head:")
    buffer.seek(0, io.SEEK_END)
    repo.write_to(file_hash, buffer)  # not a file: written in order
    assert buffer.getvalue() == b"head:" + data

    with open(tmp_path / "log.bin", "wb") as f:
        f.write(b"before ")
    with open(tmp_path / "log.bin", "ab") as f:  # positional writes would ignore O_APPEND
        repo.write_to(file_hash, f)
        f.write(b" after")
    assert (tmp_path / "log.bin").read_bytes() == b"before " + data + b" after"

    with open(tmp_path / "offset.bin", "wb") as f:
        f.write(b"prefix")
        repo.write_to(file_hash, f)
        assert f.tell() == 6 + len(data)
        f.write(b"suffix")
    assert (tmp_path / "offset.bin").read_bytes() == b"prefix" + data + b"suffix"


def test_iterating_a_file_can_stop_early(repo: Repository) -> None:
    data = random_bytes(30 * MiB, seed=22)
    file_hash = repo.add_bytes(data).file_hash
    pieces = repo.iter_file(file_hash)
    first = next(pieces)
    assert data.startswith(first)
    pieces.close()  # the prefetching threads stop with it


def test_a_version_made_of_older_frames_heads_reads_back_decoding_less(repo: Repository, tmp_path: Path) -> None:
    """A file that reuses pieces of an older one's zstd frames (heads, middles, out of
    order) reads back whole, streamed and by range, and its frames are decoded only
    as far as it needs them: less than the whole frames."""
    from xetstore import compression

    text = "".join(f"{i},event {i * 7 % 13},user{i % 97},{i * 31 % 1009}\n" for i in range(400_000)).encode()
    repo.add_bytes(text)
    pieces = [text[2 * MiB : 3 * MiB], text[: MiB // 2], text[9 * MiB : 10 * MiB], random_bytes(100_000, seed=5)]
    again = b"".join(pieces)
    file_hash = repo.add_bytes(again).file_hash

    decoded: list[int] = []
    original = compression._decoded_prefix

    def spy(payload: bytes, want: int) -> bytes:
        decoded.append(want)
        return original(payload, want)

    compression._decoded_prefix = spy  # type: ignore[assignment]
    try:
        with Repository.open(repo.url) as fresh:  # no frames cached from adding
            assert b"".join(fresh.iter_file(file_hash)) == again
            fresh.read_file(file_hash, tmp_path / "again.bin")
            with open(tmp_path / "placed.bin", "wb") as f:  # a regular file: windows written in place
                fresh.write_to(file_hash, f)
            assert fresh.read_bytes(file_hash, MiB + 17, 2 * MiB) == again[MiB + 17 : 2 * MiB]
    finally:
        compression._decoded_prefix = original  # type: ignore[assignment]
    assert (tmp_path / "again.bin").read_bytes() == (tmp_path / "placed.bin").read_bytes() == again
    assert decoded  # some frames stopped short of their end



def test_reader_threads_wanting_one_frame_decode_it_once(tmp_path: Path) -> None:
    """Two terms of a file read the head of one frame. While one reader thread
    decodes it (its fetch held back here), the other waits for that decode rather
    than decoding the frame a second time, and the file reads back whole."""
    import threading
    import time

    from xetstore import xorb as xorb_module
    from xetstore.backends import open_backend
    from xetstore.keys import xorb_key

    from .backend_wrappers import CountingBackend

    url = str(tmp_path / "repo")
    text = "".join(f"{i},event {i * 7 % 13},user{i % 97}\n" for i in range(120_000)).encode()  # ~3 MB
    with Repository.init(url) as r:
        r.add_bytes(text)
    (text_xorb,) = [info.key for info in open_backend(url).list("xorbs/")]
    again = text[:600_000] + random_bytes(300_000, seed=8) + text[:600_000]  # terms 1 and 3: one frame's head
    with Repository.open(url) as r:
        file_hash = r.add_bytes(again).file_hash

    class Held(CountingBackend):
        """Once armed, holds back the first fetch of the text's xorb, so the other thread comes by."""

        armed, held = threading.Event(), threading.Event()

        def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
            if key == text_xorb and self.armed.is_set() and not self.held.is_set():
                self.held.set()
                time.sleep(0.3)
            return super().get(key, start, end)

    decoded: list[int] = []  # first chunk of each frame of the text's xorb decoded
    original = xorb_module._read_frame

    def spy(raw, base, footer, i, end, what, bases):  # type: ignore[no-untyped-def]
        if xorb_key(footer.xorb_hash) == text_xorb:
            decoded.append(i)
        return original(raw, base, footer, i, end, what, bases)

    xorb_module._read_frame = spy
    try:
        with Repository.open(Held(open_backend(url)), cache_dir=tmp_path / "fresh-cache") as fresh:
            Held.armed.set()  # opening read the xorb's footer; the read is what is held back
            fresh.read_file(file_hash, tmp_path / "again.bin")
    finally:
        xorb_module._read_frame = original
    assert (tmp_path / "again.bin").read_bytes() == again
    assert Held.held.is_set()  # the text's xorb was fetched and held back
    assert decoded == [0]  # its first frame, once, for both terms


def test_read_files_restores_several_files_at_once(repo: Repository, tmp_path: Path) -> None:
    """Files big and small, sharing chunks, are each written whole and exact; progress
    counts every byte once."""
    base = random_bytes(9 * MiB, seed=31)
    datas = [base, base[MiB:] + random_bytes(MiB, seed=32), b"", random_bytes(5000, seed=33), base[: 2 * MiB]]
    hashes = [repo.add_bytes(d).file_hash for d in datas]
    seen: list[int] = []
    with Repository.open(repo.url) as fresh:  # nothing decoded yet: the reads share frames as they go
        fresh.read_files([(h, tmp_path / f"f{i}") for i, h in enumerate(hashes)], progress=seen.append)
    assert [(tmp_path / f"f{i}").read_bytes() for i in range(len(datas))] == datas
    assert sum(seen) == sum(map(len, datas))


def test_read_files_writes_the_rest_and_raises_the_first_failure(repo: Repository, tmp_path: Path) -> None:
    """Big files are read side by side, small ones in turn: a failure of either kind
    leaves the others written, and the first in the given order is raised."""
    big, small = random_bytes(3 * MiB // 2, seed=34), random_bytes(3000, seed=35)
    big_hash, small_hash = repo.add_bytes(big).file_hash, repo.add_bytes(small).file_hash
    (tmp_path / "taken").write_bytes(b"keep")
    items = [
        (big_hash, tmp_path / "a"), ("0" * 64, tmp_path / "missing"), (big_hash, tmp_path / "taken"),
        (small_hash, tmp_path / "s"), (big_hash, tmp_path / "b"),
    ]  # fmt: skip
    with pytest.raises(FileNotInRepository):
        repo.read_files(items, overwrite=False)
    assert [(tmp_path / n).read_bytes() for n in ("a", "b", "s", "taken")] == [big, big, small, b"keep"]
    assert not (tmp_path / "missing").exists()
    with pytest.raises(OutputError, match="already exists"):
        repo.read_files(items[2:], overwrite=False)
