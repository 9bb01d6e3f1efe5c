"""The README's command-line walk-through runs as written, with `xetstore` on PATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def block_after(heading: str) -> str:
    section = README[README.index(heading) :]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, f"no sh block after {heading}"
    return found[1]


def test_command_line_section_runs_as_written(tmp_path: Path) -> None:
    script = block_after("## Command line")
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # as `source .venv/bin/activate` does
        "HOME": str(tmp_path),
        "XETSTORE_CACHE": str(tmp_path / "cache"),
        "LANG": "C.UTF-8",
    }
    done = subprocess.run(["sh", "-ec", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "restored-v1" / "datasets" / "numbers.csv").read_text().splitlines()[-1] == "300000"
    assert (tmp_path / "numbers-v2.csv").read_text().splitlines()[-1] == "310000"
    assert "1 added" not in done.stdout and "1 changed" in done.stdout  # diff v1 v2: numbers.csv changed


def test_install_section_names_no_registry_package() -> None:
    install = block_after("## Install")
    assert "pip install /path/to/xetstore" in install and "pip install xetstore " not in README
