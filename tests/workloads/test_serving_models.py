"""What the server loads: a classifier directory, compiled TorchScript artifacts with their manifest (fixed
and dynamic shapes, Neuron targets), and the command line and environment it starts from."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from serving_helpers import ThreadServer, distinct_texts, post_json, request

from workloads.compilation.manifest import CompilerInfo, Manifest, NumericCheck
from workloads.serving.config import DEFAULT_MODEL_DIR, parse_config
from workloads.serving.model import ModelLoadError, load_predictor, mean_pool


def _config(model_dir: Path, **overrides: object):
    return parse_config(["--model-dir", str(model_dir), "--model-name", "m", "--no-access-log",
                         "--log-level", "WARNING", *[f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()]],
                        environ={})


class _Embed(torch.nn.Module):
    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state,
                         attention_mask)


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _artifact(src: Path, out: Path, *, task: str, target: str = "cpu", batch: int = 4, seq: int = 16,
              dynamic: bool = False, dynamic_seq: bool = False, passed: bool = True) -> Path:
    """A compiled-artifact directory as the compilation step writes it: model.pt, tokenizer, manifest.json."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    if task == "embedding":
        module, labels, width = _Embed(AutoModel.from_pretrained(src).eval()), None, 32
    else:
        module = _Logits(AutoModelForSequenceClassification.from_pretrained(src).eval())
        labels, width = ["negative", "positive"], 2
    ids = torch.ones(batch, seq, dtype=torch.int64)
    with torch.no_grad():
        traced = torch.jit.trace(module, (ids, torch.ones_like(ids)), strict=False)
    traced.save(str(out / "model.pt"))
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    Manifest(target=target, task=task, labels=labels, input_shapes=[[batch, seq], [batch, seq]],
             input_dtypes=["int64", "int64"], output_names=["embedding" if labels is None else "logits"],
             output_shape=[batch, width], batch_size=batch, seq_len=seq, dynamic_batch=dynamic,
             compiler=CompilerInfo("torch.jit.trace", torch.__version__, []), torch_version=torch.__version__,
             source_model_sha256="0" * 64, numeric_check=NumericCheck(0.9999, 1e-5, {"cosine_min": 0.999}, passed),
             quantized=False, dynamic_seq_len=dynamic_seq).write(out)
    return out


def test_classifier_answers_label_and_scores_on_both_protocols(tiny_bert_dir: Path) -> None:
    clf = load_predictor(tiny_bert_dir)
    texts = distinct_texts(3, seed=40)
    with ThreadServer(_config(tiny_bert_dir), clf) as srv:
        status, _, sm = post_json(srv.port, "/invocations", {"inputs": texts})
        _, _, meta = request(srv.port, "GET", "/v2/models/m")
        status2, _, v2 = post_json(srv.port, "/v2/models/m/infer", {
            "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": texts}]})
    assert status == 200 and status2 == 200
    probs = clf.predict(texts)
    for out, p in zip(sm["outputs"], probs):
        assert out["label"] == ["negative", "positive"][int(p.argmax())]
        assert out["scores"]["negative"] == pytest.approx(float(p[0]), abs=1e-4)
        assert sum(out["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    meta = json.loads(meta)
    assert [o["name"] for o in meta["outputs"]] == ["scores", "label"]
    assert meta["outputs"][0] == {"name": "scores", "datatype": "FP32", "shape": [-1, 2]}
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert outputs["scores"]["shape"] == [3, 2]
    np.testing.assert_allclose(np.array(outputs["scores"]["data"]).reshape(3, 2), probs, atol=1e-4)
    assert outputs["label"]["data"] == [o["label"] for o in sm["outputs"]]


def test_fixed_shape_embedding_artifact_matches_the_eager_model(tiny_bert_encoder_dir: Path, tmp_path: Path) -> None:
    art = load_predictor(_artifact(tiny_bert_encoder_dir, tmp_path / "art", task="embedding", batch=4, seq=16))
    eager = load_predictor(tiny_bert_encoder_dir, max_seq_len=16)
    assert art.info.fixed_batch == 4 and art.info.platform == "torchscript_cpu" and art.info.dim == 32
    texts = distinct_texts(6, seed=41)  # 6 rows: one full chunk of 4, one padded chunk of 2
    np.testing.assert_allclose(art.predict(texts), eager.predict(texts), atol=1e-4)


def test_fully_dynamic_artifact_uses_length_groups(tiny_bert_encoder_dir: Path, tmp_path: Path) -> None:
    art = load_predictor(_artifact(tiny_bert_encoder_dir, tmp_path / "dyn", task="embedding", dynamic=True,
                                   dynamic_seq=True))
    assert art.info.fixed_batch is None and not art.info.fixed_seq_len
    texts = distinct_texts(20, seed=43)  # more than one padding group
    np.testing.assert_allclose(art.predict(texts), load_predictor(tiny_bert_encoder_dir, max_seq_len=16).predict(texts),
                               atol=1e-4)


def test_classification_artifact_served_over_http(tiny_bert_dir: Path, tmp_path: Path) -> None:
    art_dir = _artifact(tiny_bert_dir, tmp_path / "clf", task="classification", batch=2, seq=16, dynamic=True)
    art = load_predictor(art_dir)
    assert art.info.labels == ("negative", "positive")
    assert art.info.fixed_batch is None and art.info.fixed_seq_len  # any batch, always padded to 16 tokens
    texts = distinct_texts(3, seed=42)
    with ThreadServer(_config(art_dir), art) as srv:
        status, _, body = post_json(srv.port, "/invocations", {"inputs": texts})
    assert status == 200
    eager = load_predictor(tiny_bert_dir, max_seq_len=16).predict(texts)
    got = np.array([[o["scores"]["negative"], o["scores"]["positive"]] for o in body["outputs"]])
    np.testing.assert_allclose(got, eager, atol=1e-4)


def test_neuron_artifact_needs_torch_neuronx(tiny_bert_encoder_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    art_dir = _artifact(tiny_bert_encoder_dir, tmp_path / "neuron", task="embedding", target="inferentia")
    monkeypatch.setitem(sys.modules, "torch_neuronx", None)  # import fails, as on a host without the SDK
    with pytest.raises(ModelLoadError, match="needs torch_neuronx"):
        load_predictor(art_dir)
    fake = types.ModuleType("torch_neuronx")  # present: importing it is all the loader needs
    monkeypatch.setitem(sys.modules, "torch_neuronx", fake)
    assert load_predictor(art_dir).info.platform == "torchscript_inferentia"


def test_artifact_that_failed_its_numeric_check_is_refused(tiny_bert_encoder_dir: Path, tmp_path: Path) -> None:
    art_dir = _artifact(tiny_bert_encoder_dir, tmp_path / "bad", task="embedding", passed=False)
    with pytest.raises(ModelLoadError, match="numeric_check.passed is false"):
        load_predictor(art_dir)


def test_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="neither manifest.json"):
        load_predictor(tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_predictor(tmp_path / "missing")


def test_config_defaults_and_sagemaker_port() -> None:
    cfg = parse_config([], environ={})
    assert str(cfg.model_dir) == DEFAULT_MODEL_DIR and cfg.model_name == "model" and cfg.port == 8080
    assert cfg.max_body_bytes == 6 * 1024 * 1024
    cfg = parse_config(["--model-dir", "/models/minilm", "--port", "9000"],
                       environ={"SAGEMAKER_BIND_TO_PORT": "8081", "SERVING_MAX_BATCH_SIZE": "8"})
    assert (cfg.port, cfg.model_name, cfg.max_batch_size) == (8081, "minilm", 8)


@pytest.mark.parametrize("argv,env,message", [
    (["--max-batch-size", "0"], {}, "--max-batch-size = 0: out of range; allowed: at least 1"),
    ([], {"SERVING_MAX_QUEUE": "lots"}, "SERVING_MAX_QUEUE = 'lots': expected a whole number"),
    ([], {"SAGEMAKER_BIND_TO_PORT": "http"}, "SAGEMAKER_BIND_TO_PORT = 'http': expected a whole number"),
    ([], {"SAGEMAKER_BIND_TO_PORT": "70000"}, "SAGEMAKER_BIND_TO_PORT = 70000: out of range; allowed: 0..65535"),
    ([], {"SERVING_DEVICE": "gpu"}, "SERVING_DEVICE = 'gpu': allowed: auto, cpu, cuda, neuron"),
    ([], {"SERVING_REDIS_TLS": "maybe"}, "SERVING_REDIS_TLS = 'maybe': expected true or false"),
    (["--request-timeout", "0"], {}, "--request-timeout = 0.0: out of range; allowed: at least 0.001"),
    (["--redis-url", "cache.internal:6379"], {}, "--redis-url must start with redis://"),
    (["--rate-limit-burst", "4"], {}, "--rate-limit-burst needs --rate-limit-rps"),
    (["--otlp-endpoint", "collector:4317"], {}, "--otlp-endpoint must be an http:// or https:// URL"),
    (["--api-keys-file", "/nonexistent/keys"], {}, "--api-keys-file: /nonexistent/keys is not a file"),
])
def test_config_rejects_bad_values_naming_them(argv: list[str], env: dict[str, str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argv, environ=env)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_server_exits_1_when_the_model_cannot_load(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "workloads.serving", "--model-dir", str(tmp_path), "--port", "0"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 1
    assert "neither manifest.json" in proc.stderr
