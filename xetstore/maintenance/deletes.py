"""Deletion records, `deletes/<hash>`: immutable tombstones, encoded, read and written here only.

`xetstore rm` never rewrites a shard (an immutable, content-named object).
It writes a deletion record naming, for each removed file, the shards whose
manifest of that file it deletes. A manifest of the same file in any other
shard (a later re-add, a concurrent writer) stays live: a deletion covers
only what its writer saw. Records are small JSON documents, named by the
DATA_KEY blake3 hash of their bytes like shards, decoded defensively.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backends import Backend
from ..errors import FormatError, IntegrityError
from ..hashing import from_xet_hex, xet_hex
from ..keys import DELETES, is_shard_key, names_its_content, record_key
from ..records import dump_record, load_record
from .leases import Lease

__all__ = [
    "DeleteRecord",
    "encode_delete_record",
    "decode_delete_record",
    "delete_record_key",
    "put_delete_record",
    "read_delete_record",
]

_MAGIC = "xetstore-delete"
_VERSION = 1
_MAX_RECORD = 16 << 20
_MAX_ENTRIES = 1 << 20
_MAX_SHARDS_PER_FILE = 1 << 16


class DeleteRecord(NamedTuple):
    """(file hash, shard keys whose manifest of the file is deleted), per file."""

    entries: tuple[tuple[bytes, tuple[str, ...]], ...]
    created: int = 0  # seconds since the epoch, informative only

    def files(self) -> list[bytes]:
        return [f for f, _ in self.entries]


def encode_delete_record(record: DeleteRecord) -> bytes:
    doc = {
        "format": _MAGIC,
        "version": _VERSION,
        "created": record.created,
        "files": [{"file_hash": xet_hex(f), "shards": sorted(s)} for f, s in record.entries],
    }
    return dump_record(doc)


def delete_record_key(data: bytes) -> str:
    return record_key(DELETES, data)


def decode_delete_record(data: bytes, what: str) -> DeleteRecord:
    """Parse a record; every field is checked before it is used."""
    doc = load_record(data, what, _MAGIC, _VERSION, _MAX_RECORD, "deletion record")
    created, files = doc.get("created"), doc.get("files")
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        raise FormatError(what, "deletion record has no valid time")
    if not isinstance(files, list) or len(files) > _MAX_ENTRIES:
        raise FormatError(what, "deletion record has no valid file list")
    return DeleteRecord(tuple(_entry(e, what) for e in files), created)


def _entry(item: object, what: str) -> tuple[bytes, tuple[str, ...]]:
    if not isinstance(item, dict):
        raise FormatError(what, "deletion record entry is not an object")
    fh, shards = item.get("file_hash"), item.get("shards")
    if not isinstance(fh, str) or not isinstance(shards, list) or len(shards) > _MAX_SHARDS_PER_FILE:
        raise FormatError(what, "deletion record entry is malformed")
    if not all(isinstance(s, str) and is_shard_key(s) for s in shards):
        raise FormatError(what, "deletion record names an invalid shard key")
    return from_xet_hex(fh), tuple(shards)


def read_delete_record(backend: Backend, key: str) -> DeleteRecord:
    """A deletion record, checked against its name; raises NotFound or IntegrityError."""
    data = backend.get(key)
    if not names_its_content(key, DELETES, data):
        raise IntegrityError(f"{key}: content does not match its name")
    return decode_delete_record(data, key)


def put_delete_record(backend: Backend, lease: Lease, record: DeleteRecord) -> str:
    """Publish `record` while `lease` still holds; returns its key."""
    data = encode_delete_record(record)
    key = delete_record_key(data)
    lease.check()
    backend.put(key, data)
    return key
