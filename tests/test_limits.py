"""Resource limits users set for real: an address-space limit (`ulimit -v`).

The index's LMDB map used to be 64 GiB of address space from the start, so
under any `ulimit -v` below that every command failed, with a hint to repair
an index that was fine. The map now starts small and doubles when full.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from xetstore import Repository

from .rel_support import json_lines
from .samples import random_bytes, write_file

LIMIT_KIB = 2 * 1024 * 1024  # 2 GiB: ample for the interpreter and its threads


def limited(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "xetstore", *args))
    return subprocess.run(["bash", "-c", f"ulimit -v {LIMIT_KIB} && exec {cmd}"], capture_output=True, text=True, timeout=120)


def test_commands_work_under_an_address_space_limit(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    Repository.init(str(repo_dir)).close()
    files = [write_file(tmp_path / "in" / f"f{n}", random_bytes(400_000, n)) for n in range(30)]
    added = limited("add", "-r", str(repo_dir), "--json", str(tmp_path / "in"))
    assert added.returncode == 0, added.stderr
    listed = limited("ls", "-r", str(repo_dir), "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json_lines(listed.stdout)) == len(files)
    fh = json_lines(added.stdout)[0]["file_hash"]
    got = limited("get", "-r", str(repo_dir), fh, "-o", str(tmp_path / "out"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out").read_bytes() == files[0].read_bytes()
