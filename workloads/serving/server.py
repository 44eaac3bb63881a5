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
from typing import Sequence

from aiohttp import web

from .app import ServerState, build_app
from .batching import DynamicBatcher
from .cache import LRUCache, RedisCache, ResultCache
from .config import ServerConfig, parse_config
from .logs import setup_logging
from .metrics import Metrics
from .model import ModelLoadError, Predictor, load_predictor
from .secrets import SecretsManagerToken
from .service import InferenceService

log = logging.getLogger("workloads.serving")
WARMUP_TEXT = "A short sentence to warm up the tokenizer, the allocator and every kernel the model uses."


def load_and_warm(config: ServerConfig, predictor: Predictor | None = None,
                  credentials: SecretsManagerToken | None = None) -> Predictor:
    """Load the model (unless given one) and run it at batch size 1 and at the full batch size, so the
    first request is not slow; read the Redis token meanwhile, so the first connection need not."""
    import torch

    if credentials is not None:
        credentials.prefetch()

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    started = time.monotonic()
    if predictor is None:
        predictor = load_predictor(config.model_dir, max_seq_len=config.max_seq_len)
    loaded = time.monotonic()
    for n in (1, config.max_batch_size, 1):
        predictor.predict([WARMUP_TEXT] * n)
    log.info("model loaded", extra={
        "event": "model_loaded", "model": config.model_name, "task": predictor.info.task,
        "platform": predictor.info.platform, "dim": predictor.info.dim, "max_seq_len": predictor.info.max_seq_len,
        "load_s": round(loaded - started, 3), "warmup_s": round(time.monotonic() - loaded, 3),
        "torch_threads": torch.get_num_threads()})
    return predictor


def build_service(config: ServerConfig, predictor: Predictor, metrics: Metrics,
                  credentials: SecretsManagerToken | None = None) -> InferenceService:
    batcher = DynamicBatcher(predictor.predict, max_batch_size=config.max_batch_size,
                             max_wait_s=config.max_wait_ms / 1000.0, max_queue=config.max_queue, metrics=metrics,
                             active_requests=lambda: service.active)  # `service` is bound below
    redis = None
    if config.redis_url:
        redis = RedisCache(config.redis_url, metrics=metrics, auth_token=config.redis_auth_token,
                           tls=config.redis_tls, ca_file=config.redis_ca_file, ttl_s=config.redis_ttl_s,
                           timeout_s=config.redis_timeout_ms / 1000, credentials=credentials)
    cache = ResultCache(predictor.info.identity, predictor.info.dim, metrics=metrics,
                        lru=LRUCache(config.cache_size) if config.cache_size else None, redis=redis)
    service = InferenceService(predictor, batcher, cache, config.request_timeout_s)
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
    site = web.TCPSite(runner, config.host, config.port, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else config.port
    log.info("listening", extra={"event": "listening", "host": config.host, "port": port,
                                 "model": config.model_name})

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
            predictor = loading.result()
        except ModelLoadError as exc:
            log.error("cannot load the model: %s", exc, extra={"event": "model_load_failed"})
            code = 1
            stop.set()
        except Exception:
            log.exception("cannot load the model", extra={"event": "model_load_failed"})
            code = 1
            stop.set()
        else:
            state.service = build_service(config, predictor, metrics, credentials)
            if credentials is not None and credentials.cached is None:
                # Unread at startup: counted as a shared-cache failure until a connection reads it.
                metrics.cache_backend_errors.labels(RedisCache.BACKEND).inc()
                metrics.cache_backend_up.labels(RedisCache.BACKEND).set(0)
            state.service.batcher.start()
            metrics.info.labels(config.model_name, predictor.info.identity[:16], predictor.info.task).set(1)
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
