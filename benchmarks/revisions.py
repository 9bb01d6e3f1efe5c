"""Revisions to compare: a git worktree per revision, byte-compiled like an installed package.

An A/B of start-up is only fair if both sides load compiled bytecode. `pip install`
compiles a package; a fresh worktree has no `__pycache__`, and where
PYTHONDONTWRITEBYTECODE is set (as on these machines) Python never writes one, so a
worktree recompiled every module on every run: measured with the same code on both
sides, `import xetstore.cli` took ~100 ms from a new worktree and ~80 ms from the
checkout. Both sides are therefore compiled before anything is timed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["ROOT", "add_worktree", "compile_tree", "remove_worktree"]


def compile_tree(tree: Path) -> None:
    """Write the bytecode of the tree's package, as `pip install` would."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "xetstore")], check=True, capture_output=True)


def add_worktree(path: Path, rev: str) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(path), rev], check=True)
    compile_tree(path)
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)
