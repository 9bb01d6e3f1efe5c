"""The git systems of the benchmark: real git push and git clone, through xetstore's agent and plain git-lfs.

Nothing here asserts a timing; the bench run uses real git and git-lfs and is skipped without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xetstore.bench.report import git_table
from xetstore.bench.systems import SystemError_, make_system
from xetstore.bench.systems.git import _sync, _work_files

GIT_MISSING = make_system("git-lfs").missing()


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.mark.skipif(GIT_MISSING is not None, reason=GIT_MISSING or "")
def test_bench_pushes_and_clones_through_the_agent_and_plain_git_lfs(tmp_path: Path) -> None:
    """Both restore byte-identically (the runner verifies), xetstore stores less, the report
    has the git table, and the user's own git config and XETSTORE_REPO play no part."""
    home = _write(tmp_path / "user-home", {".gitconfig": b"[user]\n\tname = the user\n"})
    env = {**os.environ, "HOME": str(home), "XETSTORE_REPO": str(tmp_path / "not-a-repository")}
    env.pop("GIT_CONFIG_GLOBAL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "xetstore", "bench", "--cache", str(tmp_path / "cache"), "-q", "--scale", "0.5",
         "--runs", "1", "--workloads", "dataset", "--systems", "xetstore-git,git-lfs", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    results = {r["system"]: r for r in report["results"]}
    assert {s: r["error"] for s, r in results.items()} == {"xetstore-git": None, "git-lfs": None}
    ours, plain = results["xetstore-git"]["median"], results["git-lfs"]["median"]
    logical = report["workloads"]["dataset"]["logical_bytes"]
    assert plain["stored_bytes"] >= plain["unique_bytes"] > 0.5 * logical  # whole objects, uncompressed
    assert 0 < ours["stored_bytes"] < plain["stored_bytes"]
    assert all(r["median"]["restore_bytes"] > 0 and r["median"]["peak_rss_bytes"] for r in results.values())
    markdown = (tmp_path / "out" / "results.md").read_text()
    table = markdown.split("## git push and clone, per process")[1].split("\n## ")[0]
    assert "| dataset |" in table and "`git push`" in table
    assert (home / ".gitconfig").read_bytes() == b"[user]\n\tname = the user\n"
    assert not (tmp_path / "not-a-repository").exists()  # the agent's first push would create it
    touched = [p.relative_to(home).as_posix() for p in home.rglob("*") if "git" in p.name or "lfs" in p.name]
    assert touched == [".gitconfig"]  # (matplotlib may add its own cache there for the chart)


def test_git_table_divides_xetstore_git_by_git_lfs_and_hf_xet_proc() -> None:
    def row(system: str, push: float, clone: float, stored: float) -> dict:
        median = {"ingest_mb_s": push, "restore_mb_s": clone, "peak_rss_bytes": 30e6, "stored_bytes": stored}
        return {"workload": "model", "system": system, "median": median, "error": None}

    report = {"workloads": {"model": {}, "zeros": {}},
              "results": [row("xetstore-git", 60, 90, 10e6), row("git-lfs", 120, 45, 40e6)]}  # fmt: skip
    assert git_table(report)[2:] == ["| model | 60 | 0.50 | n/a | 90 | 2.00 | n/a | 30.0 | 10.0 / 40.0 |"]
    report["results"].append(row("hf_xet-proc", 30, 180, 9e6))
    assert git_table(report)[2:] == ["| model | 60 | 0.50 | 2.00 | 90 | 2.00 | 0.50 | 30.0 | 10.0 / 40.0 |"]
    assert git_table({"workloads": {"model": {}}, "results": [row("git-lfs", 1, 1, 1)]}) == []


def test_sync_leaves_exactly_the_version_beside_gits_files(tmp_path: Path) -> None:
    """Files gone from a version are deleted, and a folder may become a file and back."""
    work = _write(tmp_path / "work", {".gitattributes": b"* filter=lfs\n", ".git/HEAD": b"ref\n", "a": b"1", "d/x": b"2"})
    v2 = _write(tmp_path / "v2", {"a/b": b"3", "d": b"4", "e/f/g": b"5"})
    _sync(v2, work)
    assert sorted(_work_files(work)) == ["a/b", "d", "e/f/g"]
    assert (work / "a" / "b").read_bytes() == b"3" and (work / ".git" / "HEAD").exists()
    _sync(_write(tmp_path / "v3", {"a": b"6"}), work)
    assert sorted(_work_files(work)) == ["a"] and not (work / "e").exists()
    with pytest.raises(SystemError_, match=".lfsconfig"):
        _sync(_write(tmp_path / "v4", {".lfsconfig": b""}), work)

