"""One object through a repository: the upload and download halves of the agent.

An upload cleans git-lfs's copy of the object into the repository, checking its
sha256 on the way; a download rebuilds the object into git-lfs's tmp dir and
checks it before git-lfs renames it into place. Both report progress, and raise
xetstore errors that the agent turns into per-object replies.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..errors import (
    AccessDenied,
    BackendError,
    DiskFull,
    HashMismatch,
    InputError,
    LfsProtocolError,
    LockedError,
    NotFound,
    TransientBackendError,
)
from .gitconfig import Workspace
from .protocol import DownloadRequest, UploadRequest, encode_progress

if TYPE_CHECKING:
    from ..hashing import Sha256
    from ..repository import Repository

__all__ = ["Progress", "upload", "download", "error_code", "SERIAL_UPLOAD"]

log = logging.getLogger("xetstore")

_PROGRESS_INTERVAL = 0.1  # seconds between progress lines
# Uploads this large take turns (per repository, per machine): eight agents
# cleaning several versions of one big file at once could not dedup them
# against each other, since none has committed its chunks yet.
SERIAL_UPLOAD = 16 * 1024 * 1024


class Progress:
    """Progress lines for one transfer: one at once (git-lfs holds back its other
    workers until worker 0 reports bytes), then at most every 0.1 s, then `size`."""

    def __init__(self, send: Callable[[bytes], None], oid: str, size: int) -> None:
        self._send, self._oid, self._size = send, oid, size
        self._done = self._sent = 0
        self._last = 0.0

    def start(self) -> None:
        self._report(1)

    def advance(self, n: int) -> None:
        self._done += n
        now = time.monotonic()
        if now - self._last >= _PROGRESS_INTERVAL:
            self._report(self._done)

    def finish(self) -> None:
        self._report(self._size)

    def _report(self, so_far: int) -> None:
        so_far = min(so_far, self._size)
        if so_far > self._sent:
            self._send(encode_progress(self._oid, so_far, so_far - self._sent))
            self._sent, self._last = so_far, time.monotonic()


def upload(repo: Repository, workspace: Workspace, request: UploadRequest, progress: Progress) -> None:
    """Clean the object into the repository unless it is there; return once its shard is durable."""
    if not workspace.contains(request.path):
        raise LfsProtocolError(f"upload path {request.path} is outside this git repository ({workspace.git_dir})")
    # Skipped only if it is really stored: sha256 and size agree, every xorb exists.
    # An object the index does not know goes straight to the add, whose sync (one
    # listing of the shards per object) would find it if another client stored it.
    if repo.find_stored(request.oid, request.size, sync=False) is not None:
        log.info("upload %s: already in the repository", request.oid)
    else:
        with _open_object(request) as f, _taking_turns(repo.cache_dir, request.size) as waited:
            if not waited or repo.find_stored(request.oid, request.size) is None:  # another agent may have added it meanwhile
                _add(repo, f, request, progress)
    progress.finish()


def download(repo: Repository, workspace: Workspace, request: DownloadRequest, progress: Progress, source: str) -> str:
    """Rebuild the object into the LFS tmp dir; return the file's path."""
    file_hash = repo.find(request.oid)
    if file_hash is None and repo.sync():  # pushed since we opened the repository?
        file_hash = repo.find(request.oid)
    if file_hash is None:
        raise NotFound(f"it is not in this repository (it was never pushed here; repository named by {source})")
    size = repo.manifest(file_hash).size
    if size != request.size:
        raise LfsProtocolError(f"its pointer says {request.size} bytes, but the repository holds {size} bytes")
    path = _rebuild(repo, file_hash, request.oid, workspace.tmp_dir, progress)
    progress.finish()
    return path


_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (LfsProtocolError, 400), (InputError, 422), (HashMismatch, 422), (AccessDenied, 403),
    (DiskFull, 507), (TransientBackendError, 503), (BackendError, 502), (LockedError, 423),
    (NotFound, 404), (PermissionError, 403), (FileNotFoundError, 404),
)  # fmt: skip


def error_code(exc: BaseException) -> int:
    """HTTP-like codes: git-lfs prints them as `[404] ...`."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return 507
    return next((code for kind, code in _CODES if isinstance(exc, kind)), 500)



@contextmanager
def _open_object(request: UploadRequest) -> Iterator[BinaryIO]:
    """git-lfs's copy of the object, opened read-only (it owns the file)."""
    try:
        f = open(request.path, "rb")  # noqa: SIM115 (the caller closes it)
    except OSError as exc:
        raise InputError(request.path, exc.strerror or str(exc)) from None
    with f:
        actual = os.fstat(f.fileno()).st_size
        if actual != request.size:
            raise InputError(request.path, f"has {actual} bytes, but git-lfs says the object has {request.size}")
        yield f


@contextmanager
def _taking_turns(cache_dir: Path, size: int) -> Iterator[bool]:
    """Large uploads of this machine's agents one at a time; yields whether this one took a turn."""
    if size < SERIAL_UPLOAD:
        yield False
        return
    with open(cache_dir / "lfs-upload.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        yield True


def _add(repo: Repository, f: BinaryIO, request: UploadRequest, progress: Progress) -> None:
    try:
        repo.add_stream(f, expected_sha256=request.oid, progress=progress.advance, size=request.size)
    except HashMismatch as exc:
        raise HashMismatch(
            f"{request.path}", request.oid, exc.actual,
            "its content is not the object git-lfs named; the local LFS object is damaged or "
            "changed while being read (run `git lfs fsck`); the repository did not record it",
        ) from None  # fmt: skip


def _rebuild(repo: Repository, file_hash: str, oid: str, tmp_dir: Path, progress: Progress) -> str:
    """Write the object into git-lfs's tmp dir (same filesystem as its objects: it
    renames the file there) and check its sha256; no file is left on failure."""
    from ..destination import new_file_mode, new_temp_file  # tempfile would load shutil, bz2, lzma, random
    from ..hashing import Sha256

    tmp_dir.mkdir(parents=True, exist_ok=True)
    name, fd = new_temp_file(str(tmp_dir), f"{oid}.xetstore-", ".tmp")
    try:
        sha = Sha256()
        with os.fdopen(fd, "wb") as out:
            repo.write_to(file_hash, _Hashing(out, sha), progress.advance)  # chunk views, not copies
        if sha.hexdigest() != oid:
            raise HashMismatch(f"object {oid} rebuilt from {repo.url}", oid, sha.hexdigest())
        os.chmod(name, new_file_mode())  # it was made 0600; git-lfs renames it into place as it is
    except BaseException:
        os.unlink(name)
        raise
    return name


class _Hashing:
    """Writes into `out`, hashing what it writes."""

    def __init__(self, out: BinaryIO, sha: Sha256) -> None:
        self._out = out
        self._sha = sha

    def write(self, data: bytes | memoryview) -> int:
        self._sha.update(data)
        return self._out.write(data)
