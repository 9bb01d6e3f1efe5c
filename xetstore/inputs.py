"""Which paths an add reads: regular files only, and nothing skipped in silence.

A FIFO or a device would hang an add or feed it forever, so only regular
files are read. Walking a directory, an entry that cannot be added (an
unreadable file or subdirectory, a FIFO, a device, a socket, a link to a
directory or to nothing) is an error naming it; `skip_unreadable` turns those
into a list the caller reports as warnings. A symbolic link to a regular file
is followed: its target's bytes are stored under the link's path (a Hugging
Face snapshot directory is made of such links). Links to directories are not
followed, so a walk cannot loop.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

from .errors import InputError

__all__ = ["Expanded", "expand_inputs", "check_input", "open_input", "changed_since"]

_SKIP_HINT = "pass --skip-unreadable to skip what cannot be read"


class Expanded(NamedTuple):
    files: list[str]
    skipped: list[InputError]  # only with skip_unreadable


def expand_inputs(paths: Iterable[str | os.PathLike[str]], skip_unreadable: bool = False) -> Expanded:
    """The regular files `paths` name, directories walked in sorted order."""
    out = Expanded([], [])
    for p in paths:
        path = os.fspath(p)
        try:
            if os.path.isdir(path):
                out.files.extend(_walk(path, skip_unreadable, out.skipped))
            else:
                check_input(path)
                out.files.append(path)
        except InputError as exc:
            if not skip_unreadable or exc.reason == "no such file":  # a typo is never skipped
                raise
            out.skipped.append(exc)
    return out


def _walk(top: str, skip_unreadable: bool, skipped: list[InputError]) -> Iterator[str]:
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        _problem(_error(top, exc, "directory"), skip_unreadable, skipped)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, skip_unreadable, skipped)
            continue
        try:
            check_input(entry.path)
        except InputError as exc:
            _problem(exc, skip_unreadable, skipped)
            continue
        yield entry.path


def _problem(exc: InputError, skip_unreadable: bool, skipped: list[InputError]) -> None:
    if not skip_unreadable:
        raise InputError(exc.path, f"{exc.reason}; {_SKIP_HINT}")
    skipped.append(exc)


def check_input(path: str | os.PathLike[str]) -> os.stat_result:
    """The stat of `path` if it is a readable regular file (following a link), else
    InputError; without opening it (an open costs as much as cleaning a small file)."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        if os.path.islink(p):
            raise InputError(p, "is a symbolic link to nothing (its target is missing)") from None
        raise _error(p, exc) from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        if os.path.islink(p):
            raise InputError(p, "is a symbolic link to a directory (not followed)")
        raise InputError(p, "is a directory (the command line adds directories recursively)")
    if not stat.S_ISREG(mode):
        raise InputError(p, f"is not a regular file but a {_kind(mode)}; only regular files are added")
    if not os.access(p, os.R_OK):
        raise InputError(p, "permission denied")
    return st


def open_input(path: str | os.PathLike[str]) -> BinaryIO:
    p = os.fspath(path)
    try:
        return open(p, "rb")
    except OSError as exc:
        raise _error(p, exc) from None


def changed_since(path: str | os.PathLike[str], before: os.stat_result, size_read: int) -> bool:
    """Whether the file at `path` changed since `before` was taken, or did not hold
    the `size_read` bytes an add read from it."""
    try:
        after = os.stat(path)
    except OSError:
        return True  # removed or replaced while it was read
    then = (before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    now = (after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns)
    return then != now or size_read != before.st_size


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _error(p: str, exc: OSError, what: str = "file") -> InputError:
    if isinstance(exc, IsADirectoryError):
        return InputError(p, "is a directory (the command line adds directories recursively)")
    if isinstance(exc, FileNotFoundError):
        return InputError(p, "no such file" if what == "file" else f"no such {what}")
    if isinstance(exc, PermissionError):
        return InputError(p, "permission denied" if what == "file" else f"permission denied (a {what})")
    return InputError(p, exc.strerror or str(exc))
