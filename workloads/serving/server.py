"""Process lifecycle: listen at once, load and warm the model off the loop, report ready, drain on SIGTERM.

Listening before the model is loaded lets `/v2/health/live` answer and `/ping` say 503 (not yet) instead of
refusing connections; SageMaker and Kubernetes both poll until ready. On SIGTERM the server turns not-ready,
stops accepting connections, lets in-flight and queued requests finish, and exits well within 30 s.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Sequence

from aiohttp import web

from .app import ServerState, build_app
from .batching import DynamicBatcher
from .cache import LRUCache, RedisCache, ResultCache
from workloads.common.cpus import available_cpus

from .config import ServerConfig, parse_config
from .guards import ApiKeys, KeysError, RateLimiter, keys_from_file, keys_from_secret
from .logs import setup_logging
from .metrics import Metrics
from .model import ModelLoadError, Predictor, artifact_target, load_predictor
from .secrets import SecretError, SecretsManagerToken
from .tracing import setup_tracing, shutdown_tracing
from .service import InferenceService

log = logging.getLogger("workloads.serving")
WARMUP_TEXT = "A short sentence to warm up the tokenizer, the allocator and every kernel the model uses."


@dataclass
class Loaded:
    """What loading produced: one predictor per model worker (clones sharing the model) and the API keys."""

    predictors: list[Predictor]
    keys: ApiKeys | None = None

    @property
    def predictor(self) -> Predictor:
        return self.predictors[0]


def plan_workers(config: ServerConfig, cpus: int, predictor: Predictor | None) -> tuple[int, int]:
    """(model workers, intra-op threads per worker). Workers default to one per CPU for a model that runs
    without the GIL (ONNX Runtime), else one; threads to the CPUs left to each worker."""
    if predictor is not None:
        releases_gil = predictor.info.releases_gil
    else:
        releases_gil = artifact_target(config.model_dir) == "onnx"
    workers = config.workers or (cpus if releases_gil else 1)
    return workers, config.model_threads or max(1, cpus // workers)


def load_and_warm(config: ServerConfig, predictor: Predictor | None = None,
                  credentials: SecretsManagerToken | None = None) -> Loaded:
    """Load the API keys and the model (unless given one) on its device, clone it per worker, and run each
    worker at batch size 1 and at the full batch size, so the first request is not slow; read the Redis
    token meanwhile, so the first connection need not. A key or device problem raises ModelLoadError."""
    import torch

    keys = None
    try:
        if config.api_keys_file:
            keys = ApiKeys(keys_from_file(config.api_keys_file))
        elif config.api_keys_secret_arn:
            keys = ApiKeys(keys_from_secret(config.api_keys_secret_arn))
    except (KeysError, SecretError) as exc:
        raise ModelLoadError(f"cannot load the API keys: {exc}") from None
    except Exception as exc:  # boto3/botocore: no credentials, access denied, network
        raise ModelLoadError(f"cannot read the API keys secret {config.api_keys_secret_arn}: "
                             f"{type(exc).__name__}: {exc}") from None
    if credentials is not None:
        credentials.prefetch()

    cpus = available_cpus()
    workers, threads = plan_workers(config, cpus, predictor)
    started = time.monotonic()
    if predictor is None:
        predictor = load_predictor(config.model_dir, max_seq_len=config.max_seq_len, device=config.device,
                                   threads=threads)
    if not predictor.info.releases_gil:
        torch.set_num_threads(threads)
    predictors = [predictor] + [predictor.clone() for _ in range(workers - 1)]
    loaded = time.monotonic()
    for p in predictors:
        for n in (1, config.max_batch_size, 1):
            p.predict([WARMUP_TEXT] * n)
    info = predictor.info
    log.info("model loaded", extra={
        "event": "model_loaded", "model": config.model_name, "task": info.task, "platform": info.platform,
        "device": info.device, "dim": info.dim, "max_seq_len": info.max_seq_len, "workers": workers,
        "threads_per_worker": threads, "cpus": cpus, "load_s": round(loaded - started, 3),
        "warmup_s": round(time.monotonic() - loaded, 3), "auth": keys is not None})
    return Loaded(predictors, keys)


def build_service(config: ServerConfig, loaded: Loaded, metrics: Metrics,
                  credentials: SecretsManagerToken | None = None) -> InferenceService:
    predictor = loaded.predictor
    batcher = DynamicBatcher([p.predict for p in loaded.predictors], max_batch_size=config.max_batch_size,
                             max_wait_s=config.max_wait_ms / 1000.0, max_queue=config.max_queue, metrics=metrics)
    redis = None
    if config.redis_url:
        redis = RedisCache(config.redis_url, metrics=metrics, auth_token=config.redis_auth_token,
                           tls=config.redis_tls, ca_file=config.redis_ca_file, ttl_s=config.redis_ttl_s,
                           timeout_s=config.redis_timeout_ms / 1000, breaker_failures=config.breaker_failures,
                           breaker_reset_s=config.breaker_reset_s, credentials=credentials)
    cache = ResultCache(predictor.info.identity, predictor.info.dim, metrics=metrics,
                        lru=LRUCache(config.cache_size) if config.cache_size else None, redis=redis)
    service = InferenceService(predictor, batcher, cache, config.request_timeout_s,
                               max_input_tokens=config.max_input_tokens)
    batcher.active_requests = lambda: service.active
    return service


async def serve(config: ServerConfig, *, predictor: Predictor | None = None,
                stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set); returns the exit code (1 when the model cannot be loaded).

    `predictor` serves an already loaded model (an embedding application, or a test that wraps the model);
    signal handlers are installed only on the main thread, where Python delivers signals.
    """
    loop = asyncio.get_running_loop()
    metrics = Metrics(config.model_name)
    state = ServerState(config, metrics)
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False,
                           shutdown_timeout=config.shutdown_grace_s)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=1024, reuse_port=config.reuse_port or None)
    await site.start()
    port = next((a[1] for a in runner.addresses if isinstance(a, tuple)), config.port)
    exporting = setup_tracing(config.otlp_endpoint) if config.otlp_endpoint else False
    log.info("listening", extra={"event": "listening", "host": config.host, "port": port,
                                 "model": config.model_name, "tracing": config.otlp_endpoint or "ids only"})

    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    credentials = None
    if config.redis_url and config.redis_auth_secret_arn:
        credentials = SecretsManagerToken(config.redis_auth_secret_arn)
    loading = loop.run_in_executor(None, load_and_warm, config, predictor, credentials)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([loading, stopping], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if loading.done():
        try:
            loaded = loading.result()
        except ModelLoadError as exc:
            log.error("cannot load the model: %s", exc, extra={"event": "model_load_failed"})
            code = 1
            stop.set()
        except Exception:
            log.exception("cannot load the model", extra={"event": "model_load_failed"})
            code = 1
            stop.set()
        else:
            state.service = build_service(config, loaded, metrics, credentials)
            state.keys = loaded.keys
            if config.rate_limit_rps:
                state.limiter = RateLimiter(config.rate_limit_rps, config.rate_limit_burst)
            if credentials is not None and credentials.cached is None:
                # Unread at startup: counted as a shared-cache failure until a connection reads it.
                metrics.cache_backend_errors.labels(RedisCache.BACKEND).inc()
                metrics.cache_backend_up.labels(RedisCache.BACKEND).set(0)
            state.service.batcher.start()
            info = loaded.predictor.info
            metrics.info.labels(config.model_name, info.identity[:16], info.task, info.platform, info.device).set(1)
            metrics.workers.set(state.service.batcher.workers)
            metrics.ready.set(1)
            state.ready = True
            log.info("ready", extra={"event": "ready", "port": port})
    await stopping

    shutdown_started = time.monotonic()
    log.info("shutting down: not ready, no new connections, finishing queued work",
             extra={"event": "draining"})
    state.draining = True
    metrics.ready.set(0)
    await runner.cleanup()  # stops listening, then waits (up to the grace period) for in-flight requests
    if state.service is not None:
        await state.service.close(timeout_s=max(1.0, config.shutdown_grace_s - (time.monotonic() - shutdown_started)))
    if exporting:
        shutdown_tracing()  # flushes the spans still batched for export
    log.info("stopped", extra={"event": "stopped", "shutdown_s": round(time.monotonic() - shutdown_started, 3)})
    return code


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    setup_logging(config.log_level)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(config))
    return uvloop.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
