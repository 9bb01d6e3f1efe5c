"""The package type-checks under mypy --strict and lints clean under ruff, with the
settings in pyproject.toml; and it ships py.typed so callers' checkers read its hints."""

from __future__ import annotations

import subprocess
import sys
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
