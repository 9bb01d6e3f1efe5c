"""What every benchmarked system does, and the file-tree helpers they share.

A system is fed the versions of a workload in order, one add per version, then
asked to restore the last version into an empty folder. It reports what it
keeps on disk: `stored_bytes` is its repository (what a remote or a backup
disk would hold: data, indexes, metadata, snapshots), `cache_bytes` its local
derived state that can be rebuilt (xetstore's LMDB index, restic's and borg's
caches), and `unique_bytes` the plain bytes of its distinct chunks before
compression, or None where the system cannot tell.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path

__all__ = ["System", "SystemError_", "tree_files", "tree_bytes", "disk_bytes", "run_tool", "which", "sha256_file", "vm_hwm", "tool_peak_rss"]


class SystemError_(RuntimeError):  # noqa: N801 - not the builtin SystemError
    """A system failed to add or restore; the message names the step and the tool."""


class System(ABC):
    """One configuration of one storage system."""

    name: str = ""
    description: str = ""  # its configuration, as printed with the results
    in_process: bool = True  # False for peers run as commands (their RSS is a child's)

    def missing(self) -> str | None:
        """Why this system cannot run here (printed as a note), or None."""
        return None

    def version(self) -> str:
        return ""

    @abstractmethod
    def setup(self, workdir: Path) -> None:
        """Create an empty repository under `workdir` (an empty folder)."""

    def prepare_version(self, source: Path, label: str) -> None:  # noqa: B027 (most systems have nothing to stage)
        """Untimed work before `add_version`: what a user does before the measured command
        (the git systems stage and commit the version here; the timed add is the push)."""

    @abstractmethod
    def add_version(self, source: Path, label: str) -> None:
        """Add one version: every file under `source`, as one add/backup."""

    def background(self) -> bool:
        """Work a user runs when convenient, after the adds and outside their time
        (xetstore's compact, and the gc that removes what it replaced); timed on its
        own. Returns whether the system did any."""
        return False

    @abstractmethod
    def restore(self, label: str, dest: Path) -> None:
        """Write version `label` into the empty folder `dest` (same relative paths)."""

    def restore_command(self, label: str, dest: Path) -> bool:
        """Restore version `label` into the empty folder `dest` as a user of the
        system's command line would, when that is not what `restore` times
        (xetstore-cli: `restore` reads through the library, this runs `xetstore
        restore TAG`). False, having done nothing, for systems without one."""
        return False

    @abstractmethod
    def stored_bytes(self) -> int: ...

    def cache_bytes(self) -> int:
        return 0

    def unique_bytes(self) -> int | None:
        return None

    def close(self) -> None:  # noqa: B027 (a no-op default that systems with handles override)
        """Release open handles (called once, also after a failure)."""


def tree_files(root: Path) -> list[Path]:
    """Regular files under root, as sorted relative paths."""
    root = Path(root)
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def tree_bytes(root: Path) -> int:
    """Sum of apparent file sizes under root (what the files hold)."""
    total = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


def disk_bytes(root: Path) -> int:
    """Allocated bytes under root: sparse files (an LMDB map) count what they use."""
    total = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
    return total


def which(tool: str) -> str | None:
    return shutil.which(tool)


def vm_hwm(pid: int | str = "self") -> int | None:
    """Peak RSS of one process's own address space (VmHWM), or None without /proc.

    Not ru_maxrss: Linux carries that across fork and exec, so a tool started
    from a big Python process would report the parent's peak as its own.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class _ToolPeak:
    """The largest VmHWM seen in any command run_tool started (sampled while it runs)."""

    bytes = 0


def tool_peak_rss() -> int:
    return _ToolPeak.bytes


def run_tool(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, inherit: bool = True) -> str:
    """Run a peer's command line; its failure becomes a SystemError_ with its stderr.

    `env` is added to this process's environment, or with `inherit=False` is the whole
    environment (the git systems must not see a user's GIT_DIR or XETSTORE_REPO)."""
    full_env = {**os.environ, **(env or {})} if inherit else dict(env or {})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, cwd=cwd, env=full_env, stdout=out, stderr=err, text=True)
        done = threading.Event()
        sampler = threading.Thread(target=_sample_peak, args=(proc.pid, done), daemon=True)
        sampler.start()
        # A blocking wait sees the exit at once; polling with a timeout (as before)
        # added up to 20 ms to every timed command, which per-process runs repeat.
        code = proc.wait()
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        raise SystemError_(f"`{' '.join(args[:3])} …` exited {code}: {' | '.join(tail)}")
    return stdout


def _sample_peak(pid: int, done: threading.Event) -> None:
    """Record the largest VmHWM of a running command and its descendants every 10 ms.

    Descendants count because `git push` does its work in processes it starts (git-lfs's
    hook, the transfer agents); the command's own VmHWM would be git's few MB. The
    figure is the largest single process, not their sum: peaks reached at different
    moments do not add up.
    """
    while not done.is_set():
        for member in _process_tree(pid):
            peak = vm_hwm(member)  # None once the process is gone (or reaped)
            if peak is not None:
                _ToolPeak.bytes = max(_ToolPeak.bytes, peak)
        done.wait(0.01)


def _process_tree(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc; just `pid` elsewhere).

    Children are listed per thread: Go programs such as git-lfs start them from any thread.
    """
    found, todo = [], [pid]
    while todo:
        member = todo.pop()
        found.append(member)
        try:
            tasks = os.listdir(f"/proc/{member}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{member}/task/{tid}/children") as f:
                    todo += [int(child) for child in f.read().split()]
            except OSError:
                pass
    return found


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
