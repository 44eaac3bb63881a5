"""The names the platform's telemetry reads (contracts/telemetry.py) against a real model server: the scraped
gauges are exposed as gauges on its metrics path, and each model request writes the access-log fields the
latency and error metrics are cut from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from serving_helpers import ServerProcess, distinct_texts, post_json, request

from contracts import telemetry

MODEL = "tiny-encoder"


@pytest.fixture(scope="module")
def server(tiny_bert_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("telemetry") / "server.log"
    proc = ServerProcess(["--model-dir", str(tiny_bert_encoder_dir), "--model-name", MODEL,
                          "--max-wait-ms", "1", "--model-threads", "1"], log)
    yield proc
    proc.kill()


def test_scraped_gauges_are_exposed_as_gauges(server: ServerProcess) -> None:
    status, _, body = request(server.port, "GET", telemetry.METRICS_PATH)
    assert status == 200
    text = body.decode()
    for name in telemetry.SCRAPED_GAUGES:
        assert re.search(rf"^# TYPE {name} gauge$", text, re.M), f"{name} is not a gauge on {telemetry.METRICS_PATH}"
        assert re.search(rf"^{name}(\{{[^}}]*\}})? [0-9.e+-]+$", text, re.M), f"{name} has no sample"


def test_model_requests_log_the_fields_the_metric_filters_read(server: ServerProcess) -> None:
    path = f"{telemetry.MODEL_ROUTE_PREFIX}{MODEL}/infer"
    status, _, _ = post_json(server.port, path, {
        "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": distinct_texts(1, seed=9)}]},
        {"X-Request-Id": "telemetry-ok"})
    assert status == 200
    status, _, _ = post_json(server.port, f"{telemetry.MODEL_ROUTE_PREFIX}no-such-model/infer", {"inputs": []},
                             {"X-Request-Id": "telemetry-missing"})
    assert status == 404
    records = {r.get("request_id"): r for r in server.log_records()
               if r.get(telemetry.ACCESS_EVENT_KEY) == telemetry.ACCESS_EVENT}
    ok, missing = records["telemetry-ok"], records["telemetry-missing"]
    assert ok[telemetry.ACCESS_PATH_KEY] == path and ok[telemetry.ACCESS_STATUS_KEY] == 200
    assert isinstance(ok[telemetry.ACCESS_DURATION_MS_KEY], float) and ok[telemetry.ACCESS_DURATION_MS_KEY] > 0
    assert missing[telemetry.ACCESS_STATUS_KEY] == 404
