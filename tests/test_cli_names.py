"""What `get` accepts, and the output conventions every command follows (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from .samples import random_bytes, write_file


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xetstore", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def added(tmp_path: Path, *paths: str, chunker: str = "fastcdc") -> list[dict]:
    run("init", "repo", "--chunker", chunker, cwd=tmp_path)
    done = run("add", "-r", "repo", *paths, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return [d for d in json_lines(done.stdout) if d["type"] == "added"]


def test_get_by_file_hash_sha256_prefixes_and_tag_path(tmp_path: Path) -> None:
    write_file(tmp_path / "d" / "a.bin", random_bytes(100_000, 1))
    (a,) = added(tmp_path, "d/a.bin")
    run("add", "-r", "repo", "--tag", "v1", "d", cwd=tmp_path)
    for name in (a["file_hash"], a["sha256"], a["file_hash"][:10], a["sha256"][:10].upper(), "v1:d/a.bin"):
        got = subprocess.run([sys.executable, "-m", "xetstore", "get", "-r", "repo", name], cwd=tmp_path,
                             capture_output=True, timeout=120)  # fmt: skip
        assert got.returncode == 0, (name, got.stderr)
        assert got.stdout == random_bytes(100_000, 1), name
    missing = run("get", "-r", "repo", "v1:d/nope.bin", cwd=tmp_path)
    assert missing.returncode == 10 and "snapshot v1 has no file d/nope.bin" in missing.stderr
    unknown = run("get", "-r", "repo", "ffff" * 16, cwd=tmp_path)
    assert unknown.returncode == 10 and "not in the repository" in unknown.stderr


def test_an_ambiguous_prefix_lists_the_candidates(tmp_path: Path) -> None:
    for i in range(20):  # 20 files: some first hex digit is shared by two file hashes
        write_file(tmp_path / "d" / f"{i}.txt", f"file {i}\n".encode())
    files = added(tmp_path, "d")
    digit, _ = Counter(f["file_hash"][0] for f in files).most_common(1)[0]
    expected = {f["file_hash"] for f in files if f["file_hash"][0] == digit}
    expected |= {f["file_hash"] for f in files if f["sha256"][0] == digit}
    done = run("get", "-r", "repo", digit, "--json", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    (err,) = json_lines(done.stderr)
    assert err["type"] == "error" and err["error"] == "AmbiguousName" and err["exit_code"] == 2
    assert f"is the prefix of {len(expected)} hashes" in err["message"]
    assert all(h in err["message"] for h in sorted(expected)[:10])


def test_errors_under_json_are_one_object_per_line(tmp_path: Path) -> None:
    for args, code, kind in (
        (("ls", "-r", "nowhere", "--json"), 10, "RepositoryNotFound"),
        (("add", "--json", "-r", "nowhere"), 2, "usage"),  # click's own usage error
        (("get", "-r", "nowhere", "--json", "--bogus"), 2, "usage"),
    ):
        done = run(*args, cwd=tmp_path)
        assert done.returncode == code
        (err,) = json_lines(done.stderr)
        assert err["type"] == "error" and err["error"] == kind and err["exit_code"] == code and err["message"]
    plain = run("ls", "-r", "nowhere", cwd=tmp_path)
    assert plain.stderr.startswith("xetstore: error: no xetstore repository")


def test_ls_has_a_header_and_sorted_rows_stats_human_sizes(tmp_path: Path) -> None:
    write_file(tmp_path / "d" / "big.bin", random_bytes(3_000_000, 2))
    for i in range(5):
        write_file(tmp_path / "d" / f"{i}.txt", f"{i}\n".encode())
    added(tmp_path, "d")
    lines = run("ls", "-r", "repo", cwd=tmp_path).stdout.splitlines()
    assert lines[0].split() == ["FILE", "HASH", "SIZE", "SHA256"]
    hashes = [line.split()[0] for line in lines[1:]]
    assert hashes == sorted(hashes) and len(hashes) == 6
    assert any("2.86 MiB" in line for line in lines)
    assert all(d["type"] == "file" for d in json_lines(run("ls", "-r", "repo", "--json", cwd=tmp_path).stdout))
    text = run("stats", "-r", "repo", cwd=tmp_path).stdout
    assert "logical_bytes      2.86 MiB (3000010 bytes)" in text
    (raw,) = json_lines(run("stats", "-r", "repo", "--json", cwd=tmp_path).stdout)
    assert raw["logical_bytes"] == 3_000_010


def test_hash_uses_the_repository_chunker(tmp_path: Path) -> None:
    write_file(tmp_path / "x.bin", random_bytes(2_000_000, 3))
    (stored,) = added(tmp_path, "x.bin", chunker="xet")
    (with_repo,) = json_lines(run("hash", "-r", "repo", "x.bin", "--json", cwd=tmp_path).stdout)
    (default,) = json_lines(run("hash", "x.bin", "--json", cwd=tmp_path).stdout)
    assert with_repo["file_hash"] == stored["file_hash"] and with_repo["chunker"] == "xet"
    assert default["chunker"] == "fastcdc" and default["file_hash"] != stored["file_hash"]
