"""Model series: a safetensors checkpoint of a small llama-like model and its descendants.

The file format is written here (8-byte little-endian header length, JSON header,
tensor bytes), so no safetensors package is needed. Weights are bf16 drawn from
normal distributions with a scale per tensor (norm weights are f32 around 1.0),
which compresses and dedups like real weights do, unlike random bytes.

Versions: v01 base → v02 two layers fine-tuned → v03 head only retrained →
v04 one layer inserted in the middle (every later tensor moves) → v05 vocabulary
grown (embedding and head get rows; everything after the embedding moves) →
v06 full fine-tune with small noise everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import Workload, rng, version_dir

__all__ = ["WORKLOAD", "write_safetensors", "to_bf16"]

_VERSIONS = 6
_WIDTHS = (32, 64, 128, 256, 512, 768, 1024, 1536, 2048, 4096)


@dataclass(slots=True)
class _Tensor:
    name: str
    dtype: str  # "BF16" or "F32"
    values: np.ndarray  # float32 master copy


def to_bf16(values: np.ndarray) -> bytes:
    """float32 -> bf16 bytes with round-to-nearest-even (as torch does)."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    out: bytes = rounded.astype("<u2").tobytes()
    return out


def write_safetensors(path: Path, tensors: list[_Tensor]) -> None:
    """Write tensors in list order with a safetensors header (8-byte aligned)."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for t in tensors:
        raw = to_bf16(t.values) if t.dtype == "BF16" else t.values.astype("<f4").tobytes()
        header[t.name] = {"dtype": t.dtype, "shape": list(t.values.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for raw in blobs:
            f.write(raw)


@dataclass(frozen=True, slots=True)
class _Shape:
    width: int
    ffn: int
    layers: int
    vocab: int


def _shape(target_bytes: int) -> _Shape:
    """Width, depth and vocabulary that make each version about target/6 bytes."""
    per_version = target_bytes / (_VERSIONS + 0.5)
    width = _WIDTHS[0]
    for w in _WIDTHS:
        if 12 * w * w * 2 * 6 <= per_version:
            width = w
    ffn = max(32, (8 * width // 3) // 32 * 32)
    vocab = 8 * width
    layer_bytes = (4 * width * width + 3 * ffn * width) * 2
    layers = max(4, round((per_version - 2 * vocab * width * 2) / layer_bytes))
    return _Shape(width, ffn, layers, vocab)


def _normal(seed: int, name: str, shape: tuple[int, ...], std: float, tag: str = "init") -> np.ndarray:
    values: np.ndarray = rng(seed, "model", name, tag).standard_normal(shape, dtype=np.float32) * np.float32(std)
    return values


def _layer(seed: int, s: _Shape, i: int, ident: str) -> list[_Tensor]:
    """One decoder layer; `ident` seeds its values, `i` only names it."""
    d, f = s.width, s.ffn
    scale = 0.5 + rng(seed, "model-scale", ident).random()  # per-layer spread
    std = 0.02 * scale
    out_std = std / np.sqrt(2 * s.layers)
    p = f"model.layers.{i}."
    specs = [
        ("input_layernorm.weight", (d,), None),
        ("self_attn.q_proj.weight", (d, d), std),
        ("self_attn.k_proj.weight", (d, d), std),
        ("self_attn.v_proj.weight", (d, d), std),
        ("self_attn.o_proj.weight", (d, d), out_std),
        ("post_attention_layernorm.weight", (d,), None),
        ("mlp.gate_proj.weight", (f, d), std),
        ("mlp.up_proj.weight", (f, d), std),
        ("mlp.down_proj.weight", (d, f), out_std),
    ]
    tensors = []
    for suffix, shape, sd in specs:
        key = f"{ident}.{suffix}"
        if sd is None:  # norm weights: f32 near 1.0
            tensors.append(_Tensor(p + suffix, "F32", 1.0 + _normal(seed, key, shape, 0.05)))
        else:
            tensors.append(_Tensor(p + suffix, "BF16", _normal(seed, key, shape, sd)))
    return tensors


def _base(seed: int, s: _Shape) -> tuple[_Tensor, list[list[_Tensor]], _Tensor, _Tensor]:
    embed = _Tensor("model.embed_tokens.weight", "BF16", _normal(seed, "embed", (s.vocab, s.width), 0.02))
    layers = [_layer(seed, s, i, f"L{i}") for i in range(s.layers)]
    norm = _Tensor("model.norm.weight", "F32", 1.0 + _normal(seed, "norm", (s.width,), 0.05))
    head = _Tensor("lm_head.weight", "BF16", _normal(seed, "head", (s.vocab, s.width), 0.02))
    return embed, layers, norm, head


def _nudge(t: _Tensor, seed: int, tag: str, relative: float) -> None:
    """A training step: add noise proportional to the tensor's own spread."""
    std = float(t.values.std()) or 1.0
    t.values = t.values + _normal(seed, t.name, t.values.shape, std * relative, tag)


def _renumber(layers: list[list[_Tensor]]) -> None:
    for i, layer in enumerate(layers):
        for t in layer:
            t.name = "model.layers." + str(i) + "." + t.name.split(".", 3)[3]


def generate(dest: Path, target_bytes: int, seed: int) -> None:
    s = _shape(target_bytes)
    embed, layers, norm, head = _base(seed, s)

    def save(n: int) -> None:
        flat = [embed] + [t for layer in layers for t in layer] + [norm, head]
        write_safetensors(version_dir(dest, n) / "model.safetensors", flat)

    save(1)
    for i in (s.layers // 3, 2 * s.layers // 3):  # fine-tune two layers
        for t in layers[i]:
            _nudge(t, seed, "finetune", 0.05)
    save(2)
    _nudge(head, seed, "head", 0.05)
    save(3)
    layers.insert(s.layers // 2, _layer(seed, s, s.layers // 2, "inserted"))
    _renumber(layers)
    save(4)
    extra = max(1, s.vocab // 16)
    embed.values = np.concatenate([embed.values, _normal(seed, "embed-grow", (extra, s.width), 0.02)])
    head.values = np.concatenate([head.values, _normal(seed, "head-grow", (extra, s.width), 0.02)])
    save(5)
    for t in [embed, *(t for layer in layers for t in layer), norm, head]:
        _nudge(t, seed, "full", 0.01)
    save(6)


WORKLOAD = Workload(
    "model",
    "safetensors bf16 checkpoint: base, 2 layers tuned, head tuned, layer inserted, vocab grown, full tune",
    generate,
)
