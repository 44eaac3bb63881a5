"""The fields of the secrets the platform writes and the workloads read."""

from __future__ import annotations

# The feature store's connection secret (components/feature_store.py writes it as JSON; the model server
# reads the token from it with its own role).
FEATURE_STORE_HOST = "host"
FEATURE_STORE_READER_HOST = "readerHost"
FEATURE_STORE_PORT = "port"
FEATURE_STORE_TLS = "tls"
FEATURE_STORE_AUTH_TOKEN = "authToken"

FEATURE_STORE_FIELDS = (FEATURE_STORE_HOST, FEATURE_STORE_READER_HOST, FEATURE_STORE_PORT, FEATURE_STORE_TLS,
                        FEATURE_STORE_AUTH_TOKEN)

# The model servers' API keys (components/serving_auth.py writes {"apiKeys": [...]}; workloads/serving reads it).
SERVING_API_KEYS = "apiKeys"

__all__ = ["FEATURE_STORE_AUTH_TOKEN", "FEATURE_STORE_FIELDS", "FEATURE_STORE_HOST", "FEATURE_STORE_PORT",
           "FEATURE_STORE_READER_HOST", "FEATURE_STORE_TLS", "SERVING_API_KEYS"]
