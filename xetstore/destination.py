"""Writing a stored file to a path the user named, without harming what is there.

A regular file appears whole or not at all: the bytes go to a temp file in the
same directory, which is then renamed over the path (or hard-linked to it when
an existing file must not be replaced, so a file created meanwhile is never
clobbered). Its mode is what the umask gives a new file, as with `cp`.

What is not a regular file is never replaced by one: a device or FIFO
(`/dev/null`, a pipe a reader waits on) is written in place, and a symbolic
link is refused, so a link planted in a shared directory cannot redirect the
write and a link the user made is not silently turned into a copy.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError

__all__ = ["write_output", "new_file_mode", "new_temp_file"]


def new_file_mode() -> int:
    """The mode a new file gets under the current umask (0666 minus the mask)."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def write_output(dest: Path, write: Callable[[BinaryIO], None], overwrite: bool) -> None:
    """Let `write` fill `dest`; OutputError names the path and what to do instead."""
    try:
        with _opened(dest, overwrite) as out:
            write(out)
    except OSError as exc:  # writing or renaming failed: a full disk, a vanished directory
        raise _os_error(dest, exc) from None


@contextmanager
def _opened(dest: Path, overwrite: bool) -> Iterator[BinaryIO]:
    mode = _existing_mode(dest)
    if mode is not None and not stat.S_ISREG(mode):
        with _in_place(dest, mode) as out:
            yield out
        return
    if mode is not None and not overwrite:
        raise OutputError(str(dest), "already exists; pass --force to replace it")
    with _via_temp(dest, overwrite) as out:
        yield out


def _existing_mode(dest: Path) -> int | None:
    """The mode of what `dest` names now (not following a link), or None if nothing."""
    try:
        mode = os.lstat(dest).st_mode
    except FileNotFoundError:
        if not dest.parent.is_dir():
            raise OutputError(str(dest), f"its directory {dest.parent} does not exist") from None
        return None
    except OSError as exc:
        raise _os_error(dest, exc) from None
    if stat.S_ISDIR(mode):
        raise OutputError(str(dest), "is a directory; name a file to write (e.g. DIR/NAME)")
    if stat.S_ISLNK(mode):
        raise OutputError(str(dest), "is a symbolic link; name the file it points to instead")
    return mode


@contextmanager
def _in_place(dest: Path, mode: int) -> Iterator[BinaryIO]:
    if stat.S_ISSOCK(mode):
        raise OutputError(str(dest), "is a socket; name a file, a device or a FIFO")
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_error(dest, exc) from None
    with os.fdopen(fd, "wb") as out:
        yield out


@contextmanager
def _via_temp(dest: Path, overwrite: bool) -> Iterator[BinaryIO]:
    try:
        tmp, fd = new_temp_file(str(dest.parent), f".{dest.name}.", ".xetstore-tmp")
    except OSError as exc:
        raise _os_error(dest, exc) from None
    try:
        os.fchmod(fd, new_file_mode())  # made 0600; a restored file is an ordinary file
        with os.fdopen(fd, "wb") as out:
            yield out
        _publish(tmp, dest, overwrite)
    except BaseException:
        os.unlink(tmp)
        raise


def new_temp_file(directory: str, prefix: str, suffix: str = "") -> tuple[str, int]:
    """A new file only this process can read, as `tempfile.mkstemp` makes (O_EXCL,
    0600, a random name), without importing tempfile: with shutil and the compression
    modules shutil loads, that is several milliseconds of every add and restore."""
    path = os.path.join(directory, f"{prefix}{os.urandom(8).hex()}{suffix}")
    return path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)


def _publish(tmp: str, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # fails if dest appeared meanwhile: never clobbers
    except FileExistsError:
        raise OutputError(str(dest), "already exists; pass --force to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(dest):  # a filesystem without hard links: check, then rename
            raise OutputError(str(dest), "already exists; pass --force to replace it") from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


def _os_error(dest: Path, exc: OSError) -> OutputError:
    if isinstance(exc, PermissionError):
        return OutputError(str(dest), "permission denied; choose a path you can write")
    if exc.errno == errno.ENOSPC:
        return OutputError(str(dest), "no space left on device; free some space or write elsewhere")
    return OutputError(str(dest), exc.strerror or str(exc))
