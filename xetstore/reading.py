"""Reading a repository's files: a file hash -> its manifest -> verified bytes,
whole into a path, streamed, or any byte range (smudge.py rebuilds them)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import FileNotInRepository, FormatError, IndexUnusable, MissingData, XetStoreError
from .hashing import from_xet_hex, xet_hex
from .repository_state import Progress, RepositoryState
from .shard import Manifest

__all__ = ["Reading", "Writable"]


class Writable(Protocol):
    """What `Repository.write_to` writes into."""

    def write(self, data: bytes | memoryview, /) -> object: ...


class Reading(RepositoryState):
    """The read half of a repository handle."""

    def manifest(self, file_hash: str) -> Manifest:
        raw = _parse_file_hash(file_hash)
        m = self._index.manifest(raw)
        if m is None:
            self.sync()
            m = self._index.manifest(raw)
        if m is None:
            raise FileNotInRepository(file_hash)
        if m.file_hash != raw:  # a damaged index must not serve another file's bytes
            raise IndexUnusable(str(self._index.path), f"its entry for file {file_hash} names another file")
        return m

    def read_file(
        self,
        file_hash: str,
        dest_path: str | os.PathLike[str],
        progress: Progress | None = None,
        overwrite: bool = True,
    ) -> None:
        """Write a file to `dest_path` (output.py: no partial file, umask mode, a device
        or FIFO written in place, a link refused); with overwrite False, never replace."""
        self._write_path(self.manifest(file_hash), dest_path, progress, overwrite, ahead=True)

    def read_files(
        self,
        files: Iterable[tuple[str, str | os.PathLike[str]]],
        progress: Progress | None = None,
        overwrite: bool = True,
    ) -> None:
        """read_file for each (file hash, destination); files of 1 MiB and more two at
        a time (file_batches.py). Every file is attempted; the first failure, in the
        given order, is raised after the rest."""
        items = list(files)
        found = [self._manifest_or_error(file_hash) for file_hash, _ in items]
        self._read_batch(found, [d for _, d in items], progress, overwrite)

    def _read_batch(
        self,
        found: list[Manifest | XetStoreError],
        dests: Sequence[str | os.PathLike[str]],
        progress: Progress | None,
        overwrite: bool,
    ) -> None:
        from .file_batches import read_batch

        def read_one(i: int, ahead: bool) -> None:
            manifest = found[i]
            if isinstance(manifest, XetStoreError):
                raise manifest
            self._write_path(manifest, dests[i], progress, overwrite, ahead)

        read_batch([m.size if isinstance(m, Manifest) else None for m in found], read_one)

    def _manifest_or_error(self, file_hash: str) -> Manifest | XetStoreError:
        try:
            return self.manifest(file_hash)
        except XetStoreError as exc:
            return exc  # read_files raises it in its turn

    def _write_path(
        self, manifest: Manifest, dest_path: str | os.PathLike[str], progress: Progress | None, overwrite: bool, ahead: bool
    ) -> None:
        from .destination import write_output  # only commands that write files load it

        write_output(Path(dest_path), lambda out: self._write_resuming(manifest, out, progress, ahead), overwrite)

    def _write_resuming(self, manifest: Manifest, out: BinaryIO, progress: Progress | None, ahead: bool) -> None:
        """A file's verified bytes into `out`: a regular file is written by the reader
        threads at their offsets (the main thread's in-order writes were a quarter of
        a dataset restore), rewritten once after a re-sync if a xorb vanished mid-read
        (gc repacked it while this index was older); a stream resumes where it was."""
        if not out.seekable():
            for data in _counted(self._iter_resuming(manifest), progress):
                out.write(data)
            return
        start = out.tell()
        try:
            self._reconstructor.write_file(manifest, out, progress, ahead)
        except MissingData:
            out.seek(start)
            out.truncate()
            self._reconstructor.write_file(self._fresh_manifest(xet_hex(manifest.file_hash)), out, progress, ahead)

    def write_to(self, file_hash: str, out: Writable, progress: Progress | None = None) -> None:
        """Stream a file's bytes, in order, into anything with a binary `write` (a file,
        a pipe, a writer that hashes on the way): views of the verified chunks, no copies."""
        for data in self._iter_resuming(self.manifest(file_hash)):
            out.write(data)
            if progress:
                progress(len(data))

    def iter_file(self, file_hash: str) -> Iterator[bytes]:
        return (bytes(data) for data in self._iter_resuming(self.manifest(file_hash)))

    def _iter_resuming(self, manifest: Manifest) -> Iterator[bytes | memoryview]:
        """A file's verified bytes; if a xorb vanished mid-read (gc repacked it while
        this index was older), re-sync once and resume at the same offset."""
        done = 0
        try:
            for data in self._reconstructor.iter_file(manifest):
                done += len(data)
                yield data
            return
        except MissingData:
            pass
        with self.open_file(xet_hex(manifest.file_hash)) as f:  # re-syncs on the same error
            f.seek(done)
            while block := f.read(8 << 20):
                yield block

    def open_file(self, file_hash: str) -> io.BufferedReader:
        """A seekable binary file object that fetches only the chunks reads need."""
        from .file_reader import FileReader

        raw = FileReader(self._reconstructor, self.manifest(file_hash), lambda: self._fresh_manifest(file_hash))
        return io.BufferedReader(raw, buffer_size=256 * 1024)

    def _fresh_manifest(self, file_hash: str) -> Manifest:
        self.sync()  # rebuilds the index when gc replaced shards
        return self.manifest(file_hash)

    def read_bytes(self, file_hash: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of a file (end None = to the end)."""
        with self.open_file(file_hash) as f:
            size = f.raw.size  # type: ignore[attr-defined]
            stop = size if end is None else min(end, size)
            if start >= stop:
                return b""
            f.seek(start)
            return f.read(stop - start)


def _parse_file_hash(text: str) -> bytes:
    try:
        return from_xet_hex(text)
    except FormatError:
        raise FileNotInRepository(text, "a file hash is 64 hex digits, as `xetstore ls` prints") from None


def _counted(blocks: Iterator[bytes | memoryview], progress: Progress | None) -> Iterator[bytes | memoryview]:
    for data in blocks:
        yield data
        if progress:
            progress(len(data))
