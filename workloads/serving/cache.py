"""Result cache: an in-process LRU in front of an optional shared Redis, keyed by model identity and input.

The key includes the model identity (hash of the weights, tokenizer and settings), so two models or two
versions never share entries. Redis is a best-effort accelerator behind a circuit breaker: every Redis failure
(down, slow, auth) is counted, enough of them in a row open the breaker (logged once) and the shared tier is
skipped until a probe after the reset pause succeeds; requests are never failed by it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .guards import CircuitBreaker
from .metrics import Metrics

if TYPE_CHECKING:
    from .secrets import SecretsManagerToken

log = logging.getLogger("workloads.serving.cache")


class LRUCache:
    """Bounded map from key to result row; least recently used entries go first. Event-loop only."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        row = self._data.get(key)
        if row is not None:
            self._data.move_to_end(key)
        return row

    def put(self, key: str, row: np.ndarray) -> None:
        if self.capacity <= 0:
            return
        self._data[key] = row
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class RedisCache:
    """Shared tier: float32 rows stored as raw bytes with a TTL; one MGET per request, writes in background."""

    BACKEND = "redis"

    def __init__(self, url: str, *, metrics: Metrics, auth_token: str | None = None, tls: bool = False,
                 ca_file: str | None = None, ttl_s: int = 3600, timeout_s: float = 0.05,
                 breaker_failures: int = 3, breaker_reset_s: float = 2.0,
                 credentials: SecretsManagerToken | None = None) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        if tls and url.startswith("redis://"):
            url = "rediss://" + url[len("redis://"):]
        kwargs: dict[str, object] = {
            "socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
            # No retries: a Redis that is down must cost one timeout, not several.
            "retry": Retry(NoBackoff(), 0),
        }
        if auth_token:
            kwargs["password"] = auth_token
        elif credentials is not None:
            kwargs["credential_provider"] = credentials  # the token from Secrets Manager, read per connection
        self._credentials = credentials
        if ca_file and url.startswith("rediss://"):
            kwargs["ssl_ca_certs"] = ca_file
        self._client = Redis.from_url(url, **kwargs)
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._metrics = metrics
        self._pending: set[asyncio.Task[None]] = set()
        self.breaker = CircuitBreaker(breaker_failures, breaker_reset_s, on_change=self._breaker_changed)
        self._breaker_changed(self.breaker.state)

    def _breaker_changed(self, state: str) -> None:
        for s in CircuitBreaker.STATES:
            self._metrics.breaker_state.labels(self.BACKEND, s).set(1 if s == state else 0)
        self._metrics.cache_backend_up.labels(self.BACKEND).set(0 if state == CircuitBreaker.OPEN else 1)

    @property
    def available(self) -> bool:
        """Whether to call Redis now (the breaker is closed, or this is its half-open probe)."""
        return self.breaker.allow()

    def _failed(self, what: str, exc: BaseException) -> None:
        from redis.exceptions import AuthenticationError

        self._metrics.cache_backend_errors.labels(self.BACKEND).inc()
        if self._credentials is not None and isinstance(exc, AuthenticationError):
            self._credentials.forget()  # refused: the token may have been rotated, so read the secret again
        if self.breaker.failure():
            log.warning("redis cache unavailable, serving without it; circuit breaker open for %.1fs",
                        self.breaker.reset_s, extra={"event": "cache_degraded", "op": what,
                                                     "error": f"{type(exc).__name__}: {exc}"})

    def _ok(self) -> None:
        if self.breaker.state != CircuitBreaker.CLOSED:
            log.info("redis cache available again", extra={"event": "cache_recovered"})
        self.breaker.success()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for `keys` (None where absent); all None while Redis is down or when it fails now."""
        if not keys or not self.available:
            return [None] * len(keys)
        try:
            values = await asyncio.wait_for(self._client.mget(list(keys)), self._timeout * 2)
        except Exception as exc:  # any Redis or network failure degrades to a miss, never to a failed request
            self._failed("mget", exc)
            return [None] * len(keys)
        self._ok()
        return list(values)

    def set_many_background(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write entries with the TTL without making the request wait for Redis."""
        if not items or not self.available:
            return
        task = asyncio.get_running_loop().create_task(self._set_many(items))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            for key, value in items:
                pipe.set(key, value, ex=self._ttl)
            await asyncio.wait_for(pipe.execute(), self._timeout * 2)
        except Exception as exc:
            self._failed("set", exc)
            return
        self._ok()

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=self._timeout * 4)
        try:
            await self._client.aclose()
        except Exception:  # closing a connection to a dead Redis may fail; nothing is lost
            pass


class ResultCache:
    """Both tiers behind one lookup/store, with hit and miss metrics per tier."""

    def __init__(self, identity: str, dim: int, *, metrics: Metrics, lru: LRUCache | None,
                 redis: RedisCache | None) -> None:
        self._prefix = f"aiinfra:serve:{identity}:"
        self._dim = dim
        self._metrics = metrics
        self.lru = lru if lru is not None and lru.capacity > 0 else None
        self.redis = redis

    @property
    def enabled(self) -> bool:
        return self.lru is not None or self.redis is not None

    def key(self, text: str) -> str:
        return self._prefix + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    async def lookup(self, texts: Sequence[str]) -> tuple[list[str], list[np.ndarray | None]]:
        """Keys and cached rows (None for a miss) for `texts`, local tier first, then Redis for the rest."""
        keys = [self.key(t) for t in texts]
        rows: list[np.ndarray | None] = [self.lru.get(k) if self.lru is not None else None for k in keys]
        local_hits = sum(r is not None for r in rows)
        if local_hits:
            self._metrics.cache_hits.labels("local").inc(local_hits)
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing and self.redis is not None:
            values = await self.redis.get_many([keys[i] for i in missing])
            shared_hits = 0
            for i, value in zip(missing, values):
                if value is not None and len(value) == self._dim * 4:
                    row = np.frombuffer(value, dtype=np.float32)
                    rows[i] = row
                    shared_hits += 1
                    if self.lru is not None:
                        self.lru.put(keys[i], row)
            if shared_hits:
                self._metrics.cache_hits.labels("redis").inc(shared_hits)
        misses = sum(r is None for r in rows)
        if misses:
            self._metrics.cache_misses.inc(misses)
        return keys, rows

    def store(self, keys: Sequence[str], rows: Sequence[np.ndarray]) -> None:
        """Remember freshly computed rows in both tiers (Redis in the background)."""
        if self.lru is not None:
            for k, r in zip(keys, rows):
                self.lru.put(k, np.array(r, dtype=np.float32, copy=True))  # a row, not a view of its batch
        if self.redis is not None:
            self.redis.set_many_background(
                [(k, np.ascontiguousarray(r, dtype=np.float32).tobytes()) for k, r in zip(keys, rows)])

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()
