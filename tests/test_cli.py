"""The `xetstore` command, run as a real process: output, JSON lines, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .samples import random_bytes, write_file


def run(*args: str, cwd: Path, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "xetstore", *args], cwd=cwd, input=input, capture_output=True, timeout=120)


def json_lines(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def test_init_add_ls_get_stats(tmp_path: Path) -> None:
    data = random_bytes(1_500_000, 1)
    write_file(tmp_path / "in" / "a.bin", data)
    write_file(tmp_path / "in" / "sub" / "b.txt", b"hello\n" * 1000)
    assert run("init", "repo", cwd=tmp_path).returncode == 0
    added = run("add", "-r", "repo", "in", "--json", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    lines = json_lines(added.stdout)
    files = {Path(d["path"]).name: d for d in lines if d["type"] == "added"}
    assert set(files) == {"a.bin", "b.txt"}
    assert lines[-1]["type"] == "summary" and lines[-1]["files"] == 2
    a = files["a.bin"]
    assert {"file_hash", "path", "size", "sha256", "new_bytes", "stored_bytes"} <= set(a)
    listed = json_lines(run("ls", "-r", "repo", "--json", cwd=tmp_path).stdout)
    assert {d["file_hash"] for d in listed} == {f["file_hash"] for f in files.values()}
    got = run("get", "-r", "repo", a["file_hash"], cwd=tmp_path)
    assert got.returncode == 0 and got.stdout == data
    assert run("get", "-r", "repo", a["file_hash"], "-o", "out.bin", cwd=tmp_path).returncode == 0
    assert (tmp_path / "out.bin").read_bytes() == data
    (stats,) = json_lines(run("stats", "-r", "repo", "--json", cwd=tmp_path).stdout)
    assert stats["type"] == "stats" and stats["files"] == 2 and stats["logical_bytes"] == len(data) + 6000
    assert {"unique_bytes", "stored_bytes", "dedup_ratio", "compression_ratio", "chunks", "xorbs", "shards"} <= set(stats)


def test_hash_matches_what_add_stores(tmp_path: Path) -> None:
    write_file(tmp_path / "x.bin", random_bytes(700_000, 2))
    run("init", "repo", cwd=tmp_path)
    (hashed,) = json_lines(run("hash", "x.bin", "--json", cwd=tmp_path).stdout)
    added = json_lines(run("add", "-r", "repo", "x.bin", "--json", cwd=tmp_path).stdout)[0]
    assert hashed["file_hash"] == added["file_hash"] and hashed["sha256"] == added["sha256"]
    assert list(tmp_path.glob("repo/xorbs/*"))


def test_repo_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("init", "repo", cwd=tmp_path)
    monkeypatch.setenv("XETSTORE_REPO", str(tmp_path / "repo"))
    assert run("ls", cwd=tmp_path).returncode == 0


def test_env_reports_settings(tmp_path: Path) -> None:
    (env,) = json_lines(run("env", "--json", cwd=tmp_path).stdout)
    assert env["type"] == "env" and env["version"] and env["cache_dir"]


@pytest.mark.parametrize(
    "args,code,message",
    [
        (("ls", "-r", "nowhere"), 10, "no xetstore repository"),
        (("add", "-r", "repo", "missing.bin"), 1, "cannot read missing.bin"),
        (("get", "-r", "repo", "ab" * 32), 10, "not in the repository"),
        (("get", "-r", "repo", "xyz"), 10, "64 hex digits"),
        (("init", "repo"), 1, "already holds a repository"),
        (("add", "missing.bin"), 2, "Missing option"),
    ],
    ids=["no-repo", "missing-input", "unknown-hash", "bad-hash", "init-twice", "no-repo-option"],
)
def test_errors_are_one_clear_line_with_an_exit_code(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    run("init", "repo", cwd=tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = run(*args, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("ls", "-r", "nowhere", "--debug", cwd=tmp_path)
    assert result.returncode == 10 and "Traceback" in result.stderr.decode()
