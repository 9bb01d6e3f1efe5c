"""Paths and other text as the command line prints them: one line each, valid UTF-8.

A file name is bytes; Python hands over the undecodable ones as lone
surrogates (surrogateescape), which strict JSON parsers reject, and a name may
hold a newline, which would split one output line into two. Both are shown
escaped: undecodable bytes as `\\xNN`, control characters as `\\n`, `\\t` or
`\\xNN`. A name that needs no escaping is printed as it is.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["shown", "json_safe"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str) -> str:
    """`text` on one line, as valid UTF-8 (see the module's docstring)."""
    text = _utf8(text)
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def json_safe(value: Any) -> Any:
    """`value` with every string in it made valid UTF-8 (JSON escapes control characters itself)."""
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # the bytes of an undecodable file name, escaped
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
