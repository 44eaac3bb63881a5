"""The Redis AUTH token read from Secrets Manager (moto) authenticates to a real redis-server with --requirepass;
a secret that cannot be read costs a warning and a metric, never a failed request; a bad ARN is a flag error."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import boto3
import numpy as np
import pytest
from serving_helpers import (RedisServer, SlowPredictor, ThreadServer, metric_value, needs_binary, post_json,
                             request)

from workloads.serving.config import ServerConfig, parse_config
from workloads.serving.model import load_predictor
from workloads.serving.secrets import SecretError, SecretsManagerToken, secret_region, token_from_secret

needs_redis = needs_binary("redis-server")
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aiinfra/prod/feature-store/auth-AbCdEf"


@pytest.fixture(scope="module")
def encoder(tiny_bert_encoder_dir: Path):
    return load_predictor(tiny_bert_encoder_dir)


def _config(model_dir: Path, **overrides: object) -> ServerConfig:
    base = dict(model_dir=model_dir, model_name="m", access_log=False, log_level="WARNING", cache_size=0,
                redis_timeout_ms=1000)
    return ServerConfig(**{**base, **overrides})  # type: ignore[arg-type]


def _feature_store_secret(token: str, port: int) -> str:
    """Exactly the document components/feature_store.py stores."""
    return json.dumps({"host": "127.0.0.1", "readerHost": "127.0.0.1", "port": port, "tls": True,
                       "authToken": token})


def test_flag_and_environment_variable(tmp_path: Path) -> None:
    args = ["--model-dir", str(tmp_path), "--redis-url", "rediss://redis:6379"]
    assert parse_config(args + ["--redis-auth-secret-arn", ARN], environ={}).redis_auth_secret_arn == ARN
    assert parse_config(args, environ={"SERVING_REDIS_AUTH_SECRET_ARN": ARN}).redis_auth_secret_arn == ARN
    assert parse_config(args, environ={}).redis_auth_secret_arn is None


@pytest.mark.parametrize("argv, message", [
    (["--redis-url", "redis://r:6379", "--redis-auth-secret-arn", "aiinfra/prod/feature-store/auth"],
     "--redis-auth-secret-arn: not a Secrets Manager secret ARN"),
    (["--redis-url", "redis://r:6379", "--redis-auth-secret-arn",
      "arn:aws:s3:us-east-1:123456789012:secret:x"], "--redis-auth-secret-arn: not a Secrets Manager secret ARN"),
    (["--redis-url", "redis://r:6379", "--redis-auth-secret-arn", ARN, "--redis-auth-token", "t"],
     "--redis-auth-secret-arn and --redis-auth-token are alternatives"),
    (["--redis-auth-secret-arn", ARN], "--redis-auth-secret-arn needs --redis-url"),
])
def test_bad_secret_flags_exit_2_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--model-dir", str(tmp_path), *argv], environ={})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_region_comes_from_the_arn() -> None:
    assert secret_region(ARN) == "us-east-1"
    assert secret_region("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-1") == "us-gov-west-1"


def test_token_formats() -> None:
    assert token_from_secret("plain-token\n", ARN) == "plain-token"
    assert token_from_secret(_feature_store_secret("json-token", 6379), ARN) == "json-token"
    for bad, why in [("", "is empty"), ("{not json", "neither a plain token nor valid JSON"),
                     ('{"host": "h"}', "without a non-empty string 'authToken'"), ('{"authToken": 1}', "'authToken'")]:
        with pytest.raises(SecretError, match=why):
            token_from_secret(bad, ARN)


def test_token_is_read_once_with_moto(aws) -> None:
    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="aiinfra/dev/feature-store/auth", SecretString=_feature_store_secret("from-moto", 6379))["ARN"]
    credentials = SecretsManagerToken(arn)
    assert credentials.region == "us-east-1"
    assert credentials.prefetch() and credentials.get_credentials() == ("from-moto",)
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(SecretId=arn, SecretString="rotated")
    assert credentials.get_credentials() == ("from-moto",)  # remembered ...
    credentials.forget()
    assert credentials.get_credentials() == ("rotated",)    # ... until Redis refuses it


@needs_redis
def test_token_from_the_feature_store_secret_authenticates(aws, tiny_bert_encoder_dir: Path, encoder) -> None:
    redis = RedisServer(password="s3cr3t-from-secrets-manager")
    try:
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="aiinfra/dev/feature-store/auth",
            SecretString=_feature_store_secret("s3cr3t-from-secrets-manager", 6379))["ARN"]
        counting = SlowPredictor(encoder, 0.0)
        with ThreadServer(_config(tiny_bert_encoder_dir, redis_url=redis.url, redis_auth_secret_arn=arn),
                          counting) as srv:
            counting.batches.clear()
            first = post_json(srv.port, "/invocations", {"inputs": ["token from a secret"]})
            for _ in range(100):
                if redis.client().keys("aiinfra:serve:*"):
                    break
                time.sleep(0.02)
            second = post_json(srv.port, "/invocations", {"inputs": ["token from a secret"]})
            metrics = request(srv.port, "GET", "/metrics")[2].decode()
        assert first[0] == 200 and second[0] == 200
        assert counting.batches == [1]  # the second answer came from the authenticated Redis
        assert metric_value(metrics, "serving_cache_hits_total", {"tier": "redis"}) == 1
        assert metric_value(metrics, "serving_cache_backend_errors_total", {"backend": "redis"}) == 0
    finally:
        redis.stop()


@needs_redis
def test_unreadable_secret_degrades_to_no_shared_cache(aws, tiny_bert_encoder_dir: Path, encoder,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    redis = RedisServer(password="right")
    try:
        config = _config(tiny_bert_encoder_dir, redis_url=redis.url, redis_auth_secret_arn=ARN)  # no such secret
        with caplog.at_level(logging.WARNING, logger="workloads.serving.cache"):
            with ThreadServer(config, encoder) as srv:
                status, _, body = post_json(srv.port, "/invocations", {"inputs": ["still answered"]})
                metrics = request(srv.port, "GET", "/metrics")[2].decode()
        assert status == 200
        np.testing.assert_allclose(body["outputs"][0], encoder.predict(["still answered"])[0], atol=1e-4)
        assert metric_value(metrics, "serving_cache_backend_errors_total", {"backend": "redis"}) >= 1
        assert metric_value(metrics, "serving_cache_backend_up", {"backend": "redis"}) == 0
        assert any("cannot read the redis auth secret" in r.getMessage() for r in caplog.records)
        assert not redis.client().keys("aiinfra:serve:*")
    finally:
        redis.stop()


@needs_redis
def test_refused_token_is_read_again_from_the_secret(aws, tiny_bert_encoder_dir: Path, encoder) -> None:
    """A rotated token: Redis refuses the one read at startup, the server forgets it and reads the new one."""
    redis = RedisServer(password="new-token")
    try:
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="aiinfra/dev/feature-store/auth",
                                    SecretString=_feature_store_secret("old-token", 6379))["ARN"]
        with ThreadServer(_config(tiny_bert_encoder_dir, redis_url=redis.url, redis_auth_secret_arn=arn),
                          encoder) as srv:
            assert post_json(srv.port, "/invocations", {"inputs": ["before rotation"]})[0] == 200
            secrets.put_secret_value(SecretId=arn, SecretString=_feature_store_secret("new-token", 6379))
            deadline = time.monotonic() + 10
            while not redis.client().keys("aiinfra:serve:*") and time.monotonic() < deadline:
                assert post_json(srv.port, "/invocations", {"inputs": [f"after {time.monotonic()}"]})[0] == 200
                time.sleep(0.2)
            metrics = request(srv.port, "GET", "/metrics")[2].decode()
        assert redis.client().keys("aiinfra:serve:*"), "the re-read token never authenticated"
        assert metric_value(metrics, "serving_cache_backend_errors_total", {"backend": "redis"}) >= 1
        assert metric_value(metrics, "serving_cache_backend_up", {"backend": "redis"}) == 1
    finally:
        redis.stop()
