"""The git-lfs standalone transfer agent: read requests, move objects through a repository.

git-lfs starts eight of these per transfer, one after the other, and waits for
each `init` reply, so `init` only finds the repository's URL; the repository
itself (index, shards, imports) is opened on the first request. Every
per-object failure becomes a `complete` carrying an error that names the object
and the cause: a crash would show users nothing but `EOF`. stderr is invisible
to users, so the agent logs to `.git/lfs/logs/xetstore.log`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from ..errors import (
    AccessDenied,
    BackendError,
    DiskFull,
    HashMismatch,
    InputError,
    LfsProtocolError,
    LockedError,
    NotFound,
    RepositoryNotFound,
    TransientBackendError,
    XetStoreError,
)
from .gitconfig import RepositoryLocation, Workspace, find_workspace, locate_repository, read_config, read_lfsconfig
from .protocol import (
    CODE_INIT,
    MAX_LINE,
    AgentProtocol,
    DownloadRequest,
    InitRequest,
    Refusal,
    Terminate,
    TransferRequest,
    UploadRequest,
    encode_complete,
    encode_error,
    encode_init_error,
    encode_progress,
)

if TYPE_CHECKING:
    from ..repository import Repository

__all__ = ["run_agent", "main", "Locate", "LOG_NAME"]

log = logging.getLogger("xetstore")

Locate = Callable[[InitRequest], tuple[Workspace, RepositoryLocation]]

LOG_NAME = "xetstore.log"
_LOG_ROTATE = 16 * 1024 * 1024
_PROGRESS_INTERVAL = 0.1  # seconds between progress lines
# Uploads this large take turns (per repository, per machine): eight agents
# cleaning several versions of one big file at once could not dedup them
# against each other, since none has committed its chunks yet.
_SERIAL_UPLOAD = 16 * 1024 * 1024


class _Progress:
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


class _Agent:
    def __init__(self, out: BinaryIO, locate: Locate) -> None:
        self._out = out
        self._locate = locate
        self._protocol = AgentProtocol()
        self._workspace: Workspace | None = None
        self._location: RepositoryLocation | None = None
        self._repo: Repository | None = None

    def send(self, line: bytes) -> None:
        self._out.write(line)
        self._out.flush()

    def handle(self, line: bytes) -> bool:
        """Act on one line; False once git-lfs said terminate."""
        step = self._protocol.receive(line)
        if isinstance(step, Terminate):
            log.info("terminate")
            return False
        if isinstance(step, Refusal):
            log.warning("refused message %r: %s", line[:200], step.reason)
            self.send(step.line)
        elif isinstance(step, InitRequest):
            self.send(self._init(step))
        else:
            self._transfer(step)
        return True

    def _init(self, request: InitRequest) -> bytes:
        try:
            self._workspace, self._location = self._locate(request)
        except XetStoreError as exc:
            log.error("init failed: %s", exc)
            return encode_init_error(CODE_INIT, f"xetstore: {exc}")
        except Exception as exc:  # the agent's top level: never crash into an `EOF`
            log.exception("init failed")
            return encode_init_error(CODE_INIT, f"xetstore: internal error: {type(exc).__name__}: {exc}")
        log.info("init %s remote=%r repository=%s (%s)", request.operation, request.remote,
                 self._location.url, self._location.source)  # fmt: skip
        return self._protocol.started(request)

    def _transfer(self, request: TransferRequest) -> None:
        progress = _Progress(self.send, request.oid, request.size)
        progress.start()
        started = time.monotonic()
        try:
            if isinstance(request, UploadRequest):
                reply = self._upload(request, progress)
            else:
                reply = self._download(request, progress)
        except (XetStoreError, OSError) as exc:
            log.warning("%s %s failed: %s", _verb(request), request.oid, exc)
            reply = encode_error(request.oid, _code(exc), self._describe(request, exc))
        except Exception as exc:  # the agent's top level: one bad object must not end the session
            log.exception("%s %s failed", _verb(request), request.oid)
            cause = f"internal error: {type(exc).__name__}: {exc} (details in {LOG_NAME})"
            reply = encode_error(request.oid, 500, self._describe(request, cause))
        else:
            log.info("%s %s (%d bytes) in %.3f s", _verb(request), request.oid, request.size, time.monotonic() - started)
        self.send(reply)

    def _describe(self, request: TransferRequest, cause: object) -> str:
        where = self._location.url if self._location else "?"
        return f"{_verb(request)} of object {request.oid} ({where}) failed: {cause}"

    def repository(self) -> Repository:
        if self._repo is None:
            from ..repository import Repository  # here, not at the top: keeps init cheap

            assert self._location is not None
            self._repo = Repository.open(self._location.url)
            log.info("opened repository %s (cache %s)", self._repo.url, self._repo.cache_dir)
        return self._repo

    def _upload(self, request: UploadRequest, progress: _Progress) -> bytes:
        assert self._workspace is not None
        if not self._workspace.contains(request.path):
            raise LfsProtocolError(f"upload path {request.path} is outside this git repository ({self._workspace.git_dir})")
        repo = self.repository()
        if repo.find(request.oid) is not None:
            log.info("upload %s: already in the repository", request.oid)
        else:
            with _open_object(request) as f, _taking_turns(repo.cache_dir, request.size):
                if repo.find(request.oid) is None:  # another agent may have added it meanwhile
                    _add(repo, f, request, progress)
        progress.finish()
        return encode_complete(request.oid)

    def _download(self, request: DownloadRequest, progress: _Progress) -> bytes:
        assert self._workspace is not None
        repo = self.repository()
        file_hash = repo.find(request.oid)
        if file_hash is None and repo.sync():  # pushed since we opened the repository?
            file_hash = repo.find(request.oid)
        if file_hash is None:
            raise NotFound(f"it is not in this repository (it was never pushed here; source: {self._location_source()})")
        size = repo.manifest(file_hash).size
        if size != request.size:
            raise LfsProtocolError(f"its pointer says {request.size} bytes, but the repository holds {size} bytes")
        path = _rebuild(repo, file_hash, request.oid, self._workspace.tmp_dir, progress)
        progress.finish()
        return encode_complete(request.oid, path)

    def _location_source(self) -> str:
        return self._location.source if self._location else "?"

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None


@contextmanager
def _open_object(request: UploadRequest) -> Iterator[BinaryIO]:
    """git-lfs's copy of the object, opened read-only (it owns the file)."""
    try:
        f = open(request.path, "rb")
    except OSError as exc:
        raise InputError(request.path, exc.strerror or str(exc)) from None
    with f:
        actual = os.fstat(f.fileno()).st_size
        if actual != request.size:
            raise InputError(request.path, f"has {actual} bytes, but git-lfs says the object has {request.size}")
        yield f


@contextmanager
def _taking_turns(cache_dir: Path, size: int) -> Iterator[None]:
    if size < _SERIAL_UPLOAD:
        yield
        return
    with open(cache_dir / "lfs-upload.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        yield


def _add(repo: Repository, f: BinaryIO, request: UploadRequest, progress: _Progress) -> None:
    try:
        repo.add_stream(f, expected_sha256=request.oid, progress=progress.advance)
    except HashMismatch as exc:
        raise HashMismatch(
            f"{request.path}", request.oid, exc.actual,
            "its content is not the object git-lfs named; the local LFS object is damaged or "
            "changed while being read (run `git lfs fsck`); nothing was stored",
        ) from None  # fmt: skip


def _rebuild(repo: Repository, file_hash: str, oid: str, tmp_dir: Path, progress: _Progress) -> str:
    """Write the object into git-lfs's tmp dir (same filesystem as its objects: it
    renames the file there) and check its sha256; no file is left on failure."""
    import hashlib
    import tempfile

    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{oid}.xetstore-", suffix=".tmp", dir=tmp_dir)
    try:
        sha = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for data in repo.iter_file(file_hash):
                sha.update(data)
                out.write(data)
                progress.advance(len(data))
        if sha.hexdigest() != oid:
            raise HashMismatch(f"object {oid} rebuilt from {repo.url}", oid, sha.hexdigest())
        os.chmod(name, 0o666 & ~_umask())
    except BaseException:
        os.unlink(name)
        raise
    return name


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _verb(request: TransferRequest) -> str:
    return "upload" if isinstance(request, UploadRequest) else "download"


_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (LfsProtocolError, 400), (InputError, 422), (HashMismatch, 422), (AccessDenied, 403),
    (DiskFull, 507), (TransientBackendError, 503), (BackendError, 502), (LockedError, 423),
    (NotFound, 404), (PermissionError, 403), (FileNotFoundError, 404),
)  # fmt: skip


def _code(exc: BaseException) -> int:
    """HTTP-like codes: git-lfs prints them as `[404] ...`."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return 507
    return next((code for kind, code in _CODES if isinstance(exc, kind)), 500)


def _lines(stdin: BinaryIO) -> Iterator[bytes]:
    while True:
        line = stdin.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := stdin.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass  # drop the rest of an oversized line; the protocol refuses it
        if line.strip():
            yield line


def run_agent(stdin: BinaryIO, stdout: BinaryIO, locate: Locate) -> int:
    """Serve one git-lfs session on these streams until terminate or end of input."""
    agent = _Agent(stdout, locate)
    try:
        for line in _lines(stdin):
            if not agent.handle(line):
                break
    except BrokenPipeError:
        log.warning("git-lfs closed the pipe")  # it stopped listening; nothing left to tell it
    finally:
        agent.close()
    return 0


def main(repo_option: str | None = None) -> int:
    """The agent as git-lfs runs it: protocol on stdin/stdout, log in .git/lfs/logs."""
    out = _protocol_stdout()
    try:
        config = read_config()
        workspace = find_workspace(config=config)
        failure: XetStoreError | None = None
    except XetStoreError as exc:
        workspace, failure = None, exc
    _start_log(workspace)

    def locate(request: InitRequest) -> tuple[Workspace, RepositoryLocation]:
        if failure is not None or workspace is None:
            raise failure or LfsProtocolError("no git repository")
        location = locate_repository(
            repo_option, os.environ, config, lambda: read_lfsconfig(workspace), request.remote, request.operation
        )
        _check_folder(location)
        return workspace, location

    return run_agent(sys.stdin.buffer, out, locate)


def _protocol_stdout() -> BinaryIO:
    """Keep the real stdout for protocol lines only; anything a library prints
    goes to stderr (git-lfs's trace) instead of corrupting the protocol."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return out


def _check_folder(location: RepositoryLocation) -> None:
    """A missing folder repository is an init error, cheaply: one stat, no open."""
    url = location.url
    if "://" in url and not url.startswith("file://"):
        return  # remote backends are checked when first used
    path = Path(unquote(urlsplit(url).path) if url.startswith("file://") else url).expanduser()
    if not (path / "config").is_file():
        raise RepositoryNotFound(str(path), f"it has no config; named by {location.source}")


def _start_log(workspace: Workspace | None) -> None:
    target = os.environ.get("XETSTORE_LOG") or (str(workspace.logs_dir / LOG_NAME) if workspace else "")
    if not target:
        return
    try:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > _LOG_ROTATE:
            os.replace(path, path.with_name(path.name + ".1"))
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return  # no log is better than no agent
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
