"""An ONNX artifact served by the real server process: both contracts, tritonclient, embeddings equal to the
eager model's, several model workers, and devices reported (or refused) honestly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import ServerProcess, distinct_texts, expected_rows, metric_value, post_json, request

from workloads.compilation.compile import main as compile_main
from workloads.serving.model import ModelLoadError, load_predictor

MODEL = "onnx-encoder"


@pytest.fixture(scope="module")
def onnx_dir(tiny_bert_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / MODEL
    assert compile_main(["--model-dir", str(tiny_bert_encoder_dir), "--target", "onnx", "--seq-len", "32",
                         "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def server(onnx_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("onnx-logs") / "server.log"
    proc = ServerProcess(["--model-dir", str(onnx_dir), "--workers", "2", "--cache-size", "0",
                          "--max-batch-size", "8"], log)
    yield proc
    proc.kill()


def test_onnx_embeddings_match_the_eager_model(server: ServerProcess, tiny_bert_encoder_dir: Path) -> None:
    eager = load_predictor(tiny_bert_encoder_dir)
    texts = distinct_texts(12, seed=40)
    status, _, body = post_json(server.port, "/invocations", {"inputs": texts})
    assert status == 200
    got, want = np.array(body["outputs"]), expected_rows(eager, texts)
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.9999, cosine


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_against_the_onnx_artifact(server: ServerProcess, onnx_dir: Path, binary: bool) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_ready() and client.is_model_ready(MODEL)
    meta = client.get_model_metadata(MODEL)
    assert meta["platform"] == "onnxruntime" and meta["parameters"]["device"] == "cpu"
    texts = distinct_texts(3, seed=41)
    tensor = httpclient.InferInput("text", [3], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    result = client.infer(MODEL, [tensor], outputs=[httpclient.InferRequestedOutput("embedding", binary_data=binary)])
    rows = result.as_numpy("embedding")
    assert rows.shape == (3, 32)
    status, _, body = post_json(server.port, "/invocations", {"inputs": texts})
    np.testing.assert_allclose(rows, np.array(body["outputs"]), atol=1e-5)


def test_workers_device_and_platform_in_metrics_and_startup_log(server: ServerProcess) -> None:
    metrics = request(server.port, "GET", "/metrics")[2].decode()
    assert metric_value(metrics, "serving_model_workers") == 2
    assert metric_value(metrics, "serving_model_info", {"platform": "onnxruntime", "device": "cpu"}) == 1
    [loaded] = [r for r in server.log_records() if r.get("event") == "model_loaded"]
    assert (loaded["device"], loaded["workers"], loaded["threads_per_worker"], loaded["platform"]) == \
        ("cpu", 2, 1, "onnxruntime")


def test_asking_for_a_device_the_host_lacks_fails_in_one_line(onnx_dir: Path, tiny_bert_encoder_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="device cuda asked for, but onnxruntime has no CUDAExecutionProvider"):
        load_predictor(onnx_dir, device="cuda")
    with pytest.raises(ModelLoadError, match="device neuron serves an artifact compiled for inferentia or trainium"):
        load_predictor(tiny_bert_encoder_dir, device="neuron")
    proc = subprocess.run([sys.executable, "-m", "workloads.serving", "--model-dir", str(tiny_bert_encoder_dir),
                           "--port", "0", "--device", "cuda"], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 1
    [failure] = [json.loads(line) for line in proc.stderr.splitlines() if '"model_load_failed"' in line]
    assert failure["message"].endswith("device cuda asked for, but torch sees no GPU")
    assert "Traceback" not in proc.stderr
