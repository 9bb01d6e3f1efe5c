"""The worked example in docs/format.md decodes field by field (the spec cannot drift)."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

from xetstore.compression import Scheme
from xetstore.hashing import chunk_hash, file_hash, xet_hex
from xetstore.shard import decode_shard, encode_shard, shard_key
from xetstore.xorb import ChunkHeader, read_chunks, verify_xorb

DOC = (Path(__file__).resolve().parent.parent / "docs" / "format.md").read_text()
EXAMPLE = DOC[DOC.index("## 10. Worked example") :]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", EXAMPLE, re.S)


def hex_block(text: str) -> bytes:
    out = bytearray()
    for line in text.strip().splitlines():
        offset, _, body = line.partition("  ")
        assert int(offset, 16) == len(out), f"dump offset {offset} out of order"
        out += bytes.fromhex(body)
    return bytes(out)


VALUES = dict(line.split(": ", 1) for line in blocks("text")[0].strip().splitlines())
XORB, SHARD = (hex_block(b) for b in blocks("hex"))
CONTENT = VALUES["content"].encode().decode("unicode_escape").encode()


def test_example_xorb_decodes_to_the_listed_values() -> None:
    footer = verify_xorb(XORB, "example xorb")
    header = ChunkHeader.decode(XORB[:8], "example")
    assert (header.scheme, header.size, header.payload_size) == (Scheme.ZSTD, len(CONTENT), 0x29)
    (chunk,) = read_chunks(XORB[: footer.serialized_ends[-1]], footer, 0, 1, "example")
    assert chunk == CONTENT
    assert xet_hex(chunk_hash(chunk)) == VALUES["chunk hash"]
    assert xet_hex(footer.xorb_hash) == VALUES["xorb hash"]
    assert f"xorbs/{VALUES['xorb hash']}" == VALUES["xorb key"]
    assert struct.unpack("<I", XORB[-4:])[0] == 92 + 40 * footer.num_chunks


def test_example_shard_decodes_to_the_listed_values() -> None:
    shard = decode_shard(SHARD, "example shard")
    (manifest,) = shard.manifests
    (xorb,) = shard.xorbs
    (term,) = manifest.terms
    assert xet_hex(manifest.file_hash) == VALUES["file hash"]
    assert xet_hex(file_hash([(chunk_hash(CONTENT), len(CONTENT))])) == VALUES["file hash"]
    assert manifest.sha256.hex() == VALUES["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert (xet_hex(term.xorb_hash), term.first, term.end, term.size) == (VALUES["xorb hash"], 0, 1, len(CONTENT))
    assert xet_hex(term.range_hash) == VALUES["range hash"]
    assert xorb.footer == verify_xorb(XORB, "example xorb")
    assert xorb.stored_size == len(XORB)
    assert shard_key(SHARD) == VALUES["shard key"]
    assert encode_shard(shard) == SHARD


DELTA_DOC = DOC[DOC.index("### 6.7 Delta chunks") : DOC.index("## 7. Shard format")]
DELTA_XORB = hex_block(re.findall(r"```hex\n(.*?)```", DELTA_DOC, re.S)[0])


def test_example_delta_chunk_decodes_against_its_base() -> None:
    from xetstore.hashing import range_hash
    from xetstore.xorb import DeltaBase, decode_delta

    base_footer = verify_xorb(XORB, "example xorb")
    (base_chunk,) = read_chunks(XORB[: base_footer.serialized_ends[-1]], base_footer, 0, 1, "example")
    seen: list[DeltaBase] = []

    def bases(base: DeltaBase, what: str) -> bytes:
        seen.append(base)
        return base_chunk

    footer = verify_xorb(DELTA_XORB, "example delta xorb", bases)
    header = ChunkHeader.decode(DELTA_XORB[:8], "example")
    assert (header.scheme, header.payload_size, header.size) == (Scheme.DELTA, 0x60, 97)
    base, scheme, residual = decode_delta(DELTA_XORB[8 : 8 + 0x60], "example")
    assert (base.xorb_hash, base.first, base.end, base.offset) == (base_footer.xorb_hash, 0, 1, 0)
    assert base.range_hash == range_hash(base_footer.chunk_hashes[:1]) and scheme == Scheme.ZSTD
    (chunk,) = read_chunks(DELTA_XORB[: footer.serialized_ends[-1]], footer, 0, 1, "example", bases)
    assert chunk == CONTENT[:-2] + b"!\n" and seen == [base, base]
    delta_values = dict(line.split(": ", 1) for line in re.findall(r"```text\n(.*?)```", DELTA_DOC, re.S)[0].strip().splitlines())
    assert xet_hex(chunk_hash(chunk)) == delta_values["delta chunk hash"]


def test_example_delta_chunk_is_refused_without_its_base() -> None:
    import pytest

    from xetstore.errors import FormatError

    with pytest.raises(FormatError, match="never a delta"):
        verify_xorb(DELTA_XORB, "example delta xorb")  # as a base is read: no base reader
