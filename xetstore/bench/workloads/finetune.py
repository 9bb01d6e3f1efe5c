"""Fine-tune series: one float32 and one bf16 safetensors checkpoint, tuned step by step.

Each version holds `model-f32.safetensors` and `model-bf16.safetensors` (the same
weights in both dtypes), each derived from the version before:
v01 base → v02 full fine-tune (every weight moved by ~1e-3 of its magnitude, so no
chunk dedups) → v03 two layers retrained → v04 vocabulary grown (embedding rows
appended; every later tensor moves) → v05 one layer inserted in the middle.
It is the workload delta chunks are for: near-copies that exact dedup cannot find.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import Workload, rng, version_dir

__all__ = ["WORKLOAD"]

_WIDTH = 256
_FFN = 4 * _WIDTH
_VERSIONS = 5

_Tensors = list[tuple[str, np.ndarray]]


def _normal(seed: int, shape: tuple[int, ...], std: float, *labels: object) -> np.ndarray:
    values: np.ndarray = rng(seed, "finetune", *labels).standard_normal(shape, dtype=np.float32) * np.float32(std)
    return values


def _layer(seed: int, ident: str) -> _Tensors:
    std = 0.02 * (0.5 + rng(seed, "finetune-scale", ident).random())
    shapes = {"attn.qkv": (3 * _WIDTH, _WIDTH), "attn.out": (_WIDTH, _WIDTH), "mlp.up": (_FFN, _WIDTH), "mlp.down": (_WIDTH, _FFN)}
    return [(name, _normal(seed, shape, std, ident, name)) for name, shape in shapes.items()]


def _bytes(values: np.ndarray, dtype: str) -> bytes:
    if dtype == "F32":
        return values.astype("<f4").tobytes()
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")  # bf16, round to nearest even
    out: bytes = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()
    return out


def _write(path: Path, tensors: _Tensors, dtype: str) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, values in tensors:
        raw = _bytes(values, dtype)
        header[name] = {"dtype": dtype, "shape": list(values.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for raw in blobs:
            f.write(raw)


def _flatten(embed: np.ndarray, layers: list[_Tensors]) -> _Tensors:
    flat = [("embed.weight", embed)]
    for i, layer in enumerate(layers):
        flat += [(f"layers.{i}.{name}", values) for name, values in layer]
    return flat


def generate(dest: Path, target_bytes: int, seed: int) -> None:
    # f32 + bf16 = 6 bytes per weight per version
    per_layer = 6 * (4 * _WIDTH * _WIDTH + 2 * _FFN * _WIDTH)
    n_layers = max(2, round(target_bytes / _VERSIONS / per_layer * 0.8))
    embed = _normal(seed, (8 * _WIDTH, _WIDTH), 0.02, "embed")
    layers = [_layer(seed, f"L{i}") for i in range(n_layers)]

    def save(n: int) -> None:
        flat = _flatten(embed, layers)
        for dtype, name in (("F32", "model-f32.safetensors"), ("BF16", "model-bf16.safetensors")):
            _write(version_dir(dest, n) / name, flat, dtype)

    def nudge(values: np.ndarray, relative: float, *labels: object) -> np.ndarray:
        noise = rng(seed, "finetune-step", *labels).standard_normal(values.shape, dtype=np.float32)
        moved: np.ndarray = values + noise * np.float32(relative) * np.abs(values)
        return moved

    save(1)
    embed = nudge(embed, 1e-3, "full", "embed")
    layers = [[(name, nudge(v, 1e-3, "full", i, name)) for name, v in layer] for i, layer in enumerate(layers)]
    save(2)
    for i in (n_layers // 3, 2 * n_layers // 3):
        layers[i] = [(name, nudge(v, 0.05, "tune", i, name)) for name, v in layers[i]]
    save(3)
    embed = np.concatenate([embed, _normal(seed, (_WIDTH // 2, _WIDTH), 0.02, "embed-grow")])
    save(4)
    layers.insert(n_layers // 2, _layer(seed, "inserted"))
    save(5)


WORKLOAD = Workload(
    "finetune",
    "f32 + bf16 safetensors: base, full fine-tune (1e-3), 2 layers tuned, vocab grown, layer inserted",
    generate,
)
