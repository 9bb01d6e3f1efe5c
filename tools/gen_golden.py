"""Write tests/data/fastcdc-vectors.json: pinned chunk boundaries and file hashes
of the default `fastcdc` chunker. A change to this file is a format change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.xet_vectors import build  # noqa: E402
from xetstore.chunking import FastCdcChunker, chunk_ends  # noqa: E402
from xetstore.hashing import chunk_hash, file_hash, xet_hex  # noqa: E402

RECIPES = {
    "rand_1MiB": {"kind": "pcg64_raw", "seed": 5, "size": 1 << 20},
    "rand_3MiB": {"kind": "pcg64_raw", "seed": 11, "size": 3 << 20},
    "text_numbered_2MiB": {"kind": "numbered_text", "size": 2 << 20},
    "zeros_1MiB": {"kind": "pattern", "pattern_hex": "00", "size": 1 << 20},
    "rand_8193": {"kind": "pcg64_raw", "seed": 2, "size": 8193},
}


def main() -> None:
    cases = []
    for name, recipe in RECIPES.items():
        data = build(recipe)
        ends = chunk_ends(data, FastCdcChunker())
        starts = [0, *ends[:-1]]
        entries = [(chunk_hash(data[s:e]), e - s) for s, e in zip(starts, ends)]
        cases.append({
            "name": name, "recipe": recipe, "chunk_ends": ends,
            "file_hash": xet_hex(file_hash(entries)),
        })  # fmt: skip
    out = ROOT / "tests" / "data" / "fastcdc-vectors.json"
    out.write_text(json.dumps({"chunker": "fastcdc 1.7.0, min 8 KiB, avg 64 KiB, max 128 KiB", "cases": cases}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
