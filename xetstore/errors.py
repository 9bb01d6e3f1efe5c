"""The one exception hierarchy of xetstore.

    XetStoreError                          base; .exit_code for the command line
    ├── ConfigError (ValueError)           bad URL, parameters, unsupported repository version
    ├── NotFound (LookupError)
    │   ├── ObjectNotFound(key)            a backend key is missing
    │   ├── FileNotInRepository(file_hash) no manifest for this file hash
    │   ├── RepositoryNotFound(url)        no repository at this URL
    │   └── SnapshotNotFound(tag)          no snapshot carries this tag (or path)
    ├── AmbiguousName(name, candidates)    a hash prefix names several files
    ├── InputError                         a path the user named cannot be read
    ├── OutputError(path)                  a path the user named cannot be written
    ├── IntegrityError                     stored data is wrong: never retried, always loud
    │   ├── HashMismatch(what, expected, actual)
    │   ├── FormatError(what, reason)      bad magic, version, length or truncation
    │   ├── DecompressionError(what)
    │   └── MissingData(key, file)         a referenced xorb is gone from the backend
    ├── BackendError(key)                  storage failed
    │   ├── TransientBackendError          timeout, 5xx, throttling: retried in one place
    │   ├── AccessDenied                   credentials or permissions: permanent
    │   └── DiskFull                       no space left where the data goes
    ├── IndexUnusable(path)                the local index cannot be used; rebuild it
    ├── LockedError                        another process holds the lease
    ├── Refused                            the request would break an invariant; nothing changed
    └── LfsProtocolError(reason)           git-lfs sent something illegal

Errors carry their data as attributes; the message is built once, in ``__init__``.
"""

from __future__ import annotations

__all__ = [
    "XetStoreError",
    "ConfigError",
    "NotFound",
    "ObjectNotFound",
    "FileNotInRepository",
    "RepositoryNotFound",
    "SnapshotNotFound",
    "AmbiguousName",
    "InputError",
    "OutputError",
    "IntegrityError",
    "HashMismatch",
    "FormatError",
    "DecompressionError",
    "MissingData",
    "BackendError",
    "TransientBackendError",
    "AccessDenied",
    "DiskFull",
    "IndexUnusable",
    "LockedError",
    "Refused",
    "LfsProtocolError",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_DAMAGED",
    "EXIT_NOT_FOUND",
    "EXIT_LOCKED",
    "EXIT_ACCESS_DENIED",
    "EXIT_INTERRUPTED",
]

# Exit codes follow restic's numbering where the meaning matches.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DAMAGED = 3
EXIT_NOT_FOUND = 10
EXIT_LOCKED = 11
EXIT_ACCESS_DENIED = 12
EXIT_INTERRUPTED = 130


class XetStoreError(Exception):
    """Base of every error xetstore raises on purpose."""

    exit_code = EXIT_FAILURE


class ConfigError(XetStoreError, ValueError):
    """A URL, parameter or repository config that xetstore cannot use."""


class NotFound(XetStoreError, LookupError):
    exit_code = EXIT_NOT_FOUND


class ObjectNotFound(NotFound):
    def __init__(self, key: str, where: str = "") -> None:
        self.key = key
        self.where = where
        suffix = f" in {where}" if where else ""
        super().__init__(f"object {key} not found{suffix}")


class FileNotInRepository(NotFound):
    def __init__(self, file_hash: str, hint: str = "run `xetstore ls` to list stored files") -> None:
        self.file_hash = file_hash
        super().__init__(f"file {file_hash} is not in the repository; {hint}")


class RepositoryNotFound(NotFound):
    def __init__(self, url: str, reason: str = "") -> None:
        self.url = url
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"no xetstore repository at {url}{detail}; create one with `xetstore init {url}`"
        )


class SnapshotNotFound(NotFound):
    def __init__(self, tag: str, known: list[str], path: str = "") -> None:
        self.tag = tag
        self.known = known
        self.path = path
        if path:
            super().__init__(f"snapshot {tag} has no file {path}; run `xetstore ls {tag}` to list its paths")
        else:
            names = ", ".join(known[:20]) if known else "none yet; make one with `xetstore add --tag NAME DIR`"
            super().__init__(f"no snapshot is tagged {tag}; tags: {names}")


class AmbiguousName(XetStoreError, LookupError):
    """A prefix matches several stored files; the caller must give more digits."""

    exit_code = EXIT_USAGE

    def __init__(self, name: str, candidates: list[str]) -> None:
        self.name = name
        self.candidates = candidates
        shown = ", ".join(candidates[:10]) + (f" and {len(candidates) - 10} more" if len(candidates) > 10 else "")
        super().__init__(f"{name} is the prefix of {len(candidates)} hashes ({shown}); give more digits")


class InputError(XetStoreError):
    """A file or directory the user asked for cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot read {path}: {reason}")


class OutputError(XetStoreError):
    """A path the user asked to write to cannot (or must not) be written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot write {path}: {reason}")


class IntegrityError(XetStoreError):
    """Stored data is not what it claims to be. Never retried."""

    exit_code = EXIT_DAMAGED


class HashMismatch(IntegrityError):
    def __init__(self, what: str, expected: str, actual: str, hint: str = "") -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        self.hint = hint
        tail = f"; {hint}" if hint else "; run `xetstore check --read-data`"
        super().__init__(f"{what}: hash mismatch (expected {expected}, got {actual}){tail}")


class FormatError(IntegrityError):
    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class DecompressionError(IntegrityError):
    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: cannot decompress: {reason}")


class MissingData(IntegrityError):
    """An object that a manifest refers to is missing: data was lost."""

    def __init__(self, key: str, file: str = "") -> None:
        self.key = key
        self.file = file
        needed = f", needed by file {file}," if file else ""
        super().__init__(f"{key}{needed} is missing from the repository; run `xetstore check`")


class BackendError(XetStoreError):
    """The backend failed to get, put, list or delete a key."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


class TransientBackendError(BackendError):
    """A failure that may pass: timeouts, 5xx, throttling, dropped connections."""


class AccessDenied(BackendError):
    exit_code = EXIT_ACCESS_DENIED


class DiskFull(BackendError):
    def __init__(self, key: str, reason: str = "no space left on device") -> None:
        super().__init__(key, f"disk full ({reason}); free some space and run the command again")


class IndexUnusable(XetStoreError):
    """The local index cannot be opened or used; it is rebuildable from shards."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"index at {path}: {reason}; run `xetstore repair index` to rebuild it")


class LockedError(XetStoreError):
    exit_code = EXIT_LOCKED


class Refused(XetStoreError):
    """A request that would break an invariant (re-tagging, removing a tagged file)."""


class LfsProtocolError(XetStoreError):
    """git-lfs sent a message the agent cannot accept in its current state."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
