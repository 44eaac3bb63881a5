"""Command line and environment: one frozen ServerConfig, validated once, so nothing else reads argv or env.

SageMaker cannot pass flags to `serve`, so every flag also reads `SERVING_<FLAG>` from the environment
(for example `SERVING_MAX_BATCH_SIZE=16`); a flag on the command line wins. `SAGEMAKER_BIND_TO_PORT`
overrides the port, as the SageMaker contract requires.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NoReturn, Sequence

DEFAULT_MODEL_DIR = "/opt/ml/model"
SAGEMAKER_MAX_BODY = 6 * 1024 * 1024  # SageMaker real-time endpoints reject payloads over 6 MB


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start; see `build_parser` for what each field means."""

    model_dir: Path
    model_name: str
    host: str = "0.0.0.0"
    port: int = 8080
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_queue: int = 256
    max_inputs: int = 64
    request_timeout_s: float = 30.0
    max_body_bytes: int = SAGEMAKER_MAX_BODY
    max_seq_len: int | None = None
    torch_threads: int | None = None
    cache_size: int = 10_000
    redis_url: str | None = None
    redis_auth_token: str | None = None
    redis_auth_secret_arn: str | None = None
    redis_tls: bool = False
    redis_ca_file: str | None = None
    redis_ttl_s: int = 3600
    redis_timeout_ms: float = 50.0
    shutdown_grace_s: float = 25.0
    log_level: str = "INFO"
    access_log: bool = True


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than zero, got {text}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """Bad input is one line naming the flag, exit 2: no usage block burying it in a container's log."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The CLI; each option's default comes from `SERVING_<OPTION>` when that variable is set."""
    p = _OneLineParser(
        prog="python -m workloads.serving",
        description="Model server: SageMaker /invocations and Open Inference Protocol v2, with dynamic batching.",
    )

    def env(name: str, default: str | None) -> str | None:
        # argparse runs `type` on string defaults, so a bad variable fails like a bad flag.
        return environ.get(f"SERVING_{name.upper()}", default)

    p.add_argument("--model-dir", default=env("model_dir", DEFAULT_MODEL_DIR),
                   help="Hugging Face model directory or compiled artifact directory (default /opt/ml/model)")
    p.add_argument("--model-name", default=env("model_name", None),
                   help="name in the v2 paths (default: the model directory's base name)")
    p.add_argument("--host", default=env("host", "0.0.0.0"))
    p.add_argument("--port", type=int, default=env("port", "8080"),
                   help="listen port (SAGEMAKER_BIND_TO_PORT overrides it)")
    p.add_argument("--max-batch-size", type=_positive_int, default=env("max_batch_size", "32"),
                   help="most inputs run in one forward pass")
    p.add_argument("--max-wait-ms", type=_non_negative_float,
                   default=env("max_wait_ms", "2.0"),
                   help="longest a batch waits for more inputs after its first one arrived")
    p.add_argument("--max-queue", type=_positive_int, default=env("max_queue", "256"),
                   help="most inputs waiting for the model; beyond it requests get 503 with Retry-After")
    p.add_argument("--max-inputs", type=_positive_int, default=env("max_inputs", "64"),
                   help="most inputs in one request")
    p.add_argument("--request-timeout", dest="request_timeout_s", type=_positive_float,
                   default=env("request_timeout", "30.0"),
                   help="deadline per request in seconds, queueing included (504 after it)")
    p.add_argument("--max-body-bytes", type=_positive_int,
                   default=env("max_body_bytes", str(SAGEMAKER_MAX_BODY)),
                   help="largest request body accepted (default 6 MB, as SageMaker real-time endpoints)")
    p.add_argument("--max-seq-len", type=_positive_int, default=env("max_seq_len", None),
                   help="truncate inputs to this many tokens (default: the model's own limit)")
    p.add_argument("--torch-threads", type=_positive_int, default=env("torch_threads", None),
                   help="torch intra-op threads (default: torch's own choice)")
    p.add_argument("--cache-size", type=_non_negative_int, default=env("cache_size", "10000"),
                   help="entries in the in-process LRU result cache; 0 turns it off")
    p.add_argument("--redis-url", default=env("redis_url", None),
                   help="shared result cache, e.g. redis://host:6379/0 or rediss://host:6379 for TLS")
    p.add_argument("--redis-auth-token", default=env("redis_auth_token", None),
                   help="Redis AUTH token (prefer the SERVING_REDIS_AUTH_TOKEN variable over the flag)")
    p.add_argument("--redis-auth-secret-arn", default=env("redis_auth_secret_arn", None),
                   help="read the Redis AUTH token at startup from this Secrets Manager secret (a plain string, "
                        "or JSON with authToken as the feature store writes it), with the process's own role")
    p.add_argument("--redis-tls", action="store_true",
                   default=str(env("redis_tls", "")).lower() in ("1", "true", "yes"),
                   help="use TLS to Redis even when the URL says redis://")
    p.add_argument("--redis-ca-file", default=env("redis_ca_file", None),
                   help="CA bundle that signs the Redis server's TLS certificate (default: the system's)")
    p.add_argument("--redis-ttl", dest="redis_ttl_s", type=_positive_int,
                   default=env("redis_ttl", "3600"), help="seconds a shared cache entry lives")
    p.add_argument("--redis-timeout-ms", type=_positive_float,
                   default=env("redis_timeout_ms", "50.0"),
                   help="per-call Redis timeout; a slower Redis counts as down")
    p.add_argument("--shutdown-grace", dest="shutdown_grace_s", type=_positive_float,
                   default=env("shutdown_grace", "25.0"),
                   help="seconds SIGTERM waits for queued work before closing connections")
    p.add_argument("--log-level", default=env("log_level", "INFO"),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--no-access-log", dest="access_log", action="store_false",
                   default=str(env("access_log", "true")).lower() not in ("0", "false", "no"),
                   help="do not log one JSON line per request")
    return p


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Parse argv and the environment into a ServerConfig; argparse exits with a message on bad values."""
    environ = os.environ if environ is None else environ
    parser = build_parser(environ)
    args = parser.parse_args(argv)
    port = args.port
    if environ.get("SAGEMAKER_BIND_TO_PORT"):
        try:
            port = int(environ["SAGEMAKER_BIND_TO_PORT"])
        except ValueError:
            parser.error(f"SAGEMAKER_BIND_TO_PORT must be a port number, got {environ['SAGEMAKER_BIND_TO_PORT']!r}")
    if not 0 <= port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {port}")
    if args.redis_url and not args.redis_url.startswith(("redis://", "rediss://", "unix://")):
        parser.error(f"--redis-url must start with redis://, rediss:// or unix://, got {args.redis_url!r}")
    if args.redis_auth_secret_arn:
        from .secrets import secret_region

        try:
            secret_region(args.redis_auth_secret_arn)
        except ValueError as exc:
            parser.error(f"--redis-auth-secret-arn: {exc}")
        if args.redis_auth_token:
            parser.error("--redis-auth-secret-arn and --redis-auth-token are alternatives: give one")
        if not args.redis_url:
            parser.error("--redis-auth-secret-arn needs --redis-url")
    model_dir = Path(args.model_dir)
    name = args.model_name or model_dir.resolve().name or "model"
    return ServerConfig(
        model_dir=model_dir, model_name=name, host=args.host, port=port,
        max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
        max_inputs=args.max_inputs, request_timeout_s=args.request_timeout_s, max_body_bytes=args.max_body_bytes,
        max_seq_len=args.max_seq_len,
        torch_threads=args.torch_threads,
        cache_size=args.cache_size, redis_url=args.redis_url, redis_auth_token=args.redis_auth_token,
        redis_auth_secret_arn=args.redis_auth_secret_arn,
        redis_tls=args.redis_tls, redis_ca_file=args.redis_ca_file, redis_ttl_s=args.redis_ttl_s,
        redis_timeout_ms=args.redis_timeout_ms,
        shutdown_grace_s=args.shutdown_grace_s, log_level=args.log_level, access_log=args.access_log,
    )
