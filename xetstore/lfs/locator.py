"""The sentinel `lfs.url` that names a xetstore repository inside git config.

A committed `.lfsconfig` may set `lfs.url` (git-lfs refuses to take agent
settings from it), so the repository's URL travels as

    https://xetstore.invalid/file/srv/lfs%20repos/models     a folder: /srv/lfs repos/models
    https://xetstore.invalid/s3/bucket/prefix                 s3://bucket/prefix

and a once-per-machine `lfs.https://xetstore.invalid/.standalonetransferagent`
maps every such endpoint to the agent. Why this shape: a custom scheme would be
parsed by git-lfs as an SSH host; `.invalid` can never resolve, so a machine
without the agent installed fails loudly instead of writing somewhere else; and
everything but unreserved characters and single slashes is percent-encoded,
because git-lfs rewrites the URLs it handles (doubled or trailing slashes,
spaces) and the locator must survive that untouched.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from ..errors import ConfigError

__all__ = ["SENTINEL", "encode_locator", "decode_locator", "is_sentinel"]

SENTINEL = "https://xetstore.invalid/"
_HOST = "xetstore.invalid"
_SCHEMES = ("file", "s3")


def is_sentinel(value: str) -> bool:
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme.lower() == "https" and (parts.hostname or "") == _HOST


def encode_locator(url: str) -> str:
    """The sentinel URL for a repository URL: an absolute path, file:///path or s3://..."""
    if url.startswith("/"):
        scheme, rest = "file", url[1:]
    elif url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"file URL {url!r} must be file:///absolute/path")
        scheme, rest = "file", unquote(parts.path)[1:]
    elif url.startswith("s3://"):
        scheme, rest = "s3", url[len("s3://") :]
    else:
        raise ConfigError(
            f"cannot put {url!r} in lfs.url: use an absolute folder path or an s3://BUCKET/PREFIX URL "
            "that every clone can reach"
        )
    if not rest:
        raise ConfigError(f"repository URL {url!r} names no folder or bucket")
    return f"{SENTINEL}{scheme}/{_quote(rest)}"


def decode_locator(value: str) -> str:
    """The repository URL (a path or s3:// URL) a sentinel names; ConfigError if it names none."""
    if not is_sentinel(value):
        raise ConfigError(f"{value!r} is not a xetstore locator (it must start with {SENTINEL})")
    path = urlsplit(value.strip()).path.lstrip("/")
    scheme, _, rest = path.partition("/")
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"xetstore locator {value!r} names no repository: after {SENTINEL} expected "
            f"{' or '.join(s + '/' for s in _SCHEMES)}; write it with `xetstore lfs init URL`"
        )
    decoded = unquote(rest)
    if not decoded or "\0" in decoded:
        raise ConfigError(f"xetstore locator {value!r} has an empty or invalid {scheme} location")
    return "/" + decoded if scheme == "file" else "s3://" + decoded


def _quote(rest: str) -> str:
    """Percent-encode all but unreserved characters and single, inner slashes."""
    out = quote(rest, safe="/")
    while "//" in out:
        out = out.replace("//", "/%2F")
    if out.startswith("/"):
        out = "%2F" + out[1:]
    if out.endswith("/"):
        out = out[:-1] + "%2F"
    return out
