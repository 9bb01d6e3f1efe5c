"""Helpers for the reliability tests: run the real CLI or a worker, damage real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).parent / "scripts" / "rel_worker.py"


def run_cli(*args: str, fault: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m xetstore ARGS` in a child process, optionally with a fault point armed."""
    env = dict(os.environ)
    env.pop("XETSTORE_FAULTPOINT", None)
    if fault:
        env["XETSTORE_FAULTPOINT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "xetstore", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def start_worker(*args: str, fault: str | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("XETSTORE_FAULTPOINT", None)
    if fault:
        env["XETSTORE_FAULTPOINT"] = fault
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def json_lines(text: str) -> list[dict]:
    """The complete JSON lines of a child's stdout (a killed child may leave half a line)."""
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def objects(repo: Path, prefix: str) -> set[str]:
    """Backend keys under `prefix` of a folder repository (temps excluded)."""
    folder = repo / prefix
    if not folder.exists():
        return set()
    return {f"{prefix}/{p.name}" for p in folder.iterdir() if not p.name.startswith(".")}


def temp_files(repo: Path) -> list[Path]:
    return [p for p in repo.rglob(".tmp-*")]


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))
