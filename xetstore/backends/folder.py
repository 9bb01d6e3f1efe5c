"""A folder backend: one file per key, written to a temp name, then linked into place.

Only immutable, complete files ever appear under their final names, so a shared
or network folder is safe for many writers; readers ignore the dot-named temps.
Every object gets 0666 and every directory 0777 less the process umask, so a
group-shared folder (umask 002, setgid directories) works for the whole group.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import AccessDenied, BackendError, DiskFull, ObjectNotFound
from ..faults import fault_point
from .base import Backend, ObjectInfo, Payload, StagedPut, validate_key

__all__ = ["FolderBackend"]

_TEMP_PREFIX = ".tmp-"


def _translate(key: str, exc: OSError) -> BackendError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFull(key, os.strerror(exc.errno or 0))
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDenied(key, f"permission denied ({exc.strerror})")
    return BackendError(key, str(exc))


class FolderBackend(Backend):
    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self.url = f"file://{self.root}"
        self._mode = 0o666 & ~_umask()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                if start:
                    f.seek(start)
                return f.read() if end is None else f.read(max(0, end - start))
        except FileNotFoundError:
            raise ObjectNotFound(key, self.url) from None
        except OSError as exc:
            raise _translate(key, exc) from None

    def put(self, key: str, data: Payload) -> bool:
        if not (isinstance(data, os.PathLike) and Path(data).parent == self.root):
            return self.stage(key, data).publish()
        path = self._path(key)  # a file spooled here (spool_dir): link it, no copy
        if path.exists():
            return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(data, self._mode)  # spooled by mkstemp, which makes it 0600 whatever the umask
            _fsync(Path(data))
            return _publish(Path(data), path)
        except OSError as exc:
            raise _translate(key, exc) from None

    def stage(self, key: str, data: Payload) -> StagedPut:
        """The bytes written and synced under a temp name now; `publish` links them."""
        path = self._path(key)
        if path.exists():
            return StagedPut(lambda: False, lambda: None)
        tmp = path.parent / f"{_TEMP_PREFIX}{os.urandom(8).hex()}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_durably(tmp, data, self._mode)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _translate(key, exc) from None

        def publish() -> bool:
            try:
                return _publish(tmp, path)
            except OSError as exc:
                raise _translate(key, exc) from None
            finally:
                tmp.unlink(missing_ok=True)

        return StagedPut(publish, lambda: tmp.unlink(missing_ok=True))

    def spool_dir(self) -> str | None:
        return str(self.root)

    def stat(self, key: str) -> ObjectInfo:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            raise ObjectNotFound(key, self.url) from None
        except OSError as exc:
            raise _translate(key, exc) from None
        return ObjectInfo(key, st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _translate(key, exc) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        folder, _, _ = prefix.rpartition("/")
        start = self.root / folder if folder else self.root
        yield from (info for info in self._walk(start, f"{folder}/" if folder else "") if info.key.startswith(prefix))

    def keys(self, prefix: str = "") -> Iterator[str]:
        folder, _, _ = prefix.rpartition("/")
        start = self.root / folder if folder else self.root
        found = self._entries(start, f"{folder}/" if folder else "")
        yield from (key for key, _entry in found if key.startswith(prefix))

    def _walk(self, folder: Path, key_prefix: str) -> Iterator[ObjectInfo]:
        for key, entry in self._entries(folder, key_prefix):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted since the directory was read
            yield ObjectInfo(key, st.st_size, st.st_mtime)

    def _entries(self, folder: Path, key_prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(key, entry) of each object under `folder`, keys starting with `key_prefix`.
        Keys are joined as strings: a Path per entry cost ~25 us, and every add lists all shards."""
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _translate(str(folder), exc) from None
        for entry in entries:
            if entry.name.startswith("."):
                continue  # temps of puts in progress (or of crashed ones)
            if entry.is_dir(follow_symlinks=False):
                yield from self._entries(Path(entry.path), f"{key_prefix}{entry.name}/")
            elif entry.is_file(follow_symlinks=False):
                yield key_prefix + entry.name, entry

    def sweep_temp(self, older_than: float) -> Sequence[str]:
        cutoff = time.time() - older_than
        removed: list[str] = []
        for path, mtime in self.temp_files():
            if mtime > cutoff:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # its put finished or another sweep got there first
            removed.append(str(path))
        return removed

    def temp_files(self) -> Iterator[tuple[Path, float]]:
        """Leftover temps of interrupted puts, with their times (for cleanup)."""
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(_TEMP_PREFIX):
                    p = Path(dirpath) / name
                    try:
                        yield p, p.stat().st_mtime
                    except FileNotFoundError:
                        continue


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_parts(path: os.PathLike[str]) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            yield piece


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_durably(tmp: Path, data: Payload, mode: int) -> None:
    if isinstance(data, os.PathLike):
        data = list(_file_parts(data))
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        for n, part in enumerate(parts):
            view = memoryview(part)
            if n == len(parts) // 2:
                half = os.write(fd, view[: len(view) // 2])
                view = view[half:]
                fault_point("folder.mid_write")  # a crash here leaves a partial temp, never a final name
            while view:
                written = os.write(fd, view)
                view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path) -> bool:
    """Link the complete temp under its final name; never replace an existing object."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # No hard links here (some FUSE/SMB mounts): a rename may replace an
        # object written meanwhile, which holds the same content-named bytes.
        os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
