"""xetstore and hf_xet as a user runs them: every add and every restore is a fresh process.

The in-process systems time a warm interpreter; a user's `xetstore add` (and each git-lfs
agent) pays the interpreter's start, the imports and the repository's open on every
command, and so does a script that starts hf_xet. Here each version is added by the
installed `xetstore add --tag vNN -r REPO .` command, run inside the version (hf_xet: a
new `python -c` that imports hf_xet and uploads the version in one commit), and the last
version is restored by one fresh process: a script as hf_xet's (`Repository.open` then
`read_files`; hf_xet: one download group), and then by `xetstore restore vNN`, which
also pays for click and the snapshot (the command restore column). Peak RSS is the
largest of those processes'.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .base import System, disk_bytes, run_tool, tree_bytes
from .hfxet import HfXet

__all__ = ["XetstoreCli", "HfXetProcess", "xetstore_command", "compile_package"]

_RESTORE = """
import json, sys
from pathlib import Path
from xetstore import Repository
listing, dest = json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])
with Repository.open(sys.argv[1]) as repo:
    pairs = [(file_hash, dest / rel) for rel, file_hash in listing]
    for _, path in pairs:
        path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(repo, "read_files"):
        repo.read_files(pairs)
    else:  # a revision before read_files (benchmarks/process_ab compares with older ones)
        for file_hash, path in pairs:
            repo.read_file(file_hash, path)
"""

_HF_ADD = """
import json, sys
from pathlib import Path
import hf_xet
endpoint, source = sys.argv[1], Path(sys.argv[2])
rels = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file() and not p.is_symlink())
listing, new = [], 0
with hf_xet.XetSession().new_upload_commit(endpoint=endpoint) as commit:
    uploads = [commit.start_upload_file(str(source / rel)) for rel in rels]
    for rel, upload in zip(rels, uploads):
        result = upload.result()
        new += result.dedup_metrics.new_bytes
        listing.append([rel, result.xet_info.hash, result.xet_info.file_size])
print(json.dumps({"listing": listing, "new_bytes": new}))
"""

_HF_RESTORE = """
import json, sys
from pathlib import Path
import hf_xet
endpoint, listing, dest = sys.argv[1], json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])
with hf_xet.XetSession().new_file_download_group(endpoint=endpoint) as group:
    for rel, file_hash, size in listing:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        group.start_download_file(hf_xet.XetFileInfo(file_hash, size), str(dest / rel))
"""


def compile_package() -> None:
    """Byte-compile xetstore as `pip install` does. A source checkout may have no
    (or stale) bytecode, and with PYTHONDONTWRITEBYTECODE set Python never writes it:
    every process would recompile each module it imports (measured: `xetstore ls`
    about 30 ms slower), which no installed copy pays."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parents[2]), quiet=1)


def xetstore_command() -> list[str]:
    """The installed `xetstore` script beside this interpreter, else `python -m xetstore`."""
    script = Path(sys.executable).parent / "xetstore"
    return [str(script)] if script.exists() else [sys.executable, "-m", "xetstore"]


class XetstoreCli(System):
    name = "xetstore-cli"
    description = (
        "xetstore's default (fastcdc, zstd), one `xetstore add --tag` process per version; then `xetstore compact` "
        "and `xetstore gc` (background, timed apart); one restore process through the library, and one "
        "`xetstore restore TAG` (command restore)"
    )
    in_process = False

    def version(self) -> str:
        from ... import __version__

        return __version__

    def setup(self, workdir: Path) -> None:
        compile_package()
        self.root = workdir / "repo"
        self.versions = workdir / "repo-versions"
        self.versions.mkdir(parents=True)
        self.env = {"XETSTORE_CACHE": str(workdir / "cache")}
        self.cache = workdir / "cache"
        run_tool([*xetstore_command(), "init", "-q", str(self.root)], env=self.env)

    def add_version(self, source: Path, label: str) -> None:
        # From inside the version with `.`: the snapshot's paths are the version's own.
        command = [*xetstore_command(), "add", "--json", "-q", "--tag", label, "-r", str(self.root), "."]
        out = run_tool(command, cwd=source, env=self.env)
        listing = []
        for line in out.splitlines():
            item = json.loads(line)
            if item["type"] == "added":
                listing.append([Path(item["path"]).as_posix(), item["file_hash"]])
        (self.versions / f"{label}.json").write_text(json.dumps(listing))

    def background(self) -> bool:
        """`xetstore compact`, then `xetstore gc --grace 0`: what a maintained repository holds."""
        run_tool([*xetstore_command(), "compact", "-q", "-r", str(self.root)], env=self.env)
        run_tool([*xetstore_command(), "gc", "-q", "--grace", "0", "--no-dry-run", "-r", str(self.root)], env=self.env)
        return True

    def restore(self, label: str, dest: Path) -> None:
        listing = self.versions / f"{label}.json"
        run_tool([sys.executable, "-c", _RESTORE, str(self.root), str(listing), str(dest)], env=self.env)

    def restore_command(self, label: str, dest: Path) -> bool:
        run_tool([*xetstore_command(), "restore", "-q", "-r", str(self.root), label, str(dest)], env=self.env)
        return True

    def stored_bytes(self) -> int:
        return tree_bytes(self.root) + tree_bytes(self.versions)

    def cache_bytes(self) -> int:
        return disk_bytes(self.cache)

    def unique_bytes(self) -> int:
        out = run_tool([*xetstore_command(), "stats", "--json", "-r", str(self.root)], env=self.env)
        return int(json.loads(out.splitlines()[-1])["unique_bytes"])


class HfXetProcess(HfXet):
    name = "hf_xet-proc"
    description = "hf_xet local:// CAS as HfXet, one new Python process per upload commit and per restore"
    in_process = False

    def setup(self, workdir: Path) -> None:
        self._make_cas(workdir)  # no session here: each version's process opens its own

    def add_version(self, source: Path, label: str) -> None:
        out = json.loads(run_tool([sys.executable, "-c", _HF_ADD, self.endpoint, str(source)]).splitlines()[-1])
        self.new_bytes += out["new_bytes"]
        (self.versions / f"{label}.json").write_text(json.dumps(out["listing"]))

    def restore(self, label: str, dest: Path) -> None:
        run_tool([sys.executable, "-c", _HF_RESTORE, self.endpoint, str(self.versions / f"{label}.json"), str(dest)])
