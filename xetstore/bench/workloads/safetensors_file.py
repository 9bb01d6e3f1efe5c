"""The safetensors format, read and written here (no safetensors package needed).

A file is an 8-byte little-endian header length, a JSON header mapping each tensor's name
to {dtype, shape, data_offsets} (with an optional `__metadata__` of strings), padded with
spaces to a multiple of 8 bytes, then the tensors' bytes back to back. The writer puts
the tensors in the order it is given and the metadata first, in compact JSON, as the
safetensors library does: a file read here and written back is byte-identical.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Tensor", "NUMPY_DTYPES", "parse", "serialize", "write", "to_array", "from_array"]

# safetensors dtype -> numpy dtype (little-endian, as the format stores them).
NUMPY_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}  # fmt: skip
_ITEM_SIZES = {"BF16": 2, **{k: np.dtype(v).itemsize for k, v in NUMPY_DTYPES.items()}}


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    dtype: str  # a safetensors dtype: "F32", "I64", …
    shape: tuple[int, ...]
    data: bytes  # the tensor's bytes as stored


def parse(raw: bytes) -> tuple[dict[str, str] | None, list[Tensor]]:
    """(metadata, tensors in file order) of a safetensors file; ValueError if it is not one."""
    if len(raw) < 8:
        raise ValueError("not a safetensors file: shorter than its 8-byte header length")
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise ValueError(f"header length {size} runs past the end of the file")
    header = json.loads(raw[8 : 8 + size])
    metadata = header.pop("__metadata__", None)
    data = memoryview(raw)[8 + size :]
    entries = sorted(header.items(), key=lambda item: tuple(item[1]["data_offsets"]))
    tensors, end = [], 0
    for name, entry in entries:
        tensors.append(_tensor(name, entry, data, end))
        end = entry["data_offsets"][1]
    if end != len(data):
        raise ValueError(f"tensors end at {end} but the file holds {len(data)} bytes of data")
    return metadata, tensors


def _tensor(name: str, entry: dict[str, object], data: memoryview, expected_start: int) -> Tensor:
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _ITEM_SIZES:
        raise ValueError(f"{name}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
        raise ValueError(f"{name}: shape and data_offsets must be lists")
    start, stop = offsets
    if start != expected_start:
        raise ValueError(f"{name}: data starts at {start}, not at {expected_start} (offsets must be contiguous)")
    if stop - start != math.prod(shape) * _ITEM_SIZES[dtype]:
        raise ValueError(f"{name}: {stop - start} bytes for shape {shape} of {dtype}")
    if stop > len(data):
        raise ValueError(f"{name}: data runs past the end of the file")
    return Tensor(name, dtype, tuple(shape), bytes(data[start:stop]))


def serialize(tensors: list[Tensor], metadata: dict[str, str] | None = None) -> tuple[bytes, list[bytes]]:
    """(length + padded header, tensor bytes in order): the file is their concatenation."""
    header: dict[str, object] = {} if metadata is None else {"__metadata__": metadata}
    offset = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    return len(text).to_bytes(8, "little") + text, [t.data for t in tensors]


def write(path: Path, tensors: list[Tensor], metadata: dict[str, str] | None = None) -> None:
    head, blobs = serialize(tensors, metadata)
    with open(path, "wb") as f:
        f.write(head)
        for blob in blobs:
            f.write(blob)


def to_array(t: Tensor) -> np.ndarray:
    """A read-only view of the tensor's values (BF16 has no numpy dtype and is refused)."""
    if t.dtype not in NUMPY_DTYPES:
        raise ValueError(f"{t.name}: no numpy dtype for {t.dtype}")
    return np.frombuffer(t.data, dtype=NUMPY_DTYPES[t.dtype]).reshape(t.shape)


def from_array(name: str, dtype: str, values: np.ndarray) -> Tensor:
    """A tensor of `dtype` holding `values` (cast to it)."""
    stored = np.ascontiguousarray(values, dtype=NUMPY_DTYPES[dtype])
    return Tensor(name, dtype, tuple(int(n) for n in stored.shape), stored.tobytes())
