"""The object key layout: every backend key is built and parsed here (docs/format.md §3).

    config                          the repository config
    xorbs/<xorb hash>               a xorb, as the session that made it wrote it (layout 0)
    xorbs/<xorb hash>.<n>           the same xorb in layout n (1..255): recompressed by compact
    shards/<hash of its bytes>      a shard                 (content-named records:
    deletes/<hash of its bytes>     a deletion record        the name is checked
    snapshots/<hash of its bytes>   a snapshot record        against the bytes)
    locks/<kind>-<session>-<seq>    a lease record
    quarantine/<key>                a damaged object set aside; <key>.repaired a staged rewrite
"""

from __future__ import annotations

import re

from .errors import IntegrityError
from .hashing import from_xet_hex, shard_hash, xet_hex

__all__ = [
    "CONFIG", "XORBS", "SHARDS", "DELETES", "SNAPSHOTS", "LOCKS", "QUARANTINE",
    "MAX_LAYOUT", "xorb_key", "parse_xorb_key", "layout_of", "shard_key", "record_key", "hash_in", "name_in", "names_its_content", "is_shard_key",
    "lease_key", "lease_session", "quarantine_key", "staged_key",
]  # fmt: skip

CONFIG = "config"
XORBS = "xorbs/"
SHARDS = "shards/"
DELETES = "deletes/"
SNAPSHOTS = "snapshots/"
LOCKS = "locks/"
QUARANTINE = "quarantine/"

_SHARD_KEY = re.compile(r"shards/[0-9a-f]{64}")
_XORB_KEY = re.compile(r"xorbs/([0-9a-f]{64})(?:\.([1-9][0-9]{0,2}))?")
MAX_LAYOUT = 255  # a layout number is a u8's worth: compact writes 1


def xorb_key(xorb_hash: bytes, layout: int = 0) -> str:
    """Key of a xorb in a layout: the first one (0) is the session's, a later one a recompression."""
    return XORBS + xet_hex(xorb_hash) + (f".{layout}" if layout else "")


def layout_of(key: str) -> int:
    """The layout a xorb key names (0 for anything that is not a later layout's key)."""
    named = parse_xorb_key(key)
    return named[1] if named is not None else 0


def parse_xorb_key(key: str) -> tuple[bytes, int] | None:
    """(xorb hash, layout) a xorb key names, or None if it is not a xorb key."""
    match = _XORB_KEY.fullmatch(key)
    if match is None or int(match[2] or 0) > MAX_LAYOUT:
        return None
    return from_xet_hex(match[1]), int(match[2] or 0)


def shard_key(data: bytes) -> str:
    """Backend key of a shard: its DATA_KEY hash, in Xet hex."""
    return record_key(SHARDS, data)


def record_key(prefix: str, data: bytes) -> str:
    """Key of a content-named record (shard, deletion record, snapshot) under `prefix`."""
    return prefix + xet_hex(shard_hash(data))


def hash_in(key: str, prefix: str) -> bytes | None:
    """The hash a `prefix` key names, or None if the rest is not a Xet hex hash."""
    try:
        return from_xet_hex(name_in(key, prefix))
    except IntegrityError:
        return None


def name_in(key: str, prefix: str) -> str:
    """The name after `prefix` (for a content-named record, the hex hash it claims)."""
    return key[len(prefix) :]


def names_its_content(key: str, prefix: str, data: bytes | memoryview) -> bool:
    """Whether a content-named record's key is the hash of its bytes."""
    return name_in(key, prefix) == xet_hex(shard_hash(data))


def is_shard_key(key: str) -> bool:
    return _SHARD_KEY.fullmatch(key) is not None


def lease_key(kind: str, session: str, seq: int) -> str:
    return f"{LOCKS}{kind}-{session}-{seq}"


def lease_session(key: str) -> tuple[str, str] | None:
    """(kind, session) of a lease record's key, or None if it is not one."""
    kind, _, rest = name_in(key, LOCKS).partition("-")
    session = rest.rpartition("-")[0]
    return (kind, session) if key.startswith(LOCKS) and session else None


def quarantine_key(key: str) -> str:
    """Where a damaged object is set aside: never read again, kept for forensics."""
    return QUARANTINE + key


def staged_key(key: str) -> str:
    """Where repair stages the rewrite of `key` before it replaces the damaged copy."""
    return f"{QUARANTINE}{key}.repaired"
