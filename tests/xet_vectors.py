"""Load tests/data/xet-vectors.json and rebuild each case's input from its recipe."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

VECTORS = json.loads((Path(__file__).parent / "data" / "xet-vectors.json").read_text())
CASES: list[dict[str, Any]] = VECTORS["cases"]


def build(recipe: dict[str, Any]) -> bytes:
    """The bytes a recipe describes (see the JSON's `recipes` section)."""
    kind = recipe["kind"]
    if kind == "empty":
        return b""
    if kind == "pattern":
        pattern = bytes.fromhex(recipe["pattern_hex"])
        size = recipe["size"]
        return (pattern * (size // len(pattern) + 1))[:size]
    if kind == "pcg64_raw":
        words = np.random.PCG64(recipe["seed"]).random_raw(math.ceil(recipe["size"] / 8))
        return words.astype("<u8").tobytes()[: recipe["size"]]
    if kind == "numbered_text":
        return _numbered_text(recipe["size"])
    if kind == "edit":
        data = bytearray(build(recipe["base"]))
        edit = bytes.fromhex(recipe["edit_hex"])
        at = recipe["offset"]
        if recipe["mode"] == "overwrite":
            data[at : at + len(edit)] = edit
        else:
            data[at:at] = edit
        return bytes(data)
    if kind == "concat":
        return b"".join(build(part) for part in recipe["parts"])
    if kind == "slice":
        return build(recipe["of"])[recipe["start"] : recipe["end"]]
    raise ValueError(f"unknown recipe kind {kind}")


def _numbered_text(size: int) -> bytes:
    parts, total, i = [], 0, 0
    while total < size:
        line = b"line %d: the quick brown fox jumps over the lazy dog; value=%d\n" % (i, (i * 2654435761) % 1000003)
        parts.append(line)
        total += len(line)
        i += 1
    return b"".join(parts)[:size]
