"""`python -m workloads.compilation` on CPU: artifact and manifest load without the model class, drift is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

from workloads.common.model_dir import model_sha256
from workloads.compilation.compile import main
from workloads.compilation.manifest import Manifest
from workloads.compilation.model import load_exportable

# TorchScript (trace, script, save, load) is the artifact contract; its deprecation notices are expected.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")

LOAD_WITHOUT_CLASS = """
import json, sys, torch
module = torch.jit.load(sys.argv[1] + "/model.pt")
ids = torch.tensor(json.loads(sys.argv[2]), dtype=torch.int64)
mask = torch.tensor(json.loads(sys.argv[3]), dtype=torch.int64)
out = module(ids, mask)
assert "transformers" not in sys.modules, "the artifact must load without the model's Python class"
print(json.dumps(out.tolist()))
"""


def _compile(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_cpu_classifier_artifact_loads_without_the_model_class(tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "compiled"
    code, stdout, err = _compile(capsys, "--model-dir", str(tiny_bert_dir), "--target", "cpu", "--batch-size", "2",
                                 "--seq-len", "16", "--out", str(out))
    assert code == 0, err
    assert json.loads(stdout)["numeric_check"]["passed"] is True
    manifest = Manifest.load(out)
    assert (manifest.target, manifest.task, manifest.labels) == ("cpu", "classification", ["negative", "positive"])
    assert manifest.input_names == ["input_ids", "attention_mask"] and manifest.input_shapes == [[2, 16], [2, 16]]
    assert manifest.input_dtypes == ["int64", "int64"] and manifest.output_names == ["logits"]
    assert manifest.output_shape == [2, 2] and manifest.dynamic_batch and not manifest.quantized
    assert manifest.dynamic_seq_len, "traced TorchScript takes shorter inputs too (checked)"
    assert manifest.compiler.name == "torch.jit.trace" and manifest.torch_version == torch.__version__
    assert manifest.source_model_sha256 == model_sha256(tiny_bert_dir)
    assert manifest.numeric_check.passed and manifest.numeric_check.cosine_min >= 0.9999
    assert not list(tmp_path.glob(".compiled.tmp-*")), "staging folder left behind"

    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["a good day", "bad food", "the worst film"], padding="max_length", max_length=16,
                      return_tensors="pt")
    result = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_CLASS, str(out),
                             json.dumps(batch["input_ids"].tolist()), json.dumps(batch["attention_mask"].tolist())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = torch.tensor(json.loads(result.stdout))
    eager = load_exportable(tiny_bert_dir).module
    with torch.no_grad():
        expected = eager(batch["input_ids"], batch["attention_mask"])
    assert got.shape == (3, 2), "a batch of 3 through an artifact compiled for 2: dynamic batch"
    assert torch.allclose(got, expected, atol=1e-4)


def test_cpu_encoder_gives_normalised_embeddings(tiny_bert_encoder_dir, tmp_path, capsys):
    out = tmp_path / "encoder"
    code, _, err = _compile(capsys, "--model-dir", str(tiny_bert_encoder_dir), "--seq-len", "12", "--out", str(out))
    assert code == 0, err
    manifest = Manifest.load(out)
    assert (manifest.task, manifest.labels, manifest.output_names) == ("embedding", None, ["embedding"])
    assert manifest.output_shape == [1, 32] and manifest.batch_size == 1
    module = torch.jit.load(str(out / "model.pt"))
    mask = torch.tensor([[1] * 6 + [0] * 6, [1] * 12])
    embedding = module(torch.randint(5, 40, (2, 12)) * mask, mask)
    assert embedding.shape == (2, 32)
    assert torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)


def test_int8_quantized_cpu_artifact(tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "int8"
    code, stdout, err = _compile(capsys, "--model-dir", str(tiny_bert_dir), "--seq-len", "16", "--batch-size", "2",
                                 "--quantize", "--out", str(out))
    assert code == 0, err
    manifest = Manifest.load(out)
    assert manifest.quantized and manifest.compiler.args == ["quantize_dynamic(Linear, qint8, per-channel)"]
    assert manifest.numeric_check.tolerances == {"cosine_min": 0.99, "max_abs_diff": 0.1}
    assert 0 < manifest.numeric_check.max_abs_diff <= 0.1, "int8 changes the numbers a little, not a lot"


def test_drift_beyond_tolerance_is_refused_and_nothing_is_written(tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "refused"
    code, stdout, err = _compile(capsys, "--model-dir", str(tiny_bert_dir), "--seq-len", "16", "--quantize",
                                 "--max-abs-diff", "0", "--out", str(out))
    assert code == 1 and stdout == ""
    assert err.startswith("python -m workloads.compilation: refused: compiled artifact drifts from the eager model:")
    assert "(maximum 0.0); nothing written to" in err and "\n" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(("extra", "message"), [
    (["--seq-len", "4096"], "--seq-len 4096 exceeds the model's max_position_embeddings (128) in "),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--quantize", "--target", "inferentia"], "--quantize is only for --target cpu or onnx, not inferentia"),
    (["--upload", "s3://bucket/p"], "--upload needs --kms-key-id"),
    (["--upload", "bucket/p", "--kms-key-id", "k"], "--upload 'bucket/p': expected s3://bucket/prefix"),
    (["--task", "classification", "--model-dir", "{encoder}"],
     "config.json: task 'classification' needs a model with a sequence-classification head"),
])
def test_bad_input_is_one_line(tiny_bert_dir, tiny_bert_encoder_dir, tmp_path, capsys, extra, message):
    extra = [e.replace("{encoder}", str(tiny_bert_encoder_dir)) for e in extra]
    code, _, err = _compile(capsys, "--model-dir", str(tiny_bert_dir), "--out", str(tmp_path / "o"), *extra)
    assert code == 2 and message in err and "\n" not in err, err


def test_missing_weights_and_non_empty_out_are_named(tiny_bert_dir, tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text((tiny_bert_dir / "config.json").read_text())
    code, _, err = _compile(capsys, "--model-dir", str(tmp_path / "m"), "--out", str(tmp_path / "o"))
    assert code == 2 and f"{tmp_path / 'm'}: no model weights" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    code, _, err = _compile(capsys, "--model-dir", str(tiny_bert_dir), "--out", str(tmp_path / "full"))
    assert code == 2 and "folder is not empty (pass --overwrite to replace it)" in err
    assert (tmp_path / "full" / "keep.txt").is_file()
