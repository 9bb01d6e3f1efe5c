"""The measuring scripts in benchmarks/ still run end to end, at a tiny size.

They report speeds, which tests never judge; what is checked is that each
script completes against the real components it drives and that the figures
it derives from byte counts (stored, uploaded) make sense.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .s3_servers import S3Server, aws_env, moto_server  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def run_script(module: str, *args: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "XETSTORE_CACHE": str(tmp_path / "cache"), "TMPDIR": str(tmp_path), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def rates(table: str, label: str) -> list[float]:
    return [float(m) for m in re.findall(rf"\| {re.escape(label)} \| ([\d.]+) \|", table)]


def test_core_throughput(tmp_path: Path) -> None:
    out = run_script("core_throughput", "--size-mib", "4", "--runs", "1", "--rss-gib", "0.01", tmp_path=tmp_path)
    for label in ("add (new data)", "re-add (identical)", "read"):
        found = rates(out, label)
        assert len(found) == 2 and all(r > 0 for r in found), out  # random and weights
    for pattern in (r"peak RSS adding a [\d.]+ GiB file: (\d+) MiB", r"peak RSS reading it back: (\d+) MiB"):
        rss = float(re.search(pattern, out).group(1))
        assert 10 < rss < 1024, out  # the child's own peak, not the parent's


def test_chunker_speed(tmp_path: Path) -> None:
    out = run_script("chunker_speed", "--size-mib", "4", "--runs", "1", tmp_path=tmp_path)
    assert len(re.findall(r"\| hf_xet.hash_files \| \d+ \| 1.00 \|", out)) == 2, out


def test_s3_throughput_on_moto(tmp_path: Path, moto_server: S3Server, aws_env: None) -> None:  # noqa: F811
    out = run_script("s3_throughput", "--endpoint", moto_server.endpoint, "--size-mib", "8", "--runs", "1",
                     "--json", tmp_path=tmp_path)  # fmt: skip
    report = json.loads(out.splitlines()[-1])
    assert report["upload_mb_s"]["xetstore"] > 0 and report["download_mb_s"]["xetstore"] > 0
    # 1 % of the file edited in 8 places: a few chunks each, far from the whole file.
    assert 0 < report["second_version_sent_percent"] < 30


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="git-lfs is not installed (tools/test installs it)")
def test_lfs_push(tmp_path: Path) -> None:
    out = run_script("lfs_push", "--size-mib", "8", "--versions", "2", "--runs", "1", tmp_path=tmp_path)
    report = json.loads(out.splitlines()[-1])
    assert report["git-lfs"]["stored_bytes"] == report["logical_bytes"]
    assert 0 < report["stored_ratio"] < 0.75  # the second version shares almost every chunk


def test_split_scan(tmp_path: Path) -> None:
    out = run_script("split_scan", "--size-mib", "4", "--runs", "1", "--segment-mib", "1", tmp_path=tmp_path)
    assert rates(out, "hash_stream (one process)") and rates(out, "split over 2 processes"), out
    assert re.search(r"\| hash_stream \(one process\) \| \d+ \| 1.00 \|", out), out


def test_ingest_ab(tmp_path: Path) -> None:
    # HEAD against this checkout: both sides ingest, and equal code stores equal bytes.
    out = run_script("ingest_ab", "--base", "HEAD", "--workloads", "random,smallfiles", "--runs", "1",
                     "--scale", "2", "--cache", str(tmp_path / "workloads"), tmp_path=tmp_path)  # fmt: skip
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| ([\d.]+) \| (.+) \|$", out, re.M)
    assert [r[0] for r in rows] == ["random", "smallfiles"], out
    assert all(int(r[1]) > 0 and int(r[2]) > 0 and r[4] == "equal" for r in rows), out


def test_process_ab(tmp_path: Path) -> None:
    # HEAD against this checkout, each command a process: both sides ingest (add --tag),
    # compact and restore the compacted layouts through the library and `xetstore restore`
    # (byte-identical, or the script fails), and equal code stores equal bytes.
    out = run_script("process_ab", "--base", "HEAD", "--workloads", "smallfiles", "--runs", "1", "--compact", "--tags",
                     "--scale", "1", "--cache", str(tmp_path / "workloads"), tmp_path=tmp_path)  # fmt: skip
    pair = r"([\d.]+) \| ([\d.]+) \| [\d.]+"
    rows = re.findall(rf"^\| (\w+) \| {pair} \| {pair} \| {pair} \| ([\d.]+) \| ([\d.]+) \| (.+) \|$", out, re.M)
    assert [r[0] for r in rows] == ["smallfiles"], out
    assert all(float(x) > 0 for x in rows[0][1:9]) and rows[0][9] == "equal", out


@pytest.mark.parametrize("how", [[], ["--automatic"]], ids=["named", "automatic"])
def test_delta_bench(tmp_path: Path, how: list[str]) -> None:
    # Both variants add every file by its own process and read every one back
    # byte-identical (or the script fails), with the earlier version named or found.
    out = run_script("delta_bench", "--workload", "finetune", "--scale-mb", "3", "--runs", "1", *how,
                     tmp_path=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})  # fmt: skip
    found = re.findall(r"xetstore (plain|delta): stored +([\d.]+) MB .* ingest +([\d.]+) MB/s, restore +([\d.]+) MB/s", out)
    assert [f[0] for f in found] == ["plain", "delta"], out
    assert all(float(x) > 0 for f in found for x in f[1:]), out


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="needs git-lfs")
def test_clone_ab(tmp_path: Path) -> None:
    # HEAD against this checkout: one push of every version through real git and git-lfs,
    # then clones by each side's agent, each checked byte-identical by the script.
    out = run_script("clone_ab", "--base", "HEAD", "--workloads", "release", "--runs", "1", "--scale", "1",
                     "--cache", str(tmp_path / "workloads"), tmp_path=tmp_path)  # fmt: skip
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| ([\d.]+) \|$", out, re.M)
    assert [r[0] for r in rows] == ["release"] and int(rows[0][1]) > 0 and int(rows[0][2]) > 0, out


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="needs git-lfs")
def test_clone_ab_push(tmp_path: Path) -> None:
    # --push: each side also pushes every version into repositories of its own.
    out = run_script("clone_ab", "--base", "HEAD", "--workloads", "release", "--runs", "1", "--scale", "1", "--push",
                     "--cache", str(tmp_path / "workloads"), tmp_path=tmp_path)  # fmt: skip
    rows = re.findall(r"^\| (\w+)((?: \| [\d.]+){6}) \|$", out, re.M)
    assert [r[0] for r in rows] == ["release"], out
    clone_base, clone_this, _, push_base, push_this, _ = (float(x) for x in rows[0][1].split(" | ")[1:])
    assert min(clone_base, clone_this, push_base, push_this) > 0, out
