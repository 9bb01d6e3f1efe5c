"""One measured run: feed a system every version, restore the last, verify, measure.

Each run happens in a child process (`python -m xetstore.bench.runner`), so the
peak RSS it reports belongs to that system alone: the child's own VmHWM for
systems that run in-process (xetstore, the baselines, hf_xet; the interpreter
and numpy are included, about 40 MB), and the largest VmHWM sampled from the
commands it started for peers and the processes those start (git's hooks and the
transfer agents). Verification is never timed and never skipped: a restored tree
that differs from the source is an error in the results. A system's
`prepare_version` (staging a git commit) runs before each timed add, untimed.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .systems import System, make_system, tree_files
from .systems.base import tool_peak_rss, tree_bytes, vm_hwm

__all__ = ["measure", "run_isolated", "verify_tree", "METRICS"]

# Every metric a result carries (None where a system cannot tell).
METRICS = (
    "logical_bytes", "stored_bytes", "cache_bytes", "unique_bytes", "ratio", "dedup_ratio",
    "ingest_seconds", "ingest_mb_s", "restore_bytes", "restore_seconds", "restore_mb_s", "peak_rss_bytes",
    "background_seconds", "command_restore_mb_s",
)  # fmt: skip

AfterIngest = Callable[[System, Path], None]


def verify_tree(expected: Path, actual: Path, limit: int = 3) -> list[str]:
    """Differences between two trees (missing, extra or differing files), at most `limit`."""
    want, got = tree_files(expected), tree_files(actual)
    problems = [f"missing {p}" for p in sorted(set(want) - set(got))]
    problems += [f"unexpected {p}" for p in sorted(set(got) - set(want))]
    for rel in sorted(set(want) & set(got)):
        if len(problems) >= limit:
            break
        if _digest(expected / rel) != _digest(actual / rel):
            problems.append(f"{rel} differs")
    return problems[:limit]


def _digest(path: Path) -> tuple[int, bytes]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return size, h.digest()


def measure(system: System, versions: list[Path], workdir: Path, after_ingest: AfterIngest | None = None) -> dict[str, Any]:
    """Run `system` once in this process; a failure is reported, never raised."""
    result: dict[str, Any] = {m: None for m in METRICS}
    result["error"] = None
    result["logical_bytes"] = sum(tree_bytes(v) for v in versions)
    try:
        _ingest_and_restore(system, versions, workdir, result, after_ingest)
    except Exception as exc:  # any failure of the system under test is a result
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        system.close()
    result["peak_rss_bytes"] = (vm_hwm() or _ru_maxrss()) if system.in_process else tool_peak_rss() or None
    return result


def _ru_maxrss() -> int:
    """Fallback without /proc (may include the parent's peak, see vm_hwm)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _ingest_and_restore(
    system: System, versions: list[Path], workdir: Path, result: dict[str, Any], after_ingest: AfterIngest | None
) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    system.setup(workdir)
    seconds = 0.0
    for v in versions:
        system.prepare_version(v, v.name)  # not timed: the git systems' `git add` and commit
        start = time.perf_counter()
        system.add_version(v, v.name)
        seconds += time.perf_counter() - start
    result["ingest_seconds"] = seconds
    result["ingest_mb_s"] = result["logical_bytes"] / 1e6 / seconds if seconds > 0 else None
    if after_ingest is not None:
        after_ingest(system, workdir)
    start = time.perf_counter()
    if system.background():  # stored bytes and the restore are measured after it, as a user meets them
        result["background_seconds"] = time.perf_counter() - start
    result["stored_bytes"] = stored = system.stored_bytes()
    result["cache_bytes"] = system.cache_bytes()
    result["unique_bytes"] = unique = system.unique_bytes()
    result["ratio"] = result["logical_bytes"] / stored if stored else None
    result["dedup_ratio"] = result["logical_bytes"] / unique if unique else None
    last = versions[-1]
    result["restore_bytes"] = restored = tree_bytes(last)
    seconds = _timed_restore(system.restore, last, workdir / "restored", result)
    result["restore_seconds"] = seconds
    result["restore_mb_s"] = restored / 1e6 / seconds if seconds else None
    seconds = _timed_restore(system.restore_command, last, workdir / "restored-by-command", result)
    result["command_restore_mb_s"] = restored / 1e6 / seconds if seconds else None


def _timed_restore(restore: Callable[[str, Path], bool | None], last: Path, dest: Path, result: dict[str, Any]) -> float:
    """Seconds `restore` took to write version `last` into the new folder `dest`, 0.0 if
    it did nothing (returned False); a tree that differs is recorded as the run's error."""
    dest.mkdir()
    start = time.perf_counter()
    if restore(last.name, dest) is False:
        return 0.0
    seconds = time.perf_counter() - start
    problems = verify_tree(last, dest)
    if problems and not result["error"]:
        result["error"] = f"restore of {last.name} into {dest.name} is not byte-identical: {'; '.join(problems)}"
    return seconds


def run_isolated(system_name: str, versions: list[Path], workdir: Path) -> dict[str, Any]:
    """One run of a system in a fresh child process; the work folder is removed after."""
    workdir.mkdir(parents=True)
    out = workdir.parent / f"{workdir.name}.json"
    request = {"system": system_name, "versions": [str(v) for v in versions], "workdir": str(workdir / "w"), "out": str(out)}
    proc = subprocess.run([sys.executable, "-m", "xetstore.bench.runner"], input=json.dumps(request),
                          capture_output=True, text=True, check=False)  # fmt: skip
    try:
        if out.exists():
            done: dict[str, Any] = json.loads(out.read_text())
            return done
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        result: dict[str, Any] = {m: None for m in METRICS}
        result["error"] = f"benchmark child exited {proc.returncode}: {tail}"
        return result
    finally:
        out.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _child() -> None:
    request = json.loads(sys.stdin.read())
    workdir = Path(request["workdir"])
    workdir.mkdir(parents=True)
    result = measure(make_system(request["system"]), [Path(v) for v in request["versions"]], workdir)
    Path(request["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    _child()
