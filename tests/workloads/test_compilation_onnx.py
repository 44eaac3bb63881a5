"""`--target onnx`: dynamic batch and sequence axes, ONNX Runtime fusions, the manifest, and the numeric gate
(fp32 matches eager; int8 is published only when it passes, and refused with exit 1 otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

from workloads.compilation.compile import main
from workloads.compilation.manifest import Manifest
from workloads.compilation.model import load_exportable

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# The artifact runs on onnxruntime alone: no torch, no transformers, no model class.
RUN_WITH_ORT_ONLY = """
import json, sys
import numpy as np, onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1] + "/model.onnx", providers=["CPUExecutionProvider"])
feed = {"input_ids": np.array(json.loads(sys.argv[2]), dtype=np.int64),
        "attention_mask": np.array(json.loads(sys.argv[3]), dtype=np.int64)}
out = session.run(None, feed)[0]
assert "torch" not in sys.modules and "transformers" not in sys.modules
print(json.dumps(out.tolist()))
"""


def _compile(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@pytest.mark.parametrize("fixture, task, output", [("tiny_bert_encoder_dir", "embedding", "embedding"),
                                                   ("tiny_bert_dir", "classification", "logits")])
def test_onnx_artifact_has_dynamic_axes_and_matches_a_fresh_eager_model(request, tmp_path, capsys, fixture, task,
                                                                        output):
    model_dir = request.getfixturevalue(fixture)
    out = tmp_path / "onnx"
    code, stdout, err = _compile(capsys, "--model-dir", str(model_dir), "--target", "onnx", "--batch-size", "2",
                                 "--seq-len", "16", "--out", str(out))
    assert code == 0, err
    m = Manifest.load(out)
    assert (m.target, m.task, m.artifact, m.output_names) == ("onnx", task, "model.onnx", [output])
    assert m.dynamic_batch and m.dynamic_seq_len and not m.quantized
    assert m.compiler.name == "onnxruntime" and any("optimizer(model_type=bert" in a for a in m.compiler.args)
    assert m.numeric_check.passed and m.numeric_check.cosine_min >= 0.9999
    assert json.loads(stdout)["target"] == "onnx"
    names = {p.name for p in out.iterdir()}
    assert {"manifest.json", "model.onnx", "tokenizer.json", "vocab.txt"} <= names
    assert not names & {"exported.onnx", "fused.onnx", "model.pt"}, names

    # Another batch size and a length the export never saw, against a freshly loaded eager model.
    tokenizer = AutoTokenizer.from_pretrained(out)
    texts = ["a good day", "bad food", "the worst film of the year", "happy", "great story and nice place"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    result = subprocess.run([sys.executable, "-c", RUN_WITH_ORT_ONLY, str(out),
                             json.dumps(batch["input_ids"].tolist()), json.dumps(batch["attention_mask"].tolist())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = torch.tensor(json.loads(result.stdout))
    with torch.no_grad():
        want = load_exportable(model_dir).module(batch["input_ids"], batch["attention_mask"])
    assert got.shape == want.shape == (5, want.shape[1])
    assert float(torch.nn.functional.cosine_similarity(got, want, dim=-1).min()) >= 0.9999


def test_onnx_int8_is_gated_by_the_numeric_check(tiny_bert_encoder_dir, tmp_path, capsys):
    out = tmp_path / "int8"
    code, _, err = _compile(capsys, "--model-dir", str(tiny_bert_encoder_dir), "--target", "onnx", "--quantize",
                            "--seq-len", "16", "--min-cosine", "0.999999999", "--max-abs-diff", "1e-9",
                            "--out", str(out))
    assert code == 1 and "refused: compiled artifact drifts" in err and not out.exists()
    code, _, err = _compile(capsys, "--model-dir", str(tiny_bert_encoder_dir), "--target", "onnx", "--quantize",
                            "--seq-len", "16", "--min-cosine", "0.5", "--max-abs-diff", "1.0", "--out", str(out))
    assert code == 0, err
    m = Manifest.load(out)
    assert m.quantized and any("quantize_dynamic(QInt8, per-channel" in a for a in m.compiler.args)
    assert m.numeric_check.tolerances == {"cosine_min": 0.5, "max_abs_diff": 1.0}


def test_onnx_manifest_names_an_onnx_file(tiny_bert_encoder_dir, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert _compile(capsys, "--model-dir", str(tiny_bert_encoder_dir), "--target", "onnx", "--seq-len", "8",
                    "--out", str(out))[0] == 0
    data = json.loads((out / "manifest.json").read_text())
    data["artifact"] = "model.pt"
    from workloads.compilation.manifest import ManifestError

    with pytest.raises(ManifestError, match="field 'artifact' is 'model.pt'; an onnx target has a .onnx artifact"):
        Manifest.from_dict(data, "m.json")
