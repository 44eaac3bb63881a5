"""The manifest round-trips exactly and rejects bad files with a message naming the file and field."""

from __future__ import annotations

import json

import pytest

from workloads.compilation.manifest import CompilerInfo, Manifest, ManifestError, NumericCheck


def _manifest(**overrides) -> Manifest:
    values = dict(
        target="cpu", task="classification", labels=["negative", "positive"], input_shapes=[[4, 16], [4, 16]],
        input_dtypes=["int64", "int64"], output_names=["logits"], output_shape=[4, 2], batch_size=4,
        seq_len=16, dynamic_batch=True, compiler=CompilerInfo("torch.jit.trace", "2.13.0", []),
        torch_version="2.13.0", source_model_sha256="0" * 64,
        numeric_check=NumericCheck(0.9999, 1e-6, {"cosine_min": 0.999, "max_abs_diff": 0.01}, True),
        quantized=False,
    )
    values.update(overrides)
    return Manifest(**values)


def test_round_trip_keeps_every_field(tmp_path):
    original = _manifest()
    original.write(tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["format_version"] == 1 and data["artifact"] == "model.pt"
    assert data["input_names"] == ["input_ids", "attention_mask"]
    assert data["compiler"] == {"name": "torch.jit.trace", "version": "2.13.0", "args": []}
    assert Manifest.load(tmp_path) == original
    assert not list(tmp_path.glob(".manifest.*")), "temporary file left behind"


def test_manifest_without_the_optional_fields_still_loads(tmp_path):
    data = _manifest().to_dict()
    for optional in ("artifact", "input_names", "dynamic_seq_len"):
        del data[optional]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    loaded = Manifest.load(tmp_path)
    assert (loaded.artifact, loaded.input_names, loaded.dynamic_seq_len) == (
        "model.pt", ["input_ids", "attention_mask"], False)


def test_missing_field_is_named_with_the_file(tmp_path):
    data = _manifest().to_dict()
    del data["seq_len"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"manifest\.json: missing field 'seq_len'"):
        Manifest.load(tmp_path)


def test_unknown_target_and_bad_labels_are_rejected(tmp_path):
    data = _manifest().to_dict()
    data["target"] = "tpu"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"manifest\.json: field 'target' is 'tpu'; expected one of cpu"):
        Manifest.load(tmp_path)
    with pytest.raises(ManifestError, match="field 'labels' must be null for an embedding"):
        _manifest(task="embedding", output_shape=[4, 32])
    with pytest.raises(ManifestError, match="field 'output_shape' last dimension must equal the number of labels"):
        _manifest(output_shape=[4, 3])


def test_missing_or_broken_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable manifest"):
        Manifest.load(tmp_path)
