"""The package type-checks under mypy --strict and lints clean under ruff, with the
settings in pyproject.toml; and it ships py.typed so callers' checkers read its hints."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_mypy_strict_reports_nothing() -> None:
    done = run("mypy", "--no-incremental")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_reports_nothing() -> None:
    done = run("ruff", "check", "xetstore", "benchmarks", "tests", "tools")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_catches_a_type_error(tmp_path: Path) -> None:
    """The check can fail: the same settings reject a wrong call into the package."""
    bad = tmp_path / "bad.py"
    bad.write_text("from xetstore import Repository\n\nRepository.open(42)\n")
    done = run("mypy", "--strict", "--no-incremental", str(bad))
    assert done.returncode == 1 and "arg-type" in done.stdout, done.stdout + done.stderr


def test_package_ships_py_typed() -> None:
    assert (ROOT / "xetstore" / "py.typed").is_file()
    assert 'xetstore = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def _classes_in(hint: object) -> set[type]:
    """The xetstore classes a type hint names, inside list[...], X | None and the like."""
    found = {hint} if isinstance(hint, type) and hint.__module__.startswith("xetstore") else set()
    for arg in typing.get_args(hint):
        found |= _classes_in(arg)
    return found


def test_every_type_repository_returns_is_exported() -> None:
    import xetstore
    from xetstore import maintenance, snapshot, trees
    from xetstore.repository import Repository

    # the modules whose types repository.py names only under TYPE_CHECKING (imported on use)
    names = {n: getattr(m, n) for m in (maintenance, snapshot, trees) for n in m.__all__}
    returned: set[type] = set()
    for name, member in vars(Repository).items():
        fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        if not name.startswith("_") and callable(fn):
            returned |= _classes_in(typing.get_type_hints(fn, localns=names).get("return"))
    assert len(returned) > 8  # the walk found the report types, not nothing
    assert {c.__name__ for c in returned} <= set(xetstore.__all__)
    assert all(getattr(xetstore, c.__name__) is c for c in returned)


def test_the_wheel_ships_only_the_xetstore_package() -> None:
    """benchmarks/ (one-off scripts) stays in the source tree; `xetstore bench` is xetstore.bench."""
    import tomllib
    from setuptools import find_packages

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = find_packages(str(ROOT), include=found["include"])
    assert "xetstore.bench" in shipped and "xetstore.bench.workloads" in shipped
    assert all(p == "xetstore" or p.startswith("xetstore.") for p in shipped), shipped
    assert "benchmarks" in find_packages(str(ROOT))  # the check can fail: the tree does hold it
