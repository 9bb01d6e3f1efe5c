"""Print the worked example of docs/format.md: the xorb and shard of a one-file repository.

tests/test_format_doc.py decodes what the document shows, so the spec cannot drift.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xetstore.hashing import chunk_hash, file_hash, range_hash, xet_hex  # noqa: E402
from xetstore.packing import XorbBuilder  # noqa: E402
from xetstore.shard import Manifest, Shard, ShardXorb, Term, encode_shard, shard_key  # noqa: E402

CONTENT = b"xetstore worked example " * 4 + b"\n"
CREATED = 1767225600  # 2026-01-01T00:00:00Z


def example() -> tuple[bytes, bytes, dict[str, str]]:
    h = chunk_hash(CONTENT)
    builder = XorbBuilder()
    builder.add(h, CONTENT)
    sealed = builder.seal()
    term = Term(sealed.hash, 0, 1, len(CONTENT), range_hash([h]))
    fh = file_hash([(h, len(CONTENT))])
    manifest = Manifest(fh, hashlib.sha256(CONTENT).digest(), (term,))
    shard = encode_shard(Shard((manifest,), (ShardXorb(sealed.footer, len(sealed.data)),), CREATED))
    values = {
        "content": repr(CONTENT)[2:-1],
        "chunk hash": xet_hex(h),
        "xorb hash": xet_hex(sealed.hash),
        "file hash": xet_hex(fh),
        "range hash": xet_hex(term.range_hash),
        "sha256": hashlib.sha256(CONTENT).hexdigest(),
        "xorb key": sealed.key,
        "shard key": shard_key(shard),
    }
    return sealed.data, shard, values


def hexdump(data: bytes) -> str:
    lines = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        lines.append(f"{off:04x}  {' '.join(f'{b:02x}' for b in row)}")
    return "\n".join(lines)


def main() -> None:
    xorb, shard, values = example()
    print("```text")
    print("\n".join(f"{k}: {v}" for k, v in values.items()))
    print("```\n\nXorb:\n\n```hex")
    print(hexdump(xorb))
    print("```\n\nShard:\n\n```hex")
    print(hexdump(shard))
    print("```")


if __name__ == "__main__":
    main()
