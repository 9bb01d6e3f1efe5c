"""File names as they come: undecodable bytes and newlines, through the real CLI.

`--json` output must be strict UTF-8 JSON (no lone surrogates), and the human
output one line per file whatever the names hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from xetstore import Repository
from xetstore.display import shown

NAMES = [b"new\nline.bin", b"bad\xff\xfename.bin", b"plain.bin"]


def xetstore(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "xetstore", *args], capture_output=True, timeout=120)


def tree(tmp_path: Path) -> Path:
    top = tmp_path / "in"
    top.mkdir()
    for n, name in enumerate(NAMES):
        with open(os.path.join(os.fsencode(top), name), "wb") as f:
            f.write(bytes([n]) * (10_000 + n))
    Repository.init(str(tmp_path / "repo")).close()
    return top


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    return []


def test_json_output_is_strict_utf8(tmp_path: Path) -> None:
    top = tree(tmp_path)
    proc = xetstore("add", "-r", str(tmp_path / "repo"), "--json", str(top))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode("utf-8").splitlines()  # strict: fails on a surrogate's bytes
    assert len(lines) == len(NAMES) + 1
    records = [json.loads(line) for line in lines]
    for s in (s for r in records for s in strings(r)):
        s.encode("utf-8")  # before: "\udcff" in the JSON decoded to a lone surrogate here
    paths = sorted(Path(r["path"]).name for r in records if r["type"] == "added")
    assert paths == sorted(["bad\\xff\\xfename.bin", "new\nline.bin", "plain.bin"])


def test_human_output_has_one_line_per_file(tmp_path: Path) -> None:
    top = tree(tmp_path)
    proc = xetstore("add", "-r", str(tmp_path / "repo"), str(top))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode("utf-8").splitlines()
    assert len(lines) == len(NAMES) + 1  # before: the newline split a file's line in two
    assert any(line.endswith("new\\nline.bin") for line in lines)
    assert any(line.endswith("bad\\xff\\xfename.bin") for line in lines)


def test_shown_leaves_ordinary_names_alone() -> None:
    assert shown("résumé 2.txt") == "résumé 2.txt"
    assert shown("a\tb\x01") == "a\\tb\\x01"
