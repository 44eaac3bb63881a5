"""Result cache: the in-process LRU, a real Redis shared by two server replicas (with and without AUTH), and a
Redis that is down, which must cost a warning and a metric, never a failed request."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import (RedisServer, SlowPredictor, ThreadServer, distinct_texts, free_port, make_tls_files,
                             metric_value, needs_binary, post_json, request)

from workloads.serving.config import ServerConfig
from workloads.serving.model import load_predictor

needs_redis = needs_binary("redis-server")


@pytest.fixture(scope="module")
def encoder(tiny_bert_encoder_dir: Path):
    return load_predictor(tiny_bert_encoder_dir)


def _config(model_dir: Path, **overrides: object) -> ServerConfig:
    base = dict(model_dir=model_dir, model_name="m", access_log=False, log_level="WARNING")
    return ServerConfig(**{**base, **overrides})  # type: ignore[arg-type]


def _metrics(port: int) -> str:
    return request(port, "GET", "/metrics")[2].decode()


def test_lru_answers_repeats_without_the_model(tiny_bert_encoder_dir: Path, encoder) -> None:
    counting = SlowPredictor(encoder, 0.0)
    texts = distinct_texts(3, seed=20)
    with ThreadServer(_config(tiny_bert_encoder_dir, cache_size=100), counting) as srv:
        counting.batches.clear()
        first = post_json(srv.port, "/invocations", {"inputs": texts})[2]["outputs"]
        again = post_json(srv.port, "/invocations", {"inputs": [texts[2], "a new one", texts[0]]})[2]["outputs"]
        metrics = _metrics(srv.port)
    assert sum(counting.batches) == 4  # three, then only the new input
    np.testing.assert_allclose(again[0], first[2], atol=0)
    np.testing.assert_allclose(again[2], first[0], atol=0)
    np.testing.assert_allclose(again[1], encoder.predict(["a new one"])[0], atol=1e-4)
    assert metric_value(metrics, "serving_cache_hits_total", {"tier": "local"}) == 2
    assert metric_value(metrics, "serving_cache_misses_total") == 4


def test_lru_evicts_the_least_recently_used() -> None:
    from workloads.serving.cache import LRUCache

    lru = LRUCache(2)
    lru.put("a", np.zeros(1))
    lru.put("b", np.ones(1))
    assert lru.get("a") is not None  # a is now the most recent
    lru.put("c", np.ones(1))
    assert lru.get("b") is None and lru.get("a") is not None and len(lru) == 2


@needs_redis
@pytest.mark.parametrize("password", [None, "s3cret-token"], ids=["no-auth", "auth-token"])
def test_redis_is_shared_across_replicas_with_a_ttl(tiny_bert_encoder_dir: Path, encoder, password: str | None) -> None:
    redis = RedisServer(password=password)
    try:
        a_model, b_model = SlowPredictor(encoder, 0.0), SlowPredictor(encoder, 0.0)
        common = dict(cache_size=0, redis_url=redis.url, redis_auth_token=password, redis_ttl_s=120,
                      redis_timeout_ms=500)
        texts = distinct_texts(4, seed=21)
        with ThreadServer(_config(tiny_bert_encoder_dir, **common), a_model) as a, \
                ThreadServer(_config(tiny_bert_encoder_dir, **common), b_model) as b:
            a_model.batches.clear()
            b_model.batches.clear()
            status, _, from_a = post_json(a.port, "/invocations", {"inputs": texts})
            assert status == 200
            # Writes are in the background; wait until they have landed.
            client = redis.client()
            for _ in range(100):
                if len(client.keys("aiinfra:serve:*")) == 4:
                    break
                time.sleep(0.02)
            status, _, from_b = post_json(b.port, "/invocations", {"inputs": texts})
            metrics_b = _metrics(b.port)
        assert status == 200 and b_model.batches == [] and a_model.batches == [4]
        np.testing.assert_allclose(from_b["outputs"], from_a["outputs"], atol=0)
        assert metric_value(metrics_b, "serving_cache_hits_total", {"tier": "redis"}) == 4
        keys = client.keys("aiinfra:serve:*")
        assert len(keys) == 4 and all(0 < client.ttl(k) <= 120 for k in keys)
        assert all(k.decode().startswith(f"aiinfra:serve:{encoder.info.identity}:") for k in keys)
    finally:
        redis.stop()


@needs_redis
@needs_binary("openssl")
def test_redis_over_tls_with_auth_token(tiny_bert_encoder_dir: Path, encoder, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    redis = RedisServer(password="tls-token", tls=tls)
    try:
        plain_url = redis.url.replace("rediss://", "redis://")
        config = _config(tiny_bert_encoder_dir, cache_size=0, redis_url=plain_url, redis_tls=True,
                         redis_ca_file=str(tls["ca"]), redis_auth_token="tls-token", redis_timeout_ms=1000)
        counting = SlowPredictor(encoder, 0.0)
        with ThreadServer(config, counting) as srv:
            counting.batches.clear()
            first = post_json(srv.port, "/invocations", {"inputs": ["very good book"]})
            for _ in range(100):
                if redis.client().keys("aiinfra:serve:*"):
                    break
                time.sleep(0.02)
            second = post_json(srv.port, "/invocations", {"inputs": ["very good book"]})
            metrics = _metrics(srv.port)
        assert first[0] == 200 and second[0] == 200
        assert counting.batches == [1]  # the second answer came from Redis, over TLS
        assert metric_value(metrics, "serving_cache_hits_total", {"tier": "redis"}) == 1
        assert metric_value(metrics, "serving_cache_backend_errors_total", {"backend": "redis"}) == 0
    finally:
        redis.stop()


@needs_redis
def test_wrong_auth_token_degrades_to_no_cache(tiny_bert_encoder_dir: Path, encoder) -> None:
    redis = RedisServer(password="right")
    try:
        config = _config(tiny_bert_encoder_dir, cache_size=0, redis_url=redis.url, redis_auth_token="wrong")
        with ThreadServer(config, encoder) as srv:
            status, _, body = post_json(srv.port, "/invocations", {"inputs": ["good film"]})
            metrics = _metrics(srv.port)
        assert status == 200
        np.testing.assert_allclose(body["outputs"][0], encoder.predict(["good film"])[0], atol=1e-4)
        assert metric_value(metrics, "serving_cache_backend_errors_total", {"backend": "redis"}) >= 1
    finally:
        redis.stop()


@needs_redis
def test_redis_going_down_never_fails_a_request(tiny_bert_encoder_dir: Path, encoder,
                                                caplog: pytest.LogCaptureFixture) -> None:
    redis = RedisServer()
    config = _config(tiny_bert_encoder_dir, cache_size=0, redis_url=redis.url, redis_timeout_ms=200)
    texts = distinct_texts(6, seed=22)
    with ThreadServer(config, encoder) as srv:
        assert post_json(srv.port, "/invocations", {"inputs": texts[:2]})[0] == 200
        redis.stop()
        with caplog.at_level(logging.WARNING, logger="workloads.serving.cache"):
            answers = [post_json(srv.port, "/invocations", {"inputs": [t]}) for t in texts[2:]]
        metrics = _metrics(srv.port)
    for text, (status, _, body) in zip(texts[2:], answers):
        assert status == 200, body
        np.testing.assert_allclose(body["outputs"][0], encoder.predict([text])[0], atol=1e-4)
    assert metric_value(metrics, "serving_cache_backend_errors_total", {"backend": "redis"}) >= 1
    assert metric_value(metrics, "serving_cache_backend_up", {"backend": "redis"}) == 0
    assert any("redis cache unavailable" in r.getMessage() for r in caplog.records)


def test_redis_never_reachable_still_serves(tiny_bert_encoder_dir: Path, encoder) -> None:
    """No redis-server needed: nothing listens on the port, so every Redis call fails fast."""
    config = _config(tiny_bert_encoder_dir, cache_size=0, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with ThreadServer(config, encoder) as srv:
        status, _, body = post_json(srv.port, "/invocations", {"inputs": ["nice place"]})
        metrics = _metrics(srv.port)
    assert status == 200
    np.testing.assert_allclose(body["outputs"][0], encoder.predict(["nice place"])[0], atol=1e-4)
    assert metric_value(metrics, "serving_cache_backend_errors_total", {"backend": "redis"}) >= 1


def test_cache_keys_differ_between_models(tiny_bert_dir: Path, tiny_bert_encoder_dir: Path) -> None:
    a, b = load_predictor(tiny_bert_dir), load_predictor(tiny_bert_encoder_dir)
    assert a.info.identity != b.info.identity
    assert load_predictor(tiny_bert_encoder_dir, max_seq_len=8).info.identity != b.info.identity
