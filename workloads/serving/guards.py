"""Guard rails: API-key authentication, per-client token-bucket rate limits, and a circuit breaker.

Authentication is for the EKS path: the keys come from a file (a mounted Secret) or a Secrets Manager secret
read with the pod's IRSA role, and a presented key is compared with every configured key in constant time.
Health and metrics routes never ask for a key (kubelet probes and scrapers carry none). SageMaker starts the
server without keys, since it authenticates its callers with SigV4; where keys are set (the EKS path),
`/invocations` asks for one like the v2 routes. Each client (its key, else its address) gets a token bucket; a
bucket that is empty answers 429 with the seconds until its next token. The breaker stops calling a dependency
that keeps failing (the Redis cache) and lets one probe through after a pause.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping

from contracts import secrets

from .errors import RateLimited, Unauthorized

KEYS_FIELD = secrets.SERVING_API_KEYS  # JSON form of the keys secret: {"apiKeys": ["...", ...]}
REALM = 'Bearer realm="aiinfra-serving"'


class KeysError(ValueError):
    """The keys file or secret holds no usable key; the message names it."""


def parse_keys(text: str, source: str) -> tuple[str, ...]:
    """Keys from a file or secret: one per line (blank lines and # comments ignored), or {"apiKeys": [...]}."""
    body = text.strip()
    if body.startswith("{"):
        try:
            doc = json.loads(body)
        except json.JSONDecodeError as exc:
            raise KeysError(f"{source}: not valid JSON ({exc.msg})") from None
        keys = doc.get(KEYS_FIELD) if isinstance(doc, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) and k.strip() for k in keys):
            raise KeysError(f"{source}: JSON without a list of non-empty strings in {KEYS_FIELD!r}")
        found = tuple(k.strip() for k in keys)
    else:
        found = tuple(line.strip() for line in body.splitlines() if line.strip() and not line.startswith("#"))
    if not found:
        raise KeysError(f"{source}: holds no API key")
    return found


def keys_from_file(path: str) -> tuple[str, ...]:
    try:
        return parse_keys(Path(path).read_text(encoding="utf-8"), path)
    except OSError as exc:
        raise KeysError(f"{path}: cannot read the API keys file: {exc.strerror}") from None


def keys_from_secret(arn: str, client: object | None = None) -> tuple[str, ...]:
    """The keys in a Secrets Manager secret, read with the process's own role in the secret's region."""
    from .secrets import secret_string

    return parse_keys(secret_string(arn, client=client), arn)


class ApiKeys:
    """Checks `Authorization: Bearer <key>` or `X-Api-Key: <key>` against the configured keys."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        # Compare digests, so every comparison has the same length whatever the caller sent.
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def client(self, headers: Mapping[str, str]) -> str:
        """An id for the caller's key (for its rate limit), or Unauthorized with WWW-Authenticate."""
        auth = headers.get("Authorization", "")
        presented = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("X-Api-Key", "").strip()
        if not presented:
            raise Unauthorized("this route needs an API key: send Authorization: Bearer <key> or X-Api-Key",
                               field="Authorization", headers={"WWW-Authenticate": REALM})
        digest = hashlib.sha256(presented.encode()).digest()
        match = False
        for known in self._digests:  # no early exit: the time taken does not say which key (or how much) matched
            match |= hmac.compare_digest(digest, known)
        if not match:
            raise Unauthorized("the API key is not valid", field="Authorization",
                               headers={"WWW-Authenticate": REALM + ', error="invalid_token"'})
        return "key:" + digest[:8].hex()


class RateLimiter:
    """Token bucket per client: `rate` tokens a second up to `burst`; at most `max_clients` buckets kept."""

    def __init__(self, rate: float, burst: int | None = None, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, math.ceil(2 * rate)))
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, updated)

    def take(self, client: str) -> None:
        """Spend one token of `client`'s bucket, or raise RateLimited with Retry-After in whole seconds."""
        now = self._clock()
        tokens, updated = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
            raise RateLimited(f"rate limit of {self.rate:g} requests/s (burst {self.burst:g}) exceeded for this "
                              f"client; retry in {wait:.2f}s", headers={"Retry-After": str(max(1, math.ceil(wait)))})
        self._buckets[client] = (tokens - 1.0, now)
        while len(self._buckets) > self._max_clients:  # the least recently seen client goes first
            self._buckets.popitem(last=False)


class CircuitBreaker:
    """closed -> open after `failures` consecutive failures -> half-open after `reset_s` (one probe) -> closed.

    A failed probe opens it again for another `reset_s`. `on_change(state)` reports every transition.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
    STATES = (CLOSED, OPEN, HALF_OPEN)

    def __init__(self, failures: int, reset_s: float, *, on_change: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.reset_s = reset_s
        self._on_change = on_change
        self._clock = clock
        self.state = self.CLOSED
        self._failures = 0
        self._opened = 0.0
        self._probing = False

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)

    def allow(self) -> bool:
        """Whether to call the dependency now (in half-open, only the one probe is let through)."""
        if self.state == self.OPEN and self._clock() - self._opened >= self.reset_s:
            self._set(self.HALF_OPEN)
            self._probing = False
        if self.state == self.HALF_OPEN:
            if self._probing:
                return False
            self._probing = True
            return True
        return self.state == self.CLOSED

    def success(self) -> None:
        self._failures = 0
        self._probing = False
        self._set(self.CLOSED)

    def failure(self) -> bool:
        """Count a failure; True when it opened the breaker (the caller logs that once)."""
        self._failures += 1
        self._probing = False
        if self.state == self.HALF_OPEN or self._failures >= self.threshold:
            opened = self.state != self.OPEN
            self._opened = self._clock()
            self._set(self.OPEN)
            return opened
        return False
