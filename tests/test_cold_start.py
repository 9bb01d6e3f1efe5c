"""Start-up stays cheap: what a fresh process imports for the commands users run most.

Every command is a new process (the CLI, each git-lfs agent), so a module imported at
start-up is paid on every `ls`, `get` and transfer. These tests run the real commands in a
fresh interpreter and look at `sys.modules` afterwards; `benchmarks/cold_start.py`
measures the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from xetstore import Repository

from .samples import random_bytes

# Modules that listing, stats and reading files (zstd, byte-grouped, raw) never need.
HEAVY = (
    "numpy", "boto3", "botocore", "tqdm", "fastcdc",
    "xetstore.maintenance.check", "xetstore.maintenance.gc", "xetstore.maintenance.repair", "xetstore.maintenance.repack",
    "xetstore.clean", "xetstore.xorb_writer", "xetstore.chunking", "xetstore.gear", "xetstore.intake",
    "xetstore.lfs.agent", "xetstore.trees", "xetstore.snapshot", "hashlib", "socket",
    "xetstore.cli.maintenance", "xetstore.cli.snapshots", "xetstore.bench", "xetstore.lfs.commands",
    "xetstore.delta_bases", "xetstore.dedup_targets", "xetstore.inputs",
)  # fmt: skip

# Runs CLI commands in this process (as the installed script does), then prints
# which HEAVY modules got imported.
_CHILD = """
import json, sys
from xetstore.cli import main

commands, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])

def run(*args):
    sys.argv = ["xetstore", *args]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, f"{args} exited {exc.code}"

for command in commands:
    if command[0] == "read":
        from xetstore import Repository
        with Repository.open(command[1]) as r:
            for info in r.files():
                r.read_bytes(info.file_hash)
    else:
        run(*command)
print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.split(".")[0] in heavy)))
"""


def loaded(commands: list[list[str]], cache: Path, watched: tuple[str, ...] = HEAVY) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(commands), json.dumps(watched)],
        capture_output=True, text=True, check=False, env={**os.environ, "XETSTORE_CACHE": str(cache)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def make_repository(tmp_path: Path) -> str:
    url = str(tmp_path / "repo")
    with Repository.init(url, cache_dir=tmp_path / "init-cache") as r:
        text = "".join(f"{n},event {n * 7 % 13},user{n % 97}\n" for n in range(30_000))
        r.add_bytes(text.encode())  # stored as zstd frames, not byte-grouped
        r.add_bytes(random_bytes(300_000, seed=3))  # stored raw
        weights = np.random.default_rng(1).normal(0, 0.02, 100_000).astype("<f4")
        r.add_bytes(weights.tobytes())  # stored byte-grouped (BG4 zstd)
    return url


def test_ls_stats_and_reads_import_no_numpy_boto3_or_maintenance(tmp_path: Path) -> None:
    url = make_repository(tmp_path)
    found = loaded([["ls", "-r", url], ["stats", "-r", url], ["read", url]], tmp_path / "cache")
    assert found == []


def test_a_plain_add_loads_no_delta_or_snapshot_code(tmp_path: Path) -> None:
    url = make_repository(tmp_path)
    new = tmp_path / "new.txt"
    new.write_bytes(random_bytes(200_000, seed=6))
    reading = ("xetstore.smudge", "xetstore.file_reader")
    found = loaded([["add", "-r", url, str(new)]], tmp_path / "cache", (*HEAVY, *reading, "tempfile", "dataclasses"))
    assert "xetstore.clean" in found  # it did add
    assert not {"xetstore.delta_bases", "xetstore.snapshot", "xetstore.trees", "numpy"} & set(found)
    # Reading code, tempfile (with shutil, bz2, lzma) and dataclasses: ~11 ms of every add's start.
    assert not {*reading, "tempfile", "dataclasses"} & set(found)


def test_add_tag_and_restore_load_no_delta_code_or_dataclasses(tmp_path: Path) -> None:
    """`add --tag` and `restore TAG` without delta chunks: no delta code, no reading
    code in the add, and no dataclasses (with the import, ~3 ms of each)."""
    url = make_repository(tmp_path)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_bytes(random_bytes(50_000, seed=8))
    watched = (*HEAVY, "xetstore.smudge", "dataclasses")
    found = loaded([["add", "-r", url, "--tag", "v1", str(tree)]], tmp_path / "cache", watched)
    assert "xetstore.snapshot" in found  # it did make a snapshot
    assert not {"xetstore.delta_bases", "xetstore.smudge", "dataclasses"} & set(found)
    found = loaded([["restore", "-r", url, "v1", str(tmp_path / "out")]], tmp_path / "cache", watched)
    assert (tmp_path / "out" / "tree" / "sub" / "a.txt").read_bytes() == random_bytes(50_000, seed=8)
    assert "xetstore.smudge" in found and not {"xetstore.delta_bases", "dataclasses"} & set(found)


_LIBRARY_READ = """
import json, sys
from pathlib import Path
from xetstore import Repository
with Repository.open(sys.argv[1]) as r:
    hashes = [info.file_hash for info in r.files()]
    r.read_file(hashes[0], Path(sys.argv[2]) / "one")
    r.read_files([(h, Path(sys.argv[2]) / f"f{i}") for i, h in enumerate(hashes)])
print(json.dumps(sorted(m for m in ("dataclasses", "inspect", "tempfile", "shutil", "click") if m in sys.modules)))
"""


def test_a_library_restore_imports_no_dataclasses_or_tempfile(tmp_path: Path) -> None:
    """A script (or a git-lfs download) that opens a repository and writes files
    starts ~11 ms sooner without dataclasses (with inspect, ast, dis) and tempfile."""
    url = make_repository(tmp_path)
    (tmp_path / "out").mkdir()
    out = subprocess.run([sys.executable, "-c", _LIBRARY_READ, url, str(tmp_path / "out")], capture_output=True, text=True,
                         check=True, env={**os.environ, "XETSTORE_CACHE": str(tmp_path / "cache")})  # fmt: skip
    assert json.loads(out.stdout.splitlines()[-1]) == []
    assert len(list((tmp_path / "out").iterdir())) == 4  # it did write the files


_AGENT_DOWNLOAD = """
import hashlib, json, sys
from pathlib import Path
from xetstore import Repository
from xetstore.lfs.gitconfig import Workspace
from xetstore.lfs.protocol import DownloadRequest
from xetstore.lfs.transfer import Progress, download
data = Path(sys.argv[2]).read_bytes()
oid = hashlib.sha256(data).hexdigest()
with Repository.open(sys.argv[1]) as r:
    lfs = Path(sys.argv[3])
    path = download(r, Workspace(lfs, lfs, None), DownloadRequest(oid, len(data)), Progress(lambda _: None, oid, len(data)), "test")
assert Path(path).read_bytes() == data
print(json.dumps(sorted(m for m in ("tempfile", "shutil", "dataclasses") if m in sys.modules)))
"""


def test_an_agent_download_imports_no_tempfile(tmp_path: Path) -> None:
    """Each git-lfs agent is a fresh process: a download writes its temp file as a
    restore does, without tempfile (shutil, bz2, lzma, random)."""
    url = make_repository(tmp_path)
    obj = tmp_path / "object.bin"
    obj.write_bytes(random_bytes(3_000_000, seed=9))
    env = {**os.environ, "XETSTORE_CACHE": str(tmp_path / "cache")}
    with Repository.open(url, cache_dir=tmp_path / "cache") as r:
        r.add_file(obj)
    out = subprocess.run([sys.executable, "-c", _AGENT_DOWNLOAD, url, str(obj), str(tmp_path / "lfs")],
                         capture_output=True, text=True, check=True, env=env)  # fmt: skip
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_version_imports_no_engine() -> None:
    engine = ["xetstore.repository", "xetstore.index", "xetstore.lfs.gitconfig", "lmdb", "blake3"]
    engine += ["xetstore.inputs", "pathlib", "traceback"]  # with json, ~8 ms of a start: imported where used
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([["--version"]]), json.dumps([*HEAVY, *engine])],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_the_watch_list_names_real_modules(tmp_path: Path) -> None:
    """`check` and `add` do load maintenance and chunking modules: the names above are
    the ones the code uses, so the tests above cannot pass by a misspelling."""
    url = make_repository(tmp_path)
    text = tmp_path / "new.txt"
    text.write_bytes(random_bytes(200_000, seed=4))
    weights = tmp_path / "new.f32"  # 4 MB of float32: byte-grouped frames, split without numpy
    weights.write_bytes(np.random.default_rng(5).normal(0, 0.02, 1_000_000).astype("<f4").tobytes())
    found = loaded([["check", "-r", url], ["add", "-r", url, str(text), str(weights)], ["tags", "-r", url]], tmp_path / "cache")
    assert {"xetstore.maintenance.check", "xetstore.clean", "xetstore.chunking", "fastcdc", "hashlib"} <= set(found)
    assert {"xetstore.dedup_targets", "xetstore.inputs"} <= set(found)  # what only adding needs
    assert {"xetstore.trees", "xetstore.snapshot"} <= set(found)  # `tags` reads snapshots
    assert {"xetstore.cli.maintenance", "xetstore.cli.snapshots"} <= set(found)  # loaded when named
    assert "numpy" not in found  # a small add predicts and splits BG4 without it (compression._PURE_CALLS)
    assert "socket" not in found  # its lease names the host through os.uname


def test_the_agent_imports_no_dataclasses() -> None:
    """git-lfs starts an agent per transfer: without dataclasses (and the inspect, ast
    and dis it loads) its import takes 39 ms instead of 45."""
    code = "import sys, xetstore.lfs.agent; print(sorted(m for m in ('dataclasses', 'inspect', 'click') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

