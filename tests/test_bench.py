"""The benchmarks: deterministic workloads, verified restores, honest reporting.

Everything runs at a tiny scale; nothing here asserts a timing or a ratio.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from xetstore.bench.bench import median_metrics
from xetstore.bench.report import speed_table, to_markdown
from xetstore.bench.runner import METRICS, measure, run_isolated, verify_tree
from xetstore.bench.systems import DEFAULT_SYSTEMS, make_system, tree_files
from xetstore.bench.systems.base import run_tool, tool_peak_rss
from xetstore.bench.systems.processes import XetstoreCli
from xetstore.bench.workloads import WORKLOADS, materialize, versions

SCALE_MB = 0.3


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for rel in tree_files(root):
        h.update(rel.as_posix().encode() + b"\0" + (root / rel).read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_workloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workloads")


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_generator_is_deterministic_for_a_seed(name: str, tmp_path: Path) -> None:
    first = materialize(name, SCALE_MB, 7, tmp_path / "a")
    again = materialize(name, SCALE_MB, 7, tmp_path / "b")
    other = materialize(name, SCALE_MB, 8, tmp_path / "c")
    assert [v.name for v in versions(first)] == [v.name for v in versions(again)]
    assert len(versions(first)) >= 3
    assert tree_digest(first) == tree_digest(again)
    assert tree_digest(first) != tree_digest(other)
    digests = [tree_digest(v) for v in versions(first)]
    assert len(set(digests)) == len(digests), "every version differs from the others"


def test_cached_workload_is_reused(tmp_path: Path) -> None:
    folder = materialize("zeros", SCALE_MB, 1, tmp_path)
    marker = versions(folder)[0] / "zeros.bin"
    stamp = marker.stat().st_mtime_ns
    assert materialize("zeros", SCALE_MB, 1, tmp_path) == folder
    assert marker.stat().st_mtime_ns == stamp


def test_model_is_a_valid_safetensors_file(tmp_path: Path) -> None:
    folder = materialize("model", SCALE_MB, 1, tmp_path)
    for v in versions(folder):
        raw = (v / "model.safetensors").read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n])
        assert n % 8 == 0
        tensors = {k: t for k, t in header.items() if k != "__metadata__"}
        end = 0
        for t in tensors.values():
            width = 2 if t["dtype"] == "BF16" else 4
            start, stop = t["data_offsets"]
            assert start == end and stop - start == width * _product(t["shape"])
            end = stop
        assert len(raw) == 8 + n + end
    shapes = [json.loads(_header(v / "model.safetensors"))["model.embed_tokens.weight"]["shape"] for v in versions(folder)]
    assert shapes[4][0] > shapes[3][0], "v05 grows the vocabulary"


def _header(path: Path) -> bytes:
    raw = path.read_bytes()
    return raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]]


def _product(shape: list[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


@pytest.mark.parametrize("name", DEFAULT_SYSTEMS)
def test_every_system_restores_byte_identical(name: str, small_workloads: Path, tmp_path: Path) -> None:
    system = make_system(name)
    if system.missing():
        pytest.skip(system.missing())
    folder = materialize("smallfiles", SCALE_MB, 3, small_workloads)
    result = measure(system, versions(folder), tmp_path / "w")
    assert result.get("error") is None
    assert set(METRICS) <= set(result)
    assert result["stored_bytes"] > 0 and result["restore_bytes"] == sum(
        (versions(folder)[-1] / rel).stat().st_size for rel in tree_files(versions(folder)[-1])
    )
    assert verify_tree(versions(folder)[-1], tmp_path / "w" / "restored") == []


def _flip_first_byte(folder: Path) -> Path:
    victim = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    return victim


def test_silently_corrupted_restore_is_reported(small_workloads: Path, tmp_path: Path) -> None:
    """whole-file does not check what it reads back: the benchmark's verification must."""
    folder = materialize("dataset", SCALE_MB, 3, small_workloads)
    result = measure(make_system("whole-file"), versions(folder), tmp_path / "w",
                     after_ingest=lambda system, workdir: _flip_first_byte(workdir / "repo" / "objects"))  # fmt: skip
    assert "not byte-identical" in result["error"]
    assert "differs" in result["error"]


def test_xetstore_cli_restores_through_the_library_and_the_command(small_workloads: Path, tmp_path: Path) -> None:
    folder = materialize("smallfiles", SCALE_MB, 3, small_workloads)
    result = measure(make_system("xetstore-cli"), versions(folder), tmp_path / "w")
    assert result["error"] is None
    assert result["restore_mb_s"] > 0 and result["command_restore_mb_s"] > 0
    last = versions(folder)[-1]
    for dest in ("restored", "restored-by-command"):
        assert verify_tree(last, tmp_path / "w" / dest) == []
    tags = run_tool([sys.executable, "-m", "xetstore", "tags", "--json", "-r", str(tmp_path / "w" / "repo")],
                    env={"XETSTORE_CACHE": str(tmp_path / "w" / "cache")})  # fmt: skip
    assert [json.loads(line)["tag"] for line in tags.splitlines()] == [v.name for v in versions(folder)]


class _DamagingCommand(XetstoreCli):
    def restore_command(self, label: str, dest: Path) -> bool:
        super().restore_command(label, dest)
        _flip_first_byte(dest)
        return True


def test_a_damaged_command_restore_is_reported(small_workloads: Path, tmp_path: Path) -> None:
    folder = materialize("dataset", SCALE_MB, 3, small_workloads)
    result = measure(_DamagingCommand(), versions(folder), tmp_path / "w")
    assert result["error"] and "restored-by-command is not byte-identical" in result["error"]


def test_corrupted_xorb_is_reported(small_workloads: Path, tmp_path: Path) -> None:
    folder = materialize("random", SCALE_MB, 3, small_workloads)
    result = measure(make_system("xetstore-fastcdc-zstd"), versions(folder), tmp_path / "w",
                     after_ingest=lambda system, workdir: _flip_first_byte(workdir / "repo" / "xorbs"))  # fmt: skip
    assert result["error"], "a damaged xorb must not restore quietly"
    report = {
        "date": "d", "command": "c", "config": {"scale_mb": SCALE_MB, "runs": 1, "seed": 3},
        "machine": {"cpu": "c", "cores": 1, "ram_bytes": None, "python": "3", "platform": "p", "libraries": {}},
        "load_average": {"before": None, "after": None},
        "systems": {"xetstore-fastcdc-zstd": {"description": "d", "skipped": None, "version": "0"}},
        "workloads": {"random": {"description": "r", "versions": 3, "logical_bytes": result["logical_bytes"]}},
        "results": [{"workload": "random", "system": "xetstore-fastcdc-zstd", "median": median_metrics([result]),
                     "runs": [result], "error": result["error"]}],
    }  # fmt: skip
    assert "**ERROR:" in to_markdown(report)


def test_speed_table_divides_xetstore_by_hf_xet() -> None:
    def row(system: str, ingest: float, restore: float, by_command: float | None = None) -> dict:
        median = {"ingest_mb_s": ingest, "restore_mb_s": restore, "peak_rss_bytes": 100e6, "stored_bytes": 5e6,
                  "command_restore_mb_s": by_command}  # fmt: skip
        return {"workload": "model", "system": system, "median": median, "error": None}

    report = {"workloads": {"model": {}, "zeros": {}},
              "results": [row("xetstore-fastcdc-zstd", 150, 400), row("hf_xet", 200, 100)]}  # fmt: skip
    table = speed_table(report)
    assert table[2:] == ["| model | 150 / 200 | 0.75 | 400 / 100 | 4.00 | n/a | n/a | 100.0 / 100.0 | 5.0 / 5.0 | n/a |"]
    assert speed_table({"workloads": {"model": {}}, "results": [row("hf_xet", 1, 1)]}) == []
    report["results"] += [row("xetstore-cli", 30, 60, 45), row("hf_xet-proc", 40, 30)]
    per_process = speed_table(report, "hf_xet-proc", "xetstore-cli")
    assert per_process[2:] == ["| model | 30 / 40 | 0.75 | 60 / 30 | 2.00 | 45 | 1.50 | 100.0 / 100.0 | 5.0 / 5.0 | n/a |"]


def test_median_metrics_skips_missing_values() -> None:
    runs = [{m: None for m in METRICS} for _ in range(3)]
    for r, v in zip(runs, (3, 1, 2)):
        r["stored_bytes"] = v
    med = median_metrics(runs)
    assert med["stored_bytes"] == 2 and med["unique_bytes"] is None and set(med) == set(METRICS)


def _bench(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xetstore", "bench", "--cache", str(tmp_path / "cache"), "-q", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300, check=False,
    )  # fmt: skip


def test_missing_peer_is_skipped_with_a_note(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proc = _bench(["--scale", "0.2", "--runs", "1", "--workloads", "zeros", "--systems",
                   "whole-file,restic,borg,casync", "--json"], tmp_path, {"PATH": str(empty)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = json_lines_of(proc.stdout)
    for peer in ("restic", "borg", "casync"):
        assert "not installed" in lines[0]["systems"][peer]["skipped"]
    assert [r["system"] for r in lines if r["type"] == "result"] == ["whole-file"]


def json_lines_of(stdout: str) -> list[dict]:
    """`bench --json` output: one object per line, each with a type, the run's first."""
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert lines[0]["type"] == "bench" and all("type" in line for line in lines)
    return lines


def test_json_is_one_typed_object_per_line(tmp_path: Path) -> None:
    proc = _bench(["--scale", "0.2", "--runs", "1", "--workloads", "zeros,dataset", "--systems",
                   "whole-file,xetstore-fastcdc-zstd", "--json"], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = json_lines_of(proc.stdout)
    assert [line["type"] for line in lines] == ["bench", "workload", "workload", *["result"] * 4]
    assert {line["name"] for line in lines if line["type"] == "workload"} == {"zeros", "dataset"}
    assert all(line["median"]["stored_bytes"] > 0 for line in lines if line["type"] == "result")


def test_quick_prints_a_short_summary_with_its_uncertainty(tmp_path: Path) -> None:
    """--quick's own size and systems, cut to two workloads to keep the test short."""
    proc = _bench(["--quick", "--workloads", "zeros,dataset", "--systems", "whole-file,xetstore-fastcdc-zstd",
                   "--out", str(tmp_path / "out")], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("zeros: stores ") and lines[1].startswith("dataset: stores ")
    assert len(lines) <= 6 and "speeds are noise" in proc.stdout and "--scale 300 --runs 3" in proc.stdout
    assert "| xetstore-fastcdc-zstd |" in (tmp_path / "out" / "results.md").read_text()
    verbose = _bench(["--quick", "--verbose", "--workloads", "zeros", "--systems", "whole-file"], tmp_path)
    assert "# xetstore bench" in verbose.stdout


def test_json_and_files_carry_every_metric_for_every_system(tmp_path: Path) -> None:
    systems = "whole-file,fixed-64k-zstd,xetstore-fastcdc-none,xetstore-fastcdc-zstd,xetstore-fastcdc-zstd-f0"
    proc = _bench(["--scale", "0.2", "--runs", "2", "--workloads", "dataset,zeros", "--systems", systems,
                   "--out", str(tmp_path / "out")], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {(r["workload"], r["system"]) for r in report["results"]} == {
        (w, s) for w in ("dataset", "zeros") for s in systems.split(",")
    }
    for r in report["results"]:
        assert r["error"] is None and len(r["runs"]) == 2
        for m in METRICS:
            assert m in r["median"] and all(m in run for run in r["runs"])
        for m in ("stored_bytes", "ratio", "dedup_ratio", "ingest_mb_s", "restore_mb_s", "peak_rss_bytes"):
            assert r["median"][m] > 0
    assert report["machine"]["cores"] and report["machine"]["python"]
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "| xetstore-fastcdc-zstd |" in markdown and proc.stdout == markdown + "\n"


def test_corpus_folders_are_versions(tmp_path: Path) -> None:
    corpus = tmp_path / "mydata"
    for n, text in enumerate([b"alpha " * 5000, b"alpha " * 5000 + b"beta"]):
        (corpus / f"v{n}").mkdir(parents=True)
        (corpus / f"v{n}" / "notes.txt").write_bytes(text)
    proc = _bench(["--runs", "1", "--corpus", str(corpus), "--systems", "whole-file,xetstore-fastcdc-zstd", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = json_lines_of(proc.stdout)
    assert [line["name"] for line in lines if line["type"] == "workload"] == ["corpus:mydata"]
    assert all(r["error"] is None for r in lines if r["type"] == "result")


def test_isolated_run_reports_a_failing_child(tmp_path: Path) -> None:
    """A child that dies before measuring still yields a result with an error, not an exception."""
    result = run_isolated("no-such-system", [tmp_path], tmp_path / "w")
    assert "exited" in result["error"] and "unknown system" in result["error"]
    assert set(METRICS) <= set(result)
    assert not (tmp_path / "w").exists()


def test_delta_system_stores_less_of_a_fine_tune(small_workloads: Path, tmp_path: Path) -> None:
    folder = materialize("finetune", 2.0, 3, small_workloads)
    plain = measure(make_system("xetstore-fastcdc-zstd"), versions(folder), tmp_path / "plain")
    delta = measure(make_system("xetstore-delta"), versions(folder), tmp_path / "delta")
    assert plain.get("error") is None and delta.get("error") is None
    assert verify_tree(versions(folder)[-1], tmp_path / "delta" / "restored") == []
    assert delta["stored_bytes"] < 0.9 * plain["stored_bytes"]


def test_peak_rss_counts_the_processes_a_command_starts(tmp_path: Path) -> None:
    """`git push` does its work in children (hook, agents): their peak must count, not git's own."""
    child = "b = b'x' * 120_000_000; import time; time.sleep(0.3)"
    run_tool(["sh", "-c", f"{sys.executable} -c \"{child}\"; true"])  # `; true`: sh waits, it cannot exec
    assert tool_peak_rss() > 120_000_000


def test_compacting_system_stores_less_and_restores_what_it_compacted(small_workloads: Path, tmp_path: Path) -> None:
    """`-c9`: compact and gc after the adds, timed apart; stored and restored after them."""
    folder = materialize("dataset", SCALE_MB, 3, small_workloads)
    plain = measure(make_system("xetstore-fastcdc-zstd"), versions(folder), tmp_path / "plain")
    packed = measure(make_system("xetstore-fastcdc-zstd-c9"), versions(folder), tmp_path / "packed")
    assert plain["error"] is None and packed["error"] is None  # the restore was verified byte for byte
    assert plain["background_seconds"] is None and packed["background_seconds"] > 0
    assert packed["stored_bytes"] < 0.97 * plain["stored_bytes"]
    assert packed["unique_bytes"] == plain["unique_bytes"]
