"""Hugging Face's own client, `hf_xet`, against its offline `local://` endpoint.

This is Xet as the Hub runs it, minus the network: the gear-hash chunker,
xorbs with hf_xet's default `compression_policy` ("auto": LZ4 or byte-grouped
LZ4 chosen per chunk), shards, and its global-dedup table, all written to a
folder. Each version is one upload commit. `stored_bytes` counts the CAS
folder (`xet/xorbs/`: xorbs, shards, dedup table); the client's shard caches
(`xet/shard-cache`, `xet/shard-session`) count as cache. Unique bytes come
from the uploads' own dedup metrics (`new_bytes`).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from .base import System, disk_bytes, tree_bytes, tree_files

__all__ = ["HfXet"]


class HfXet(System):
    name = "hf_xet"
    description = "hf_xet local:// CAS: xet chunks, default compression policy (LZ4 / BG4-LZ4)"

    def missing(self) -> str | None:
        try:
            import hf_xet  # noqa: F401
        except ImportError:
            return "hf_xet is not installed (pip install hf_xet)"
        return None

    def version(self) -> str:
        return f"hf_xet {metadata.version('hf_xet')}"

    def setup(self, workdir: Path) -> None:
        import hf_xet

        self._make_cas(workdir)
        self.session: Any = hf_xet.XetSession()

    def _make_cas(self, workdir: Path) -> None:
        """An empty local:// CAS and the folder its version records go to."""
        self.root = workdir / "cas"
        self.versions = workdir / "cas-versions"
        self.root.mkdir(parents=True)
        self.versions.mkdir()
        self.endpoint = f"local://{self.root.resolve()}"
        self.new_bytes = 0

    def add_version(self, source: Path, label: str) -> None:
        rels = tree_files(source)
        listing = []
        with self.session.new_upload_commit(endpoint=self.endpoint) as commit:
            uploads = [commit.start_upload_file(str(source / rel)) for rel in rels]
            for rel, upload in zip(rels, uploads):
                result = upload.result()
                self.new_bytes += result.dedup_metrics.new_bytes
                listing.append([rel.as_posix(), result.xet_info.hash, result.xet_info.file_size])
        (self.versions / f"{label}.json").write_text(json.dumps(listing))

    def restore(self, label: str, dest: Path) -> None:
        import hf_xet

        listing = json.loads((self.versions / f"{label}.json").read_text())
        with self.session.new_file_download_group(endpoint=self.endpoint) as group:
            for rel, file_hash, size in listing:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                group.start_download_file(hf_xet.XetFileInfo(file_hash, size), str(dest / rel))

    def stored_bytes(self) -> int:
        return tree_bytes(self.root / "xet" / "xorbs") + tree_bytes(self.versions)

    def cache_bytes(self) -> int:
        return disk_bytes(self.root) - disk_bytes(self.root / "xet" / "xorbs")

    def unique_bytes(self) -> int:
        return self.new_bytes
