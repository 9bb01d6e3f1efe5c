"""Chunk cut points found by a helper process, beside the add that stores the chunks.

fastcdc's loop holds the GIL, and in a large add it was half the time the
interpreter's lock was held (py-spy --gil, torch's shared libraries): the
compression threads were idle half the time, waiting for it. A helper process
(`cutting.main`, in a new interpreter) reads the same file and sends the cut
points back, so chunking runs on the other core while this process hashes,
dedups and packs. The bytes stored are always the ones this process reads; the
helper only says where to cut them, and its cuts are the in-process chunker's
(the same code on the same bytes, and cuts never depend on how input is read).

Protocol, both ways over pipes, in the machine's byte order: a request is (st_dev u64,
st_ino u64, block size u32, path length u32, path). The helper answers with
messages of (count u32, count absolute chunk ends u64): one per block it cut,
then count 0 at the end of the file, or _FAILED when it cannot read the file it
was asked for (or it is another file than the requester's). Anything unusual -
no helper, a helper that died, a file that shrank or grew while it was read - falls
back to cutting in this process from the last cut both agree on.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
from array import array
from collections.abc import Iterable, Iterator
from typing import IO, BinaryIO, cast

from .chunking import Block, Chunker, fill, iter_blocks
from .params import MAX_CHUNK

__all__ = ["Cutter", "CUT_APART_FROM", "CUTTER_START_FROM", "helper_command", "main"]

log = logging.getLogger("xetstore")

# A stream this large is cut by the helper once it runs: each file waits 3.5-6.5 ms
# for its first cuts (the helper opens, reads and cuts a block), and cutting 16 MiB
# in this process costs ~12 ms (fastcdc runs at ~1.3 GB/s).
CUT_APART_FROM = 16 << 20
# A stream this large, or streams of CUT_APART_FROM and more this large together
# (met so far, or about to be added: Cutter.expect), start the helper. Its first cuts arrive 50-60 ms after the start
# (an interpreter and fastcdc's import), which this process waits: started from
# 64 MiB, adds of an 87 MiB model were 7 % slower (process_ab, real-model); cutting
# 256 MiB in this process costs ~200 ms.
CUTTER_START_FROM = 256 << 20

_REQUEST = struct.Struct("<QQII")
_COUNT = struct.Struct("<I")
_FAILED = 0xFFFFFFFF


class Cutter:
    """A helper process that cuts files into chunks for this one; started on demand."""

    def __init__(self, chunker: str) -> None:
        self._chunker = chunker
        self._proc: subprocess.Popen[bytes] | None = None
        self._broken = False  # a helper failed: cut in this process from then on
        self._busy = threading.Lock()  # one file at a time; a second thread cuts its own
        self._large_seen = 0  # bytes of the streams of CUT_APART_FROM and more met so far

    def start(self) -> None:
        """Start the helper now, so that it is ready by the time a large file comes."""
        if self._proc is not None or self._broken:
            return
        try:
            self._proc = subprocess.Popen(helper_command(self._chunker), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as exc:
            log.debug("chunk cutting helper not started (%s); cutting in this process", exc)
            self._broken = True

    def expect(self, sizes: Iterable[int]) -> None:
        """Start the helper now if files of these sizes are about to be added and together
        worth it (shards of a model or a dataset): it gets ready while the files before
        the large ones are read."""
        if sum(n for n in sizes if n >= CUT_APART_FROM) >= CUTTER_START_FROM:
            self.start()

    def close(self) -> None:
        """Stop the helper (it exits when its input closes)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass  # a dead helper's input: what was buffered for it is moot
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def blocks(self, stream: BinaryIO, chunker: Chunker, block_size: int) -> Iterator[Block]:
        """The blocks of `stream` as iter_blocks yields them, cut by the helper when it
        is worth it and possible (a regular file read from its start, by path)."""
        size = _file_size(stream)
        if size >= CUT_APART_FROM:
            self._large_seen += size
        if self._large_seen >= CUTTER_START_FROM:  # one large file, or many (a git-lfs agent's objects)
            self.start()
        if size < CUT_APART_FROM or self._proc is None or not self._busy.acquire(blocking=False):
            yield from iter_blocks(stream, chunker, block_size)
            return
        try:
            yield from self._helped(stream, chunker, block_size)
        finally:
            self._busy.release()

    def _helped(self, stream: BinaryIO, chunker: Chunker, block_size: int) -> Iterator[Block]:
        buffers = [memoryview(bytearray(block_size + MAX_CHUNK)) for _ in range(2)]
        pos = which = 0
        cuts = self._cuts(stream, block_size)
        finished = False
        try:
            for ends in cuts:
                buf = buffers[which][: ends[-1] - pos]
                got = fill(stream, buf)
                if got < len(buf):  # shrank since the helper read it
                    stream = cast(BinaryIO, _Prefixed(bytes(buf[:got]), stream))
                    break
                yield Block(buf, [end - pos for end in ends])
                pos, which = ends[-1], which ^ 1
            for _ in cuts:
                pass  # the helper's answers for a file that shrank, unused
            finished = True
        finally:
            if not finished:
                self._abandon()  # its answers for this file were not all read
        # After the helper's end of file or its failure, what is left (if anything) is cut here.
        yield from iter_blocks(stream, chunker, block_size)

    def _cuts(self, stream: BinaryIO, block_size: int) -> Iterator[list[int]]:
        """The helper's cuts of `stream`'s file, a list of absolute ends per block; it
        stops early (the caller cuts the rest) if the helper fails."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        st = os.fstat(stream.fileno())
        path = os.fsencode(os.path.abspath(stream.name))  # the helper's working directory is the one it started in
        try:
            proc.stdin.write(_REQUEST.pack(st.st_dev, st.st_ino, block_size, len(path)) + path)
            proc.stdin.flush()
            while True:
                (count,) = _COUNT.unpack(_read_exactly(proc.stdout, _COUNT.size))
                if count == 0 or count == _FAILED:
                    return
                ends = array("Q")
                ends.frombytes(_read_exactly(proc.stdout, 8 * count))
                yield ends.tolist()
        except (OSError, EOFError, ValueError) as exc:
            log.debug("chunk cutting helper failed (%s); cutting in this process", exc)
            self._abandon()

    def _abandon(self) -> None:
        """Stop a helper whose answers can no longer be matched to requests."""
        self.close()
        self._broken = True


def _file_size(stream: BinaryIO) -> int:
    """The size of a regular file read from its start and opened by path, else 0."""
    try:
        if not isinstance(getattr(stream, "name", None), str) or stream.tell() != 0:
            return 0
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _read_exactly(pipe: IO[bytes], n: int) -> bytes:
    data = pipe.read(n)
    if len(data) != n:
        raise EOFError("the chunk cutting helper stopped")
    return data


class _Prefixed(io.RawIOBase):
    """`prefix` and then the rest of `stream`, as one readable stream."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """The position in the underlying stream that the next byte read comes from
        (the prefix is the bytes before the stream's own position)."""
        return self._stream.tell() - len(self._prefix)

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(target), len(self._prefix))
            target[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._stream.readinto(target)  # type: ignore[attr-defined,no-any-return]


def helper_command(chunker: str) -> list[str]:
    """The command line of a helper process for `chunker` (this package, this interpreter)."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import sys; sys.path.insert(0, sys.argv[1]); from xetstore.cutting import main; main(sys.argv[2])"
    return [sys.executable, "-c", code, package_root, chunker]


def main(chunker_name: str) -> None:
    """The helper process: serve requests on stdin until it closes."""
    # Ctrl-C reaches the whole process group: the requester decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        serve(chunker_name, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:
        # The requester went away mid-answer (interrupted, or done with the file):
        # nothing to tell, and nothing for the exit's flush to complain about.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def serve(chunker_name: str, requests: BinaryIO, answers: BinaryIO) -> None:
    """The helper's loop: answer each request with the cuts of the file it names."""
    from .chunking import make_chunker

    chunker = make_chunker(chunker_name)
    while True:
        head = requests.read(_REQUEST.size)
        if len(head) < _REQUEST.size:
            return  # the requester closed its end
        dev, ino, block_size, length = _REQUEST.unpack(head)
        path = os.fsdecode(requests.read(length))
        try:
            _answer(path, (dev, ino), chunker, block_size, answers)
        except OSError:
            answers.write(_COUNT.pack(_FAILED))
        answers.flush()


def _answer(path: str, identity: tuple[int, int], chunker: Chunker, block_size: int, answers: BinaryIO) -> None:
    # Read, not mapped: mapping cost as much CPU as the copy (measured on torch's libraries).
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if (st.st_dev, st.st_ino) != identity:
            answers.write(_COUNT.pack(_FAILED))  # another file than the requester's
            return
        pos = 0
        for block in iter_blocks(f, chunker, block_size):
            ends = array("Q", (pos + end for end in block.ends))
            answers.write(_COUNT.pack(len(ends)) + ends.tobytes())
            answers.flush()
            pos += len(block.data)
    answers.write(_COUNT.pack(0))
