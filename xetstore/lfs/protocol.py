"""The git-lfs custom transfer protocol: messages, their validation, the agent's states.

git-lfs and the agent exchange one JSON object per line. git-lfs sends `init`
once, then `upload` or `download` requests one at a time, then `terminate`; the
agent answers `init` with `{}` or an error, and each request with `progress`
lines and one `complete`, which carries an `error` when that object failed.

Everything here is pure: lines in, values out, lines back. The agent loop
(agent.py) does the I/O and talks to the repository.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from ..errors import LfsProtocolError

__all__ = [
    "InitRequest",
    "UploadRequest",
    "DownloadRequest",
    "TransferRequest",
    "Terminate",
    "Refusal",
    "Step",
    "AgentProtocol",
    "MAX_LINE",
    "MAX_OBJECT_SIZE",
    "CODE_INIT",
    "CODE_BAD_REQUEST",
    "encode_init_ok",
    "encode_init_error",
    "encode_progress",
    "encode_complete",
    "encode_error",
]

MAX_LINE = 1 << 20  # git-lfs lines are a few hundred bytes; anything near this is garbage
MAX_OBJECT_SIZE = 1 << 40  # 1 TiB: larger "sizes" are corrupt pointers, not objects

CODE_INIT = 32  # init errors; git-xet uses the same code
CODE_BAD_REQUEST = 400  # per-object codes are HTTP-like so `[404] ...` reads naturally

_OID = re.compile(r"[0-9a-f]{64}")
_OPERATIONS = ("upload", "download")


class InitRequest(NamedTuple):
    operation: str  # "upload" or "download"
    remote: str  # usually a git remote name, sometimes a URL
    concurrent: bool
    concurrent_transfers: int


class UploadRequest(NamedTuple):
    oid: str
    size: int
    path: str  # git-lfs's own copy of the object: read-only for the agent


class DownloadRequest(NamedTuple):
    oid: str
    size: int


TransferRequest = UploadRequest | DownloadRequest


class Terminate:
    """git-lfs is done; it closes stdin next. No reply. (A plain class: an empty
    named tuple would be false.)"""

    __slots__ = ()


class Refusal(NamedTuple):
    """A message the agent cannot accept; `line` is the error to send back."""

    line: bytes
    reason: str


Step = InitRequest | UploadRequest | DownloadRequest | Terminate | Refusal


class AgentProtocol:
    """The agent's side of one session: new -> ready(operation) -> terminated.

    `receive` turns each line into the next step. Illegal input never raises:
    it becomes a Refusal with the reply git-lfs expects at that point (an init
    error before init, a failed `complete` for that oid afterwards), so the
    agent keeps serving.
    """

    def __init__(self) -> None:
        self.operation: str | None = None
        self.terminated = False

    def receive(self, line: bytes) -> Step:
        try:
            doc = _decode(line)
        except LfsProtocolError as exc:
            return self._refuse("", exc.reason)
        oid = doc["oid"] if isinstance(doc.get("oid"), str) else ""
        try:
            return self._accept(doc)
        except LfsProtocolError as exc:
            return self._refuse(oid, exc.reason, doc.get("event") == "init")

    def _accept(self, doc: dict[str, Any]) -> Step:
        event = doc.get("event")
        if self.terminated:
            raise LfsProtocolError(f"received {event!r} after terminate")
        if event == "init":
            if self.operation is not None:
                raise LfsProtocolError("received a second init; one process serves one session")
            return _init(doc)
        if event == "terminate":
            self.terminated = True
            return Terminate()
        if event in _OPERATIONS:
            if self.operation is None:
                raise LfsProtocolError(f"received {event} before init")
            if event != self.operation:
                raise LfsProtocolError(f"received {event} in a {self.operation} session")
            return _upload(doc) if event == "upload" else _download(doc)
        raise LfsProtocolError(f"unknown event {event!r}; expected init, upload, download or terminate")

    def started(self, request: InitRequest) -> bytes:
        """The agent accepted `request`: the session is ready; reply `{}`."""
        self.operation = request.operation
        return encode_init_ok()

    def _refuse(self, oid: str, reason: str, to_init: bool = False) -> Refusal:
        if self.operation is None or to_init:
            return Refusal(encode_init_error(CODE_INIT, f"xetstore agent: {reason}"), reason)
        what = f"object {oid}: " if oid else ""
        return Refusal(encode_error(oid, CODE_BAD_REQUEST, f"{what}invalid request: {reason}"), reason)


def _decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise LfsProtocolError(f"message of {len(line)} bytes is too long")
    try:
        doc = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise LfsProtocolError(f"malformed message, not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise LfsProtocolError(f"malformed message, not a JSON object: {_excerpt(line)}")
    return doc


def _init(doc: dict[str, Any]) -> InitRequest:
    operation = doc.get("operation")
    if operation not in _OPERATIONS:
        raise LfsProtocolError(f"init has operation {operation!r}, expected upload or download")
    remote = doc.get("remote", "")
    if not isinstance(remote, str):
        raise LfsProtocolError("init has a remote that is not a string")
    transfers = doc.get("concurrenttransfers", 1)
    if not isinstance(transfers, int) or isinstance(transfers, bool) or transfers < 0:
        transfers = 1  # display only: never a reason to refuse a session
    return InitRequest(operation, remote, bool(doc.get("concurrent", True)), transfers)


def _oid_and_size(doc: dict[str, Any]) -> tuple[str, int]:
    oid = doc.get("oid")
    if not isinstance(oid, str) or not _OID.fullmatch(oid):
        raise LfsProtocolError(f"oid {oid!r} is not a sha256 (64 lowercase hex digits)")
    size = doc.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        raise LfsProtocolError(f"size {size!r} is not an integer")
    if not 0 <= size <= MAX_OBJECT_SIZE:
        raise LfsProtocolError(f"size {size} is out of range (0 to {MAX_OBJECT_SIZE} bytes)")
    return oid, size


def _upload(doc: dict[str, Any]) -> UploadRequest:
    oid, size = _oid_and_size(doc)
    path = doc.get("path")
    if not isinstance(path, str) or not path or "\0" in path:
        raise LfsProtocolError(f"upload path {path!r} is not a file path")
    return UploadRequest(oid, size, path)


def _download(doc: dict[str, Any]) -> DownloadRequest:
    oid, size = _oid_and_size(doc)
    return DownloadRequest(oid, size)


def _excerpt(line: bytes, limit: int = 80) -> str:
    text = line.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _line(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def encode_init_ok() -> bytes:
    return _line({})


def encode_init_error(code: int, message: str) -> bytes:
    return _line({"error": {"code": code, "message": message}})


def encode_progress(oid: str, bytes_so_far: int, bytes_since_last: int) -> bytes:
    return _line({"event": "progress", "oid": oid, "bytesSoFar": bytes_so_far, "bytesSinceLast": bytes_since_last})


def encode_complete(oid: str, path: str | None = None) -> bytes:
    doc: dict[str, Any] = {"event": "complete", "oid": oid}
    if path is not None:
        doc["path"] = path
    return _line(doc)


def encode_error(oid: str, code: int, message: str) -> bytes:
    return _line({"event": "complete", "oid": oid, "error": {"code": code, "message": message}})
