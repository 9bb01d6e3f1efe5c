"""The repository `config` object: a small JSON document, decoded defensively."""

from __future__ import annotations

import json
from typing import NamedTuple

from .errors import ConfigError, FormatError
from .params import FORMAT_VERSION, RepositoryParams

__all__ = ["RepositoryConfig", "encode_config", "decode_config"]

_MAX_CONFIG = 64 * 1024
_MAGIC = "xetstore"


class RepositoryConfig(NamedTuple):
    id: str
    params: RepositoryParams
    version: int = FORMAT_VERSION

    @classmethod
    def new(cls, params: RepositoryParams) -> RepositoryConfig:
        import uuid  # here, not at the top: uuid imports platform, and only `init` needs an id

        return cls(uuid.uuid4().hex, params)


def encode_config(config: RepositoryConfig) -> bytes:
    p = config.params
    doc = {
        "format": _MAGIC,
        "version": config.version,
        "id": config.id,
        "chunker": p.chunker,
        "compression": p.compression,
        "zstd_level": p.zstd_level,
        "frame_bytes": p.frame_bytes,
    }
    if p.delta:  # only then: a config without delta chunks stays as older writers made it
        doc["delta"] = True
    return (json.dumps(doc, indent=2) + "\n").encode()


def decode_config(data: bytes, what: str = "config") -> RepositoryConfig:
    """Parse a config; a newer format version is a ConfigError naming the upgrade."""
    if len(data) > _MAX_CONFIG:
        raise FormatError(what, "repository config is too large")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(what, f"repository config is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != _MAGIC:
        raise FormatError(what, "not a xetstore repository config")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise FormatError(what, "repository config has no valid version")
    if version > FORMAT_VERSION:
        raise ConfigError(
            f"repository format version {version} is newer than this xetstore supports "
            f"({FORMAT_VERSION}); upgrade xetstore"
        )
    ident = doc.get("id")
    if not isinstance(ident, str) or not 8 <= len(ident) <= 64 or not ident.isalnum():
        raise FormatError(what, "repository config has no valid id")
    return RepositoryConfig(ident, _params(doc, what), version)


def _params(doc: dict[str, object], what: str) -> RepositoryParams:
    fields = {"chunker": str, "compression": str, "zstd_level": int, "frame_bytes": int}
    values = {}
    for name, kind in fields.items():
        value = doc.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise FormatError(what, f"repository config field {name!r} is missing or invalid")
        values[name] = value
    delta = doc.get("delta", False)
    if not isinstance(delta, bool):
        raise FormatError(what, "repository config field 'delta' is invalid")
    values["delta"] = delta
    try:
        return RepositoryParams(**values)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise FormatError(what, str(exc)) from None
