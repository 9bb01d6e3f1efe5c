"""Real-data workloads: files real programs built, assembled once by an explicit prepare step.

    python -m xetstore.bench.workloads.real [--cache DIR] [--wheel FILE ...]

The generated workloads imitate real data; these are real data. The prepare step takes
consecutive releases of a real package as wheels (by default it asks pip to download the
CPython 3.11 manylinux x86_64 wheels of numpy 2.1.0-2.2.0, about 80 MB, whatever interpreter
runs it; wheels already downloaded are reused; `--wheel` uses wheel files you already have
instead), and builds two workloads under the bench cache:

- `real-libs`: the shared libraries (`*.so*`) of each release, one version per release:
  what a build-artifact store sees (compiled code, relinked between releases).
- `real-releases`: every file of each release, unpacked (about 1000 files each).

The database written by a real program is the `database` workload (SQLite via the stdlib
`sqlite3`, with updates, deletes and VACUUM). Each folder records its sources (wheel names
and sha256) in `.sources.json`. Nothing is downloaded while the bench runs: an unprepared
real workload is skipped with a line that names this command.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path, PurePosixPath

from .wheels import Keep, download_wheels, sha256, unpack

__all__ = ["REAL_WORKLOADS", "DEFAULT_WHEELS", "prepared", "prepare_from_wheels", "not_prepared_note"]

REAL_WORKLOADS = {
    "real-libs": "shared libraries (.so) of consecutive numpy releases, from their wheels",
    "real-releases": "consecutive numpy releases, every file of each wheel unpacked",
}
DEFAULT_WHEELS = ("numpy==2.1.0", "numpy==2.1.1", "numpy==2.1.2", "numpy==2.1.3", "numpy==2.2.0")


def _folder(name: str, cache_dir: Path) -> Path:
    return Path(cache_dir) / "real" / name


def prepared(name: str, cache_dir: Path) -> Path | None:
    """The folder of a prepared real workload, or None when it was not prepared."""
    folder = _folder(name, cache_dir)
    return folder if (folder / ".complete").exists() else None


def not_prepared_note(name: str, cache_dir: Path) -> str:
    return (f"workload {name}: not prepared, skipped; prepare it once with "
            f"`python -m xetstore.bench.workloads.real --cache {cache_dir}` (downloads numpy wheels via pip)")  # fmt: skip


def _is_lib(path: PurePosixPath) -> bool:
    return ".so" in path.suffixes  # libfoo.so, libgomp.so.1, _core.cpython-311-x86_64-linux-gnu.so


def _everything(path: PurePosixPath) -> bool:
    return True


def prepare_from_wheels(wheels: list[Path], cache_dir: Path) -> dict[str, Path]:
    """Build both real workloads from wheels given in release order; returns their folders."""
    if len(wheels) < 2:
        raise ValueError("a real workload needs at least two consecutive releases (wheels)")
    from . import build_folder

    done = {}
    for name, keep in (("real-libs", _is_lib), ("real-releases", _everything)):
        folder = _folder(name, cache_dir)
        build_folder(folder, functools.partial(_unpack_versions, wheels, keep=keep))
        done[name] = folder
    return done


def _unpack_versions(wheels: list[Path], dest: Path, *, keep: Keep) -> None:
    sources = []
    for n, wheel in enumerate(wheels, 1):
        version = dest / f"v{n:02d}"
        version.mkdir()
        unpack(wheel, version, keep)
        sources.append({"version": version.name, "wheel": Path(wheel).name, "sha256": sha256(wheel)})
    (dest / ".sources.json").write_text(json.dumps(sources, indent=1) + "\n")


def main() -> None:
    from . import default_cache_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=None, help="the bench cache (default as `xetstore bench`)")
    ap.add_argument("--wheel", type=Path, action="append", help="a wheel to use, in release order (repeatable)")
    args = ap.parse_args()
    cache = args.cache or default_cache_dir()
    wheels = args.wheel or download_wheels(list(DEFAULT_WHEELS), cache / "real" / "wheels")
    for name, folder in prepare_from_wheels(wheels, cache).items():
        print(f"prepared {name} in {folder} from {len(wheels)} wheels")


if __name__ == "__main__":
    main()
