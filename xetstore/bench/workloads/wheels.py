"""Wheels for the real-data workloads: fetched by pip at prepare time, matched by file name.

A source is a pinned requirement (`numpy==2.1.0`). pip is asked for the CPython 3.11
manylinux x86_64 wheel whatever interpreter runs the prepare step, so a workload holds
the same bytes on every machine. A wheel already in the download folder, or given by the
user, is used as it is: preparing again needs no index.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

__all__ = ["Keep", "download_wheels", "find_wheel", "pick", "matches", "unpack", "sha256"]

Keep = Callable[[PurePosixPath], bool]  # which members of a wheel a workload takes

# The interpreter and platform the workloads are defined for (not the one running pip).
# pip does not widen an explicit manylinux_2_28 to older glibc tags, so 2014 is listed too.
_TARGET = (
    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
)  # fmt: skip
_ABIS = {"cp311", "abi3", "none"}


def _canonical(name: str) -> str:
    """A distribution name as wheel file names spell it (PEP 503 folding, `_` separators)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _parts(wheel: Path) -> tuple[str, str, str, str] | None:
    """(distribution, version, abi tags, platform tags) of a wheel file name, None if not one."""
    fields = wheel.name.removesuffix(".whl").split("-")
    if not wheel.name.endswith(".whl") or len(fields) not in (5, 6):
        return None
    return _canonical(fields[0]), fields[1], fields[-2], fields[-1]


def matches(spec: str, wheel: Path, exact: bool = True) -> bool:
    """Whether `wheel` holds the release `spec` (`name==version`) pins.

    With exact=False a spec without a local label also takes a local build, as pip does
    (`torch==2.13.0` is satisfied by `2.13.0+cpu`)."""
    name, _, version = spec.partition("==")
    parts = _parts(wheel)
    if parts is None or parts[0] != _canonical(name):
        return False
    return parts[1] == version or (not exact and "+" not in version and parts[1].split("+")[0] == version)


def _fits(wheel: Path) -> bool:
    """Built for the target: CPython 3.11 (or any Python), manylinux x86_64 (or any platform)."""
    parts = _parts(wheel)
    if parts is None or not _ABIS & set(parts[2].split(".")):
        return False
    platforms = parts[3].split(".")
    return platforms == ["any"] or any(p.startswith("manylinux") and p.endswith("_x86_64") for p in platforms)


def pick(spec: str, wheels: list[Path]) -> Path | None:
    """The first of `wheels` that holds `spec`, preferring an exact version to a local build."""
    for exact in (True, False):
        hits = [p for p in wheels if matches(spec, p, exact)]
        if hits:
            return hits[0]
    return None


def find_wheel(spec: str, folder: Path) -> Path | None:
    """The wheel of `spec` in `folder` built for the target (see _TARGET)."""
    return pick(spec, sorted(p for p in Path(folder).glob("*.whl") if _fits(p)))


def download_wheels(specs: list[str], dest: Path) -> list[Path]:
    """The wheel of each spec, in order: found in `dest`, else fetched there by pip (no deps)."""
    dest.mkdir(parents=True, exist_ok=True)
    found = []
    for spec in specs:
        wheel = find_wheel(spec, dest)
        if wheel is None:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                                   *_TARGET, "-d", str(dest), spec], check=False)  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"pip could not download {spec} (exit {proc.returncode}); {_hint(spec)}")
            wheel = find_wheel(spec, dest)
        if wheel is None:
            raise RuntimeError(f"pip download {spec} left no matching wheel in {dest}")
        found.append(wheel)
    return found


def _hint(spec: str) -> str:
    if "+cpu" in spec:  # PyTorch publishes its CPU builds on its own index, not on PyPI
        return "set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu, or give the wheel with --wheel FILE"
    return "give the wheel with --wheel FILE"


def _members(wheel: zipfile.ZipFile, keep: Keep) -> list[zipfile.ZipInfo]:
    found = []
    for info in wheel.infolist():
        path = PurePosixPath(info.filename)
        if info.is_dir() or ".." in path.parts or path.is_absolute():
            continue  # a wheel's members are relative paths; refuse anything else
        if keep(path):
            found.append(info)
    return found


def unpack(wheel_path: Path, dest: Path, keep: Keep) -> None:
    """Unpack the kept members, streamed: torch's libtorch_cuda.so alone is 500 MB."""
    with zipfile.ZipFile(wheel_path) as wheel:
        for info in _members(wheel, keep):
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with wheel.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def sha256(path: Path) -> str:
    """Recorded with each source, so a prepared workload names the exact file it came from."""
    from ..systems.base import sha256_file

    return sha256_file(path)
