"""The git-lfs standalone transfer agent: read requests, move objects through a repository.

git-lfs starts up to eight of these per transfer, one after the other, and waits
for each `init` reply before it sends any request, so `init` only finds the
repository's URL; the repository itself (index, shards, the engine's imports)
is opened on the first request. Uploads share one writer lease and the
threads and buffers that clean, taken by the first that needs them and released
at terminate: made per object, they were about half the time of a small upload.
Every per-object failure becomes a `complete` carrying an error that names the
object and the cause: a crash would show users nothing but `EOF`. stderr is
invisible to users, so the agent logs to `.git/lfs/logs/xetstore.log`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from ..errors import AccessDenied, LfsProtocolError, RepositoryNotFound, XetStoreError
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
)
from .transfer import Progress, download, error_code, upload

if TYPE_CHECKING:
    from ..repository import Repository

__all__ = ["run_agent", "main", "Locate", "LOG_NAME"]

log = logging.getLogger("xetstore")

Locate = Callable[[InitRequest], tuple[Workspace, RepositoryLocation]]

LOG_NAME = "xetstore.log"
_LOG_ROTATE = 16 * 1024 * 1024


class _Agent:
    def __init__(self, out: BinaryIO, locate: Locate) -> None:
        self._out = out
        self._locate = locate
        self._protocol = AgentProtocol()
        self._workspace: Workspace | None = None
        self._location: RepositoryLocation | None = None
        self._repo: Repository | None = None
        self._open = ExitStack()  # the repository, then its session lease: closed in reverse

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
        progress = Progress(self.send, request.oid, request.size)
        progress.start()
        started = time.monotonic()
        try:
            if isinstance(request, UploadRequest):
                reply = self._upload(request, progress)
            else:
                reply = self._download(request, progress)
        except (XetStoreError, OSError) as exc:
            log.warning("%s %s failed: %s", _verb(request), request.oid, exc)
            reply = encode_error(request.oid, error_code(exc), self._describe(request, exc))
        except Exception as exc:  # the agent's top level: one bad object must not end the session
            log.exception("%s %s failed", _verb(request), request.oid)
            cause = f"internal error: {type(exc).__name__}: {exc} (details in .git/lfs/logs/{LOG_NAME})"
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
            repo = self._open.enter_context(Repository.open(self._location.url))
            # One writer lease and one set of clean threads for the session, released
            # at terminate: made per object, they were half the time of a small upload.
            self._open.enter_context(repo.adding())
            self._repo = repo
            log.info("opened repository %s (cache %s)", repo.url, repo.cache_dir)
        return self._repo

    def _upload(self, request: UploadRequest, progress: Progress) -> bytes:
        assert self._workspace is not None
        upload(self.repository(), self._workspace, request, progress)
        return encode_complete(request.oid)

    def _download(self, request: DownloadRequest, progress: Progress) -> bytes:
        assert self._workspace is not None and self._location is not None
        path = download(self.repository(), self._workspace, request, progress, self._location.source)
        return encode_complete(request.oid, path)

    def close(self) -> None:
        self._repo = None
        self._open.close()


def _verb(request: TransferRequest) -> str:
    return "upload" if isinstance(request, UploadRequest) else "download"


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
        _check_folder(location, request.operation)
        return workspace, location

    return run_agent(sys.stdin.buffer, out, locate)


def _protocol_stdout() -> BinaryIO:
    """Keep the real stdout for protocol lines only; anything a library prints
    goes to stderr (git-lfs's trace) instead of corrupting the protocol."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return out


def _check_folder(location: RepositoryLocation, operation: str) -> None:
    """A missing folder repository is an init error, cheaply (one stat, no open),
    except that an upload creates it: the first push makes the repository, as
    users of folder-based agents expect. A download never creates one."""
    url = location.url
    if "://" in url and not url.startswith("file://"):
        return  # remote backends are checked when first used
    path = Path(unquote(urlsplit(url).path) if url.startswith("file://") else url).expanduser()
    try:
        (path / "config").stat()
    except PermissionError:
        raise AccessDenied(str(path), f"permission denied reading the repository; named by {location.source}") from None
    except OSError:
        if operation != "upload":
            raise RepositoryNotFound(str(path), f"it has no config; named by {location.source}") from None
        _create_for_first_push(path, location)


def _create_for_first_push(path: Path, location: RepositoryLocation) -> None:
    from ..errors import ConfigError
    from ..repository import Repository  # here: only the first push pays for the engine

    try:
        with Repository.init(str(path)):
            pass
    except ConfigError:
        return  # another agent of this push (or another machine) created it first
    log.info("created repository %s for the first push (named by %s; default chunker and compression)",
             path, location.source)  # fmt: skip


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
