"""Command line and environment: one frozen ServerConfig, validated once, so nothing else reads argv or env.

The fields, their checks and their help are declared once, on the dataclass, and read by the shared parser
(contracts/config.py), the same one the stack settings use; argparse only splits the command line. SageMaker
cannot pass flags to `serve`, so every flag also reads `SERVING_<FLAG>` from the environment (for example
`SERVING_MAX_BATCH_SIZE=16`); a flag on the command line wins, and an error names whichever was used.
`SAGEMAKER_BIND_TO_PORT` overrides the port, as the SageMaker contract requires. Bad input is one line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NoReturn, Sequence

from contracts.config import Section, SettingsError, Where, field, parse

DEFAULT_MODEL_DIR = "/opt/ml/model"
SAGEMAKER_MAX_BODY = 6 * 1024 * 1024  # SageMaker real-time endpoints reject payloads over 6 MB
PROG = "python -m workloads.serving"
DEVICES = ("auto", "cpu", "cuda", "neuron")


@dataclass(frozen=True)
class ServerConfig(Section):
    """Everything the server needs to start; each field's `doc` is its --help line."""

    model_dir: Path = field(Path(DEFAULT_MODEL_DIR), doc="Hugging Face model directory or compiled artifact "
                            "directory (default /opt/ml/model)")
    model_name: str = field("", doc="name in the v2 paths (default: the model directory's base name)")
    host: str = field("0.0.0.0", doc="listen address")
    port: int = field(8080, min=0, max=65535, doc="listen port (SAGEMAKER_BIND_TO_PORT overrides it)")
    reuse_port: bool = field(False, doc="listen with SO_REUSEPORT, so several server processes share the port")
    device: str = field("auto", choices=DEVICES, doc="where the model runs; auto: the artifact's target, else a "
                        "GPU when there is one; asking for a device the host lacks is an error")
    workers: int | None = field(None, min=1, doc="model workers, each running its own batches (default: the "
                                "CPUs this container may use for an ONNX Runtime model, else 1)")
    model_threads: int | None = field(None, min=1, doc="intra-op threads per model worker (default: 1 with several "
                                      "workers, else the runtime's own choice)")
    max_batch_size: int = field(32, min=1, doc="most inputs run in one forward pass")
    max_wait_ms: float = field(2.0, min=0, doc="longest a batch waits for more inputs after its first one arrived")
    max_queue: int = field(256, min=1, doc="most inputs waiting for the model; beyond it requests get 503 with "
                           "Retry-After")
    max_inputs: int = field(64, min=1, doc="most inputs in one request (413 beyond it)")
    max_input_tokens: int | None = field(None, min=1, doc="refuse (422) an input longer than this many tokens "
                                         "instead of truncating it to the model's limit")
    request_timeout_s: float = field(30.0, min=0.001, flag="--request-timeout",
                                     doc="deadline per request in seconds, queueing included (504 after it)")
    max_body_bytes: int = field(SAGEMAKER_MAX_BODY, min=1, doc="largest request body accepted (default 6 MB, as "
                                "SageMaker real-time endpoints)")
    max_seq_len: int | None = field(None, min=1, doc="truncate inputs to this many tokens (default: the model's "
                                    "own limit)")
    cache_size: int = field(10_000, min=0, doc="entries in the in-process LRU result cache; 0 turns it off")
    redis_url: str | None = field(None, doc="shared result cache, e.g. redis://host:6379/0 or rediss://host:6379 "
                                  "for TLS")
    redis_auth_token: str | None = field(None, doc="Redis AUTH token (prefer the SERVING_REDIS_AUTH_TOKEN "
                                         "variable over the flag)")
    redis_auth_secret_arn: str | None = field(None, doc="read the Redis AUTH token at startup from this Secrets "
                                              "Manager secret (a plain string, or JSON with authToken as the "
                                              "feature store writes it), with the process's own role")
    redis_tls: bool = field(False, doc="use TLS to Redis even when the URL says redis://")
    redis_ca_file: str | None = field(None, doc="CA bundle that signs the Redis server's TLS certificate "
                                      "(default: the system's)")
    redis_ttl_s: int = field(3600, min=1, flag="--redis-ttl", doc="seconds a shared cache entry lives")
    redis_timeout_ms: float = field(50.0, min=0.001, doc="per-call Redis timeout; a slower Redis counts as failed")
    breaker_failures: int = field(3, min=1, doc="consecutive Redis failures that open its circuit breaker")
    breaker_reset_s: float = field(2.0, min=0.001, flag="--breaker-reset",
                                   doc="seconds an open breaker waits before one probe call")
    api_keys_file: str | None = field(None, doc="require an API key (Authorization: Bearer <key> or X-Api-Key) on "
                                      "every model route (not health or metrics); one key per line in this file")
    api_keys_secret_arn: str | None = field(None, doc="as --api-keys-file, the keys read from this Secrets Manager "
                                            "secret (one per line, or JSON {\"apiKeys\": [...]}) with the "
                                            "process's own role")
    rate_limit_rps: float | None = field(None, min=0.001, doc="per-client requests per second (token bucket keyed "
                                         "by API key, else client address); 429 with Retry-After beyond it")
    rate_limit_burst: int | None = field(None, min=1, doc="requests a client may send at once (default: twice "
                                         "the rate, at least 1)")
    otlp_endpoint: str | None = field(None, doc="export OpenTelemetry traces over OTLP/gRPC to this endpoint, "
                                      "e.g. http://collector:4317 (default: OTEL_EXPORTER_OTLP_ENDPOINT, else off)")
    shutdown_grace_s: float = field(25.0, min=0.001, flag="--shutdown-grace",
                                    doc="seconds SIGTERM waits for queued work before closing connections")
    log_level: str = field("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), doc="log level")
    access_log: bool = field(True, flag="--no-access-log", doc="do not log one JSON line per request")


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def env_of(f: dataclasses.Field) -> str:
    """`SERVING_<FLAG>`; a negative flag (`--no-access-log`) reads the positive variable (`SERVING_ACCESS_LOG`)."""
    flag = flag_of(f)[2:]
    return "SERVING_" + (f.name if flag.startswith("no-") else flag).upper().replace("-", "_")


class _OneLineParser(argparse.ArgumentParser):
    """Bad input is one line naming the flag, exit 2: no usage block burying it in a container's log."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line, generated from ServerConfig: values stay strings until the shared parser checks them."""
    p = _OneLineParser(prog=PROG, description="Model server: SageMaker /invocations and Open Inference Protocol "
                       "v2, with dynamic batching.", argument_default=argparse.SUPPRESS)
    for f in dataclasses.fields(ServerConfig):
        doc = f.metadata.get("doc", "")
        if f.type in ("bool", bool):
            value = not f.default  # the flag turns the default around
            p.add_argument(flag_of(f), dest=f.name, action="store_const", const=value, help=doc)
        else:
            choices = f.metadata.get("choices")
            p.add_argument(flag_of(f), dest=f.name, choices=choices, help=doc + f" (env {env_of(f)})")
    return p


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Parse argv and the environment into a ServerConfig; bad values exit 2 with one line naming them."""
    environ = os.environ if environ is None else environ
    given = vars(build_parser().parse_args(argv))
    raw: dict[str, object] = {}
    shown: dict[str, str] = {}  # field -> the flag or variable the value came from, for error messages
    for f in dataclasses.fields(ServerConfig):
        if f.name in given:
            raw[f.name], shown[f.name] = given[f.name], flag_of(f)
        elif env_of(f) in environ:
            value: object = environ[env_of(f)]
            if f.type in ("bool", bool):
                word = str(value).strip().lower()
                value = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false",
                         "off": "false"}.get(word, word)
            raw[f.name], shown[f.name] = value, env_of(f)
    if environ.get("SAGEMAKER_BIND_TO_PORT"):
        raw["port"], shown["port"] = environ["SAGEMAKER_BIND_TO_PORT"], "SAGEMAKER_BIND_TO_PORT"
    if "otlp_endpoint" not in raw and environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        raw["otlp_endpoint"], shown["otlp_endpoint"] = environ["OTEL_EXPORTER_OTLP_ENDPOINT"], \
            "OTEL_EXPORTER_OTLP_ENDPOINT"
    names = {f.name: shown.get(f.name, flag_of(f)) for f in dataclasses.fields(ServerConfig)}
    by_name = {names[k]: v for k, v in raw.items()}
    try:
        config = parse(ServerConfig, by_name, Where(PROG, ""), key=names.__getitem__)
    except SettingsError as exc:
        _fail(str(exc).removeprefix(f"{PROG}: "))
    _check(config, names)
    if not config.model_name:
        config = dataclasses.replace(config, model_name=config.model_dir.resolve().name or "model")
    return config


def _check(c: ServerConfig, name: Mapping[str, str]) -> None:
    """Combinations the per-field checks cannot see."""
    from .secrets import secret_region

    if c.redis_url and not c.redis_url.startswith(("redis://", "rediss://", "unix://")):
        _fail(f"{name['redis_url']} must start with redis://, rediss:// or unix://, got {c.redis_url!r}")
    for arn_field in ("redis_auth_secret_arn", "api_keys_secret_arn"):
        arn = getattr(c, arn_field)
        if arn:
            try:
                secret_region(arn)
            except ValueError as exc:
                _fail(f"{name[arn_field]}: {exc}")
    if c.redis_auth_secret_arn:
        if c.redis_auth_token:
            _fail(f"{name['redis_auth_secret_arn']} and {name['redis_auth_token']} are alternatives: give one")
        if not c.redis_url:
            _fail(f"{name['redis_auth_secret_arn']} needs {name['redis_url']}")
    if c.api_keys_file and c.api_keys_secret_arn:
        _fail(f"{name['api_keys_file']} and {name['api_keys_secret_arn']} are alternatives: give one")
    if c.api_keys_file and not Path(c.api_keys_file).is_file():
        _fail(f"{name['api_keys_file']}: {c.api_keys_file} is not a file")
    if c.rate_limit_burst is not None and c.rate_limit_rps is None:
        _fail(f"{name['rate_limit_burst']} needs {name['rate_limit_rps']}")
    if c.otlp_endpoint and not c.otlp_endpoint.startswith(("http://", "https://")):
        _fail(f"{name['otlp_endpoint']} must be an http:// or https:// URL, got {c.otlp_endpoint!r}")
