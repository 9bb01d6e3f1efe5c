"""The xorbs of one add session: the open one, spooled to a file while it is
built, and the sealed ones, published on worker threads.

A xorb is never held whole in memory: its records are written to a spool file
as the builder compresses them (in a folder backend the spool is published by
a hard link). A few sealed xorbs (64 MiB each) upload while the next one fills,
so memory stays bounded and a remote backend's latency overlaps the chunking.

The threads, frame buffers and chunk-cutting helper process live in `SessionWorkers`, which a session makes
for itself or borrows from a repository that runs many adds in a row.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from pathlib import Path
from typing import BinaryIO

from .backends import Backend
from .cutting import Cutter
from .destination import new_temp_file
from .errors import BackendError, DiskFull
from .faults import fault_point
from .packing import FrameBuffers, SealedXorb, XorbBuilder
from .params import MAX_CHUNK, RepositoryParams
from .shard import ShardXorb

__all__ = ["XorbWriter", "SessionWorkers", "REMOTE_UPLOADS"]

_WORKERS = min(4, os.cpu_count() or 2)
# Xorbs uploading at once to a remote backend (one request each); a local one gets one.
REMOTE_UPLOADS = 3


class SessionWorkers:
    """The threads and frame buffers of clean sessions, made per session or kept
    for many in a row: a git-lfs upload of a small object spent a fifth of its
    time starting three threads and zeroing two 1 MiB buffers. A pool starts its
    threads on first use."""

    def __init__(self, backend: Backend, params: RepositoryParams) -> None:
        # Compression runs here while the caller's thread chunks and hashes; it releases the GIL.
        self.compress = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="xetstore-clean")
        self.in_flight = REMOTE_UPLOADS if backend.remote else 1
        self.publish = ThreadPoolExecutor(self.in_flight, thread_name_prefix="xetstore-publish")
        # One thread: the whole-stream sha256 must see the blocks in order.
        self.sha256 = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xetstore-sha256")
        self.buffers = FrameBuffers(params.frame_bytes + MAX_CHUNK)
        # Cuts large files in a process of its own, started by the first large file.
        self.cutter = Cutter(params.chunker)

    def close(self) -> None:
        for pool in (self.publish, self.compress, self.sha256):
            pool.shutdown(wait=True, cancel_futures=True)
        self.cutter.close()


class XorbWriter:
    """Builds xorbs one after another and publishes each as soon as it is sealed."""

    def __init__(
        self, backend: Backend, params: RepositoryParams, workers: SessionWorkers, spool_dir: str | None = None
    ) -> None:
        self._backend = backend
        self._params = params
        self._workers = workers
        self._spool_dir = backend.spool_dir() or spool_dir or _system_temp()
        self._spool: tuple[str, _Spool] | None = None
        self._publishing: deque[Future[None]] = deque()
        self.sealed: list[ShardXorb] = []  # xorbs this session wrote (their tables only)
        self.uploaded_bytes = 0  # serialized xorb bytes this session wrote
        self._builder: XorbBuilder | None = None

    @property
    def builder(self) -> XorbBuilder:
        """The open xorb, the session's next sealed one; its spool file is made on first
        use, so a session that ends with a seal (every add) does not make one in vain."""
        if self._builder is None:
            self._builder = self._new_builder()
        return self._builder

    def _new_builder(self) -> XorbBuilder:
        try:
            path, fd = new_temp_file(self._spool_dir, ".tmp-xorb-")
        except OSError as exc:
            raise _spool_error(self._spool_dir, exc) from None
        self._spool = (path, _Spool(path, open(fd, "wb", buffering=1 << 20)))  # noqa: SIM115 (the spool owns it)
        w = self._workers
        return XorbBuilder.for_params(self._params, w.compress, w.buffers, self._spool[1])  # type: ignore[arg-type]

    def seal(self) -> None:
        """Seal the open xorb (if it holds a chunk) and start publishing it."""
        if self._builder is None or self._builder.num_chunks == 0:
            return
        sealed = self._builder.seal()
        assert self._spool is not None
        path, sink = self._spool
        sink.close()
        self._builder, self._spool = None, None
        self.sealed.append(ShardXorb(sealed.footer, sealed.size, sealed.deltas))
        self.uploaded_bytes += sealed.size
        self.wait(keep=self._workers.in_flight - 1)
        self._publishing.append(self._workers.publish.submit(self._publish, sealed, path))

    def wait(self, keep: int = 0) -> None:
        """Until at most `keep` xorbs are still uploading; re-raises an upload's error."""
        while len(self._publishing) > keep:
            self._publishing.popleft().result()

    def _publish(self, sealed: SealedXorb, spool: str) -> None:
        try:
            fault_point("clean.before_xorb")
            self._backend.put(sealed.key, Path(spool))
        finally:
            os.unlink(spool)
        fault_point("clean.after_xorb")

    def close(self) -> None:
        """End the session: its publishes finish (at most `in_flight`, all running), and
        the open xorb's spool goes. Frames still compressing are left to the workers:
        they only read buffers the abandoned builder never gives back."""
        wait_all(self._publishing)
        self._publishing.clear()
        if self._spool is not None:  # the open xorb of a session that did not finish
            path, spool = self._spool
            self._spool = None
            try:
                spool.close()
            except BackendError:
                pass  # a full disk while giving up: the file goes anyway
            os.unlink(path)


class _Spool:
    """The file a xorb is written to while it is built; its errors are ours."""

    def __init__(self, path: str, file: BinaryIO) -> None:
        self._path = path
        self._file = file

    def write(self, data: bytes | memoryview) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            raise _spool_error(self._path, exc) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            raise _spool_error(self._path, exc) from None


def _system_temp() -> str:
    import tempfile  # only for a session given no spool folder (its import costs every add)

    return tempfile.gettempdir()


def _spool_error(path: str, exc: OSError) -> BackendError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFull(f"xorb spool {path}", exc.strerror or "no space left on device")
    return BackendError(f"xorb spool {path}", exc.strerror or str(exc))
