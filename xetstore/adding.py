"""Adding to a repository: add sessions under a writer lease, and the commit of
their shard (clean.py cleans the streams; docs/format.md §9 gives the order)."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from .errors import DiskFull
from .faults import fault_point
from .hashing import xet_hex
from .keys import shard_key
from .maintenance import Lease, check_before_publish
from .reading import Reading
from .repository_state import Progress
from .shard import Manifest, Shard, encode_shard

if TYPE_CHECKING:
    from .clean import Cleaned, CleanSession, EarlierOf

__all__ = ["Adding", "AddResult"]

log = logging.getLogger("xetstore")


class AddResult(NamedTuple):
    file_hash: str
    size: int
    sha256: str
    new_bytes: int  # plain bytes of the chunks this add stored
    stored_bytes: int  # xorb bytes this add wrote, shared in proportion to new_bytes
    path: str | None = None


class Adding(Reading):
    """The add half of a repository handle (it reads earlier versions for delta chunks)."""

    def _add_files(
        self, paths: list[str | os.PathLike[str]], progress: Progress | None, earlier: EarlierOf
    ) -> list[AddResult]:
        from .inputs import check_input  # here: reading never needs it

        before = [check_input(p) for p in paths]  # refuse bad input before writing anything
        with self._writing() as lease, self._session() as session:
            cleaned = session.add_paths(paths, before, progress, earlier)
            return self._commit(session, [(c, os.fspath(p)) for c, p in zip(cleaned, paths)], lease)

    def _earlier(self, earlier: EarlierOf, i: int, size: int) -> Sequence[Manifest]:
        """The earlier versions file `i` is cleaned against; none (and no index
        scan) unless the repository stores delta chunks."""
        return earlier(i, size) if self.config.params.delta else ()

    def _same_size(self) -> Callable[[int], list[Manifest]]:
        """Size -> stored files of that size (one index scan per add, on first use,
        when delta_bases loads too: a repository without delta chunks never asks)."""
        made: list[Callable[[int], list[Manifest]]] = []

        def lookup(size: int) -> list[Manifest]:
            if not made:
                from .delta_bases import SameSize

                made.append(SameSize(self._index))
            return made[0](size)

        return lookup

    def add_stream(
        self, stream: BinaryIO, expected_sha256: str | None = None, progress: Progress | None = None, size: int | None = None
    ) -> AddResult:
        """Add one binary stream; with `expected_sha256`, refuse other content.
        With its `size` known and delta chunks on, the most recently added stored
        files of that size are its earlier versions (git-lfs names no path)."""
        expected = bytes.fromhex(expected_sha256) if expected_sha256 else None
        with self._writing() as lease, self._session() as session:
            same_size = self._same_size()
            earlier = self._earlier(lambda _, n: same_size(n), 0, size) if size is not None else ()
            cleaned = session.add_stream(stream, expected, progress, earlier=earlier)
            return self._commit(session, [(cleaned, None)], lease)[0]

    def add_bytes(self, data: bytes) -> AddResult:
        return self.add_stream(io.BytesIO(data))

    def _session(self) -> CleanSession:
        from .chunking import make_chunker
        from .clean import CleanSession

        if self._chunker is None:
            self._chunker = make_chunker(self.config.params.chunker)
        spool = self.cache_dir / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        if self._held is not None and self._workers is None:
            from .xorb_writer import SessionWorkers

            self._workers = SessionWorkers(self._backend, self.config.params)
        return CleanSession(self._backend, self._index, self.config.params, self._chunker, str(spool), self._workers)

    @contextmanager
    def adding(self) -> Iterator[None]:
        """Adds inside share what each would set up and tear down: one writer lease,
        taken by the first that needs it (gc cannot sweep until the end), and the
        threads and buffers that clean. Each still makes its shard durable and
        commits it before it returns. For a git-lfs agent's many small objects."""
        from .maintenance import SessionLease

        held = self._held = SessionLease(self._backend, self._merge)
        try:
            yield
        finally:
            workers, self._held, self._workers = self._workers, None, None
            try:
                if workers is not None:
                    workers.close()  # its last publishes end under the lease
            finally:
                held.release()

    @contextmanager
    def _writing(self, sync: bool = False) -> Iterator[Lease]:
        """A writer lease (gc deletes nothing meanwhile) and an index synced under it:
        this call's own, or the held one, synced when taken and again if `sync`."""
        if self._held is not None:
            lease, taken = self._held.current()
            if sync and not taken:
                self._merge()
            yield lease
            return
        with Lease.writer(self._backend) as lease:
            self._merge()
            yield lease

    def _commit(self, session: CleanSession, cleaned: list[tuple[Cleaned, str | None]], lease: Lease) -> list[AddResult]:
        """Write ordering: xorbs durable -> shard published (its bytes synced under a
        temp name meanwhile) -> index -> return.

        If the index knows a file of the session, it is synced again first: a
        file another client removed while this session ran is not stored any
        more and must be recorded again, or a gc would take its chunks. A file
        counts as stored only if every xorb its manifest names exists (checked
        in `finish`, under the lease). A session of files the index does not
        know records them all, so it skips that sync: listing every shard per
        git-lfs object made a push of many small files slower with every push.
        """
        if session.knows_a_file():
            self._merge()
        shard = session.finish(int(time.time()))
        staged = None
        try:
            if shard is not None:
                key, shard, data = self._new_shard(shard)
                # Written and synced while the last xorb publishes (a small git-lfs
                # object's upload waited for one sync after the other); visible only below.
                staged = self._backend.stage(key, data)
            session.wait_durable()
            fault_point("repository.after_xorbs")
            lease.check()  # the xorbs were checked while no gc could sweep
            if shard is not None and staged is not None:
                check_before_publish(self._backend, lease, shard, self._index.xorb_key)
                staged.publish()
                fault_point("repository.after_shard")
                self._record(key, shard)
                fault_point("repository.after_index")
        except BaseException:
            if staged is not None:
                staged.discard()
            raise
        return _results(cleaned, session.uploaded_bytes)

    def _new_shard(self, shard: Shard) -> tuple[str, Shard, bytes]:
        """The shard's key, itself and its bytes, made new if the index holds the same bytes:
        a file removed and added again within the second. The deletion record names that
        shard, so a later time must make this one new, or the file would stay deleted."""
        data = encode_shard(shard)
        key = shard_key(data)
        while self._index.has_shard(key):
            shard = shard._replace(created=shard.created + 1)
            data = encode_shard(shard)
            key = shard_key(data)
        return key, shard, data

    def _record(self, key: str, shard: Shard) -> None:
        """Merge our own durable shard; the files are stored even if the index's disk is full."""
        try:
            self._index.add_shard(key, shard)
        except DiskFull as exc:
            log.warning("stored (%s is durable), but the index could not record it (%s); "
                        "the next command merges it once the index has space", key, exc)  # fmt: skip


def _results(cleaned: list[tuple[Cleaned, str | None]], uploaded: int) -> list[AddResult]:
    """One result per stream; the session's xorb bytes are shared by new bytes."""
    total_new = sum(c.new_bytes for c, _ in cleaned)
    results, given = [], 0
    for n, (c, path) in enumerate(cleaned):
        if n == len(cleaned) - 1:
            share = uploaded - given
        else:
            share = uploaded * c.new_bytes // total_new if total_new else 0
        given += share
        results.append(AddResult(xet_hex(c.file_hash), c.size, c.sha256.hex(), c.new_bytes, share, path))
    return results
