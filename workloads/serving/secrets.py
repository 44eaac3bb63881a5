"""The Redis AUTH token from AWS Secrets Manager, so no secret sits in a pod spec or a SageMaker environment.

The token is read with the pod's or endpoint's own role, in the secret's region (taken from its ARN). It is a
redis-py credential provider: every new Redis connection asks it for the token, the first ask reads the secret,
and a failed read fails that connection like a Redis that is down (a warning, a metric, no shared cache for a
short while, then a new try), so a transient Secrets Manager error never stops the server or fails a request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from typing import Any

from redis.credentials import CredentialProvider

log = logging.getLogger("workloads.serving.cache")

SECRET_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:secretsmanager:([a-z]{2}(?:-[a-z]+)+-\d+):\d{12}:secret:[\w/+=.@-]+$")
# The feature store writes {"host", "readerHost", "port", "tls", "authToken"} (components/feature_store.py).
TOKEN_FIELD = "authToken"


class SecretError(Exception):
    """The secret was read but holds no usable token (a permanent problem, reported with the ARN)."""


def secret_region(arn: str) -> str:
    """The region in a Secrets Manager secret ARN; ValueError for anything else."""
    match = SECRET_ARN.match(arn)
    if not match:
        raise ValueError(f"not a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:"
                         f"<name>): {arn!r}")
    return match.group(1)


def token_from_secret(secret_string: str, arn: str) -> str:
    """A plain-string secret is the token; a JSON object (the feature store's format) carries it in authToken."""
    text = secret_string.strip()
    if not text.startswith("{"):
        if not text:
            raise SecretError(f"secret {arn} is empty")
        return text
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SecretError(f"secret {arn} is neither a plain token nor valid JSON: {exc.msg}") from None
    token = value.get(TOKEN_FIELD) if isinstance(value, dict) else None
    if not isinstance(token, str) or not token:
        raise SecretError(f"secret {arn} is JSON without a non-empty string {TOKEN_FIELD!r}")
    return token


def secrets_client(region: str, timeout_s: float = 2.0) -> Any:
    """A Secrets Manager client with short timeouts and few retries: a slow read must not hold anything long."""
    import boto3
    from botocore.config import Config

    return boto3.client("secretsmanager", region_name=region, config=Config(
        connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2, "mode": "standard"}))


def secret_string(arn: str, *, client: Any = None) -> str:
    """The SecretString of `arn` (blocking), read in the ARN's region; SecretError for a binary secret."""
    response = (client or secrets_client(secret_region(arn))).get_secret_value(SecretId=arn)
    if "SecretString" not in response:
        raise SecretError(f"secret {arn} holds binary data, not text")
    return response["SecretString"]


class SecretsManagerToken(CredentialProvider):
    """Reads the token once and remembers it; forgets it when Redis refuses it (the token was rotated)."""

    def __init__(self, arn: str, *, timeout_s: float = 2.0) -> None:
        self.arn = arn
        self.region = secret_region(arn)
        self._timeout_s = timeout_s
        self._token: str | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    def _secrets_client(self) -> Any:
        if self._client is None:
            self._client = secrets_client(self.region, self._timeout_s)
        return self._client

    def token(self) -> str:
        """The token, read from Secrets Manager on first use (blocking; call it off the event loop)."""
        with self._lock:
            if self._token is None:
                text = secret_string(self.arn, client=self._secrets_client())
                self._token = token_from_secret(text, self.arn)
            return self._token

    @property
    def cached(self) -> str | None:
        """The token once read, else None."""
        return self._token

    def forget(self) -> None:
        """Read the secret again on the next connection."""
        self._token = None

    def get_credentials(self) -> tuple[str]:
        return (self.token(),)

    async def get_credentials_async(self) -> tuple[str]:
        cached = self._token
        if cached is not None:
            return (cached,)
        return (await asyncio.to_thread(self.token),)

    def prefetch(self) -> bool:
        """Read the secret now (at startup, off the loop); False, with a warning, when it cannot be read yet."""
        try:
            self.token()
        except Exception as exc:  # transient or not, Redis connections will try again and degrade meanwhile
            log.warning("cannot read the redis auth secret; the shared cache waits for it",
                        extra={"event": "cache_secret_unavailable", "secret_arn": self.arn,
                               "error": f"{type(exc).__name__}: {exc}"})
            return False
        return True
