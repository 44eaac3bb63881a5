"""Guard rails against the real server: API keys (401 with WWW-Authenticate), per-client rate limits (429 with
Retry-After), input limits (413 and 422 naming the field), and the Redis circuit breaker opening and closing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serving_helpers import RedisServer, ThreadServer, metric_value, needs_binary, post_json, request

from workloads.serving.config import ServerConfig
from workloads.serving.guards import CircuitBreaker, KeysError, RateLimiter, keys_from_secret, parse_keys
from workloads.serving.model import load_predictor

KEY = "k-7f3a9c2e5b1d4f60"
INFER = "/v2/models/m/infer"


def _v2(texts: list[str]) -> dict:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


@pytest.fixture(scope="module")
def encoder(tiny_bert_encoder_dir: Path):
    return load_predictor(tiny_bert_encoder_dir)


def _config(model_dir: Path, **overrides: object) -> ServerConfig:
    base = dict(model_dir=model_dir, model_name="m", cache_size=0, access_log=False, log_level="WARNING")
    return ServerConfig(**{**base, **overrides})  # type: ignore[arg-type]


def test_api_keys_guard_every_model_route_but_not_health_or_metrics(tiny_bert_encoder_dir: Path, encoder,
                                                                        tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# rotated weekly\nother-key\n{KEY}\n")
    with ThreadServer(_config(tiny_bert_encoder_dir, api_keys_file=str(keys)), encoder) as srv:
        missing = post_json(srv.port, INFER, _v2(["good film"]))
        wrong = post_json(srv.port, INFER, _v2(["good film"]), {"Authorization": "Bearer not-a-key"})
        bearer = post_json(srv.port, INFER, _v2(["good film"]), {"Authorization": f"Bearer {KEY}"})
        header = post_json(srv.port, INFER, _v2(["good film"]), {"X-Api-Key": KEY})
        metadata = request(srv.port, "GET", "/v2/models/m")
        sagemaker = post_json(srv.port, "/invocations", {"inputs": ["good film"]})
        sagemaker_key = post_json(srv.port, "/invocations", {"inputs": ["good film"]}, {"X-Api-Key": KEY})
        metrics = request(srv.port, "GET", "/metrics")
        ping = request(srv.port, "GET", "/ping")
        ready = request(srv.port, "GET", "/v2/health/ready")
    for status, headers, body in (missing, wrong):
        assert status == 401 and body["kind"] == "unauthorized" and body["field"] == "Authorization", body
        assert headers["www-authenticate"].startswith('Bearer realm="aiinfra-serving"')
    assert "needs an API key" in missing[2]["error"] and "not valid" in wrong[2]["error"]
    assert 'error="invalid_token"' in wrong[1]["www-authenticate"]
    assert bearer[0] == 200 and header[0] == 200 and bearer[2]["outputs"][0]["data"] == header[2]["outputs"][0]["data"]
    assert metadata[0] == 401
    assert sagemaker[0] == 401, "with keys set (the EKS path), /invocations is no way around them"
    assert sagemaker_key[0] == 200 and metrics[0] == 200
    assert ping[0] == 200 and ready[0] == 200, "kubelet probes carry no key"


def test_keys_file_and_secret_formats(aws) -> None:
    import boto3

    assert parse_keys('{"apiKeys": ["a", " b "]}', "s") == ("a", "b")
    assert parse_keys("a\n\n# c\nb\n", "f") == ("a", "b")
    with pytest.raises(KeysError, match="f: holds no API key"):
        parse_keys("# nothing\n", "f")
    with pytest.raises(KeysError, match="JSON without a list of non-empty strings in 'apiKeys'"):
        parse_keys('{"apiKeys": [""]}', "s")
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="aiinfra/dev/serving/api-keys", SecretString=json.dumps({"apiKeys": [KEY]}))["ARN"]
    assert keys_from_secret(arn) == (KEY,)


def test_server_without_its_keys_file_exits_1_in_one_line(tiny_bert_encoder_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    empty = tmp_path / "keys"
    empty.write_text("\n")
    proc = subprocess.run([sys.executable, "-m", "workloads.serving", "--model-dir", str(tiny_bert_encoder_dir),
                           "--port", "0", "--api-keys-file", str(empty)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 1
    failures = [json.loads(line) for line in proc.stderr.splitlines() if '"model_load_failed"' in line]
    assert len(failures) == 1 and f"cannot load the API keys: {empty}: holds no API key" in failures[0]["message"]


def test_each_client_gets_its_own_rate_limit_with_retry_after(tiny_bert_encoder_dir: Path, encoder,
                                                              tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY}\nsecond-key\n")
    config = _config(tiny_bert_encoder_dir, api_keys_file=str(keys), rate_limit_rps=0.2, rate_limit_burst=2)
    with ThreadServer(config, encoder) as srv:
        first = [post_json(srv.port, INFER, _v2(["nice"]), {"X-Api-Key": KEY}) for _ in range(3)]
        other = post_json(srv.port, INFER, _v2(["nice"]), {"X-Api-Key": "second-key"})
        metrics = request(srv.port, "GET", "/metrics")[2].decode()
    assert [s for s, _, _ in first] == [200, 200, 429]
    status, headers, body = first[2]
    assert body["kind"] == "rate_limited" and "0.2 requests/s (burst 2)" in body["error"]
    assert 1 <= int(headers["retry-after"]) <= 5
    assert other[0] == 200, "another key has its own bucket"
    assert metric_value(metrics, "serving_errors_total", {"kind": "rate_limited"}) == 1


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 1, clock=lambda: now[0])
    limiter.take("a")
    with pytest.raises(Exception, match="retry in 0.50s") as info:
        limiter.take("a")
    assert info.value.headers == {"Retry-After": "1"}
    now[0] = 0.5
    limiter.take("a")  # one token back after 1/rate seconds


def test_too_many_inputs_is_413_and_a_too_long_input_is_422(tiny_bert_encoder_dir: Path, encoder) -> None:
    config = _config(tiny_bert_encoder_dir, max_inputs=4, max_input_tokens=6)
    long_text = "the movie was really very good and the food was great"
    with ThreadServer(config, encoder) as srv:
        v2_many = post_json(srv.port, INFER, _v2(["good"] * 5))
        sm_many = post_json(srv.port, "/invocations", {"inputs": ["good"] * 5})
        v2_long = post_json(srv.port, INFER, _v2(["good", long_text]))
        sm_long = post_json(srv.port, "/invocations", {"inputs": ["good", "bad", long_text]})
        fits = post_json(srv.port, "/invocations", {"inputs": ["good film"]})
    assert (v2_many[0], v2_many[2]["field"], v2_many[2]["kind"]) == (413, "inputs[0].shape", "too_many_inputs")
    assert (sm_many[0], sm_many[2]["field"]) == (413, "inputs")
    assert "at most 4" in sm_many[2]["error"]
    assert (v2_long[0], v2_long[2]["field"], v2_long[2]["kind"]) == (422, "inputs[0].data[1]", "input_too_long")
    assert (sm_long[0], sm_long[2]["field"]) == (422, "inputs[2]")
    assert "at most 6 are allowed per input" in sm_long[2]["error"]
    assert fits[0] == 200


def test_breaker_opens_after_n_failures_and_probes_once_when_half_open() -> None:
    now, seen = [0.0], []
    breaker = CircuitBreaker(2, 5.0, on_change=seen.append, clock=lambda: now[0])
    assert breaker.allow() and not breaker.failure() and breaker.state == "closed"
    assert breaker.failure() and breaker.state == "open" and not breaker.allow()
    now[0] = 5.0
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow(), "one probe at a time"
    assert breaker.failure() and breaker.state == "open", "a failed probe opens it again"
    now[0] = 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
    assert seen == ["open", "half_open", "open", "half_open", "closed"]


@needs_binary("redis-server")
def test_redis_breaker_opens_and_closes_and_metrics_show_it(tiny_bert_encoder_dir: Path, encoder) -> None:
    redis = RedisServer()
    config = _config(tiny_bert_encoder_dir, redis_url=redis.url, redis_timeout_ms=200, breaker_failures=2,
                     breaker_reset_s=0.3)

    def state(port: int) -> dict[str, float]:
        text = request(port, "GET", "/metrics")[2].decode()
        return {s: metric_value(text, "serving_circuit_breaker_state", {"dependency": "redis", "state": s})
                for s in CircuitBreaker.STATES}

    with ThreadServer(config, encoder) as srv:
        assert post_json(srv.port, "/invocations", {"inputs": ["good"]})[0] == 200
        assert state(srv.port) == {"closed": 1, "open": 0, "half_open": 0}
        redis.stop()
        for text in ("bad", "sad", "ugly"):
            assert post_json(srv.port, "/invocations", {"inputs": [text]})[0] == 200
        assert state(srv.port) == {"closed": 0, "open": 1, "half_open": 0}
        redis = RedisServer(port=redis.port)
        import time

        time.sleep(0.35)
        assert post_json(srv.port, "/invocations", {"inputs": ["happy"]})[0] == 200  # the probe succeeds
        assert state(srv.port) == {"closed": 1, "open": 0, "half_open": 0}
    redis.stop()
