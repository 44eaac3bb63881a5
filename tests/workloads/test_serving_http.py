"""The server as a real process on a real socket: SageMaker contract, Open Inference Protocol v2,
tritonclient as a third-party client, answers in order under concurrency, bad input, metrics and logs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from serving_helpers import ServerProcess, distinct_texts, expected_rows, metric_value, post_json, request

from workloads.serving.model import load_predictor

MODEL = "tiny-encoder"
MAX_INPUTS = 8


@pytest.fixture(scope="module")
def encoder(tiny_bert_encoder_dir: Path):
    return load_predictor(tiny_bert_encoder_dir)


@pytest.fixture(scope="module")
def server(tiny_bert_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = ServerProcess(["--model-dir", str(tiny_bert_encoder_dir), "--model-name", MODEL,
                          "--max-batch-size", "16", "--max-wait-ms", "5", "--max-inputs", str(MAX_INPUTS),
                          "--model-threads", "1"], log)
    yield proc
    proc.kill()


def test_ping_and_v2_health(server: ServerProcess) -> None:
    assert request(server.port, "GET", "/ping")[0] == 200
    assert request(server.port, "GET", "/v2/health/live")[0] == 200
    assert request(server.port, "GET", "/v2/health/ready")[0] == 200
    status, _, body = request(server.port, "GET", f"/v2/models/{MODEL}/ready")
    assert status == 200 and json.loads(body)["ready"] is True
    status, _, body = request(server.port, "GET", "/v2")
    assert status == 200 and json.loads(body)["name"] == "aiinfra-serving"


def test_model_metadata_lists_real_names_types_and_shapes(server: ServerProcess, encoder) -> None:
    status, _, body = request(server.port, "GET", f"/v2/models/{MODEL}")
    meta = json.loads(body)
    assert status == 200
    assert meta["name"] == MODEL and meta["platform"] == "huggingface"
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, encoder.info.dim]}]


def test_invocations_answers_each_input_in_order(server: ServerProcess, encoder) -> None:
    texts = distinct_texts(5, seed=1)
    status, headers, body = post_json(server.port, "/invocations", {"inputs": texts},
                                      {"X-Amzn-SageMaker-Custom-Attributes": "trace=abc,tenant=7",
                                       "X-Request-Id": "req-123"})
    assert status == 200, body
    assert headers["x-request-id"] == "req-123"
    got = np.array(body["outputs"], dtype=np.float32)
    assert got.shape == (5, encoder.info.dim)
    np.testing.assert_allclose(got, expected_rows(encoder, texts), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)


def test_invocations_accepts_a_single_string(server: ServerProcess, encoder) -> None:
    status, _, body = post_json(server.port, "/invocations", {"inputs": "the movie was good"})
    assert status == 200, body
    assert len(body["outputs"]) == 1
    np.testing.assert_allclose(body["outputs"][0], encoder.predict(["the movie was good"])[0], atol=1e-4)


def test_v2_infer_json_tensors(server: ServerProcess, encoder) -> None:
    texts = distinct_texts(3, seed=2)
    status, _, body = post_json(server.port, f"/v2/models/{MODEL}/infer", {
        "id": "abc", "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": texts}]})
    assert status == 200, body
    assert body["id"] == "abc" and body["model_name"] == MODEL
    out = body["outputs"][0]
    assert (out["name"], out["datatype"], out["shape"]) == ("embedding", "FP32", [3, encoder.info.dim])
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, -1), expected_rows(encoder, texts), atol=1e-4)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infers_unchanged(server: ServerProcess, encoder, binary: bool) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
        meta = client.get_model_metadata(MODEL)
        assert meta["inputs"][0]["name"] == "text"
        texts = distinct_texts(4, seed=3)
        inp = httpclient.InferInput("text", [len(texts)], "BYTES")
        inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object), binary_data=binary)
        out = httpclient.InferRequestedOutput("embedding", binary_data=binary)
        result = client.infer(MODEL, [inp], outputs=[out])
        got = result.as_numpy("embedding")
        assert got.shape == (4, encoder.info.dim) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected_rows(encoder, texts), atol=1e-4)
    finally:
        client.close()


def test_tritonclient_sees_unknown_model_error(server: ServerProcess) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        inp = httpclient.InferInput("text", [1], "BYTES")
        inp.set_data_from_numpy(np.array([b"good"], dtype=object), binary_data=False)
        with pytest.raises(InferenceServerException) as err:
            client.infer("no-such-model", [inp])
        assert "unknown model 'no-such-model'" in err.value.message()
        assert err.value.status() == "404"
    finally:
        client.close()


async def _concurrent_clients(port: int, jobs: list[tuple[str, list[str]]]) -> list[tuple[int, object]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(kind: str, texts: list[str]) -> tuple[int, object]:
            if kind == "sagemaker":
                async with session.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": texts}) as r:
                    return r.status, await r.json()
            if kind == "v2":
                body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
                async with session.post(f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer", json=body) as r:
                    return r.status, await r.json()
            async with session.post(f"http://127.0.0.1:{port}/invocations", data=b"{not json",
                                    headers={"Content-Type": "application/json"}) as r:
                return r.status, await r.json()

        return await asyncio.gather(*(one(kind, texts) for kind, texts in jobs))


def test_each_concurrent_client_gets_its_own_answers(server: ServerProcess, encoder) -> None:
    """64 clients at once, both protocols, 1-3 distinct inputs each, bad requests mixed in: no answer is
    lost, swapped or shifted, and the bad requests do not disturb the batches they would have joined."""
    texts = distinct_texts(160, seed=4)
    reference = dict(zip(texts, expected_rows(encoder, texts)))
    jobs, i = [], 0
    for n in range(64):
        if n % 9 == 4:
            jobs.append(("bad", []))
            continue
        k = 1 + n % 3
        jobs.append(("sagemaker" if n % 2 else "v2", texts[i:i + k]))
        i += k
    results = asyncio.run(_concurrent_clients(server.port, jobs))
    for (kind, sent), (status, body) in zip(jobs, results):
        if kind == "bad":
            assert status == 400 and body["field"] == "body"
            continue
        assert status == 200, body
        rows = body["outputs"] if kind == "sagemaker" else np.array(body["outputs"][0]["data"]).reshape(len(sent), -1)
        assert len(rows) == len(sent)
        for text, row in zip(sent, rows):
            np.testing.assert_allclose(row, reference[text], atol=1e-4)
    metrics = request(server.port, "GET", "/metrics")[2].decode()
    assert metric_value(metrics, "serving_batch_size_count") > 0
    # Batching happened: fewer forward passes than requests.
    assert metric_value(metrics, "serving_batch_size_count") < metric_value(
        metrics, "serving_request_latency_seconds_count", {"route": "/invocations", "status": "200"}) + \
        metric_value(metrics, "serving_request_latency_seconds_count",
                     {"route": "/v2/models/{name}/infer", "status": "200"})


BAD_INVOCATIONS = [
    ("malformed-json", b'{"inputs": ["a"', "application/json", 400, "body", "not valid JSON"),
    ("not-an-object", b'["a", "b"]', "application/json", 400, "body", "must be a JSON object"),
    ("missing-inputs", b'{"text": "a"}', "application/json", 400, "inputs", "missing field 'inputs'"),
    ("wrong-type", b'{"inputs": 5}', "application/json", 400, "inputs", "a string or a list of strings"),
    ("wrong-element", b'{"inputs": ["a", 3]}', "application/json", 400, "inputs[1]", "must be a string"),
    ("empty-list", b'{"inputs": []}', "application/json", 400, "inputs", "empty list"),
    ("too-many", json.dumps({"inputs": ["a"] * (MAX_INPUTS + 1)}).encode(), "application/json", 413, "inputs",
     f"at most {MAX_INPUTS}"),
    ("wrong-content-type", b'{"inputs": ["a"]}', "text/plain", 415, "Content-Type", "send application/json"),
    ("empty-body", b"", "application/json", 400, "body", "empty"),
]


@pytest.mark.parametrize("name,body,ctype,status,field,message", BAD_INVOCATIONS, ids=[b[0] for b in BAD_INVOCATIONS])
def test_bad_invocations_get_a_4xx_naming_the_field(server: ServerProcess, name: str, body: bytes, ctype: str,
                                                    status: int, field: str, message: str) -> None:
    got, headers, raw = request(server.port, "POST", "/invocations", body, {"Content-Type": ctype})
    assert got == status
    assert headers["content-type"].startswith("application/json")
    err = json.loads(raw)
    assert err["field"] == field and message in err["error"] and err["request_id"]


def test_body_over_6mb_is_413_before_the_model(server: ServerProcess) -> None:
    body = json.dumps({"inputs": ["x" * (6 * 1024 * 1024)]}).encode()
    status, _, raw = request(server.port, "POST", "/invocations", body, {"Content-Type": "application/json"})
    err = json.loads(raw)
    assert status == 413 and err["field"] == "body" and "limit is 6291456" in err["error"]


BAD_V2 = [
    ("unknown-model", "/v2/models/other/infer", {"inputs": []}, 404, "model_name", "unknown model 'other'"),
    ("unknown-version", f"/v2/models/{MODEL}/versions/7/infer", {"inputs": []}, 404, "model_version", "'7'"),
    ("wrong-input-name", None, {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
     400, "inputs[0].name", "'text'"),
    ("wrong-datatype", None, {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
     400, "inputs[0].datatype", "'BYTES'"),
    ("shape-mismatch", None, {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a"]}]},
     400, "inputs[0].data", "shape says 2"),
    ("empty", None, {"inputs": [{"name": "text", "shape": [0], "datatype": "BYTES", "data": []}]},
     400, "inputs[0].shape", "at least one"),
    ("non-string", None, {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [7]}]},
     400, "inputs[0].data[0]", "must be a string"),
    ("unknown-output", None, {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
                              "outputs": [{"name": "logits"}]}, 400, "outputs[0].name", "'logits'"),
]


@pytest.mark.parametrize("name,path,payload,status,field,message", BAD_V2, ids=[b[0] for b in BAD_V2])
def test_bad_v2_requests_get_a_4xx_naming_the_field(server: ServerProcess, name: str, path: str | None,
                                                    payload: dict, status: int, field: str, message: str) -> None:
    got, _, err = post_json(server.port, path or f"/v2/models/{MODEL}/infer", payload)
    assert got == status
    assert err["field"] == field and message in err["error"]


def test_unknown_model_metadata_is_404(server: ServerProcess) -> None:
    status, _, raw = request(server.port, "GET", "/v2/models/other")
    assert status == 404 and json.loads(raw)["field"] == "model_name"


def test_metrics_and_json_logs_with_request_id(server: ServerProcess) -> None:
    text = "the story was really very good"
    for _ in range(2):
        assert post_json(server.port, "/invocations", {"inputs": [text]}, {"X-Request-Id": "log-check-1"})[0] == 200
    post_json(server.port, "/invocations", {"inputs": []})
    metrics = request(server.port, "GET", "/metrics")[2].decode()
    for name in ("serving_request_latency_seconds_bucket", "serving_batch_size_bucket",
                 "serving_queue_wait_seconds_bucket", "serving_queue_depth", "serving_cache_misses_total"):
        assert name in metrics, name
    assert metric_value(metrics, "serving_cache_hits_total", {"tier": "local"}) >= 1
    assert metric_value(metrics, "serving_errors_total", {"kind": "bad_request"}) >= 1
    records = [r for r in server.log_records() if r.get("request_id") == "log-check-1"]
    assert len(records) == 2 and all(r["event"] == "request" and r["status"] == 200 for r in records)
    assert all(r["path"] == "/invocations" and r["duration_ms"] > 0 for r in records)
