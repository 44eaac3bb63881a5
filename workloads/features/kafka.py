"""Kafka clients for MSK (IAM over TLS) and local brokers (plain TCP), and idempotent topic creation.

MSK with IAM access control takes SASL/OAUTHBEARER over TLS; the token is a SigV4-signed URL made from the
pod's own role (IRSA) by aws-msk-iam-sasl-signer-python, refreshed by librdkafka before it expires. A local
broker (Tansu, Kafka in a container) takes plain TCP. `create_topics` is what the stack's topic Job runs:
creating a topic that exists is success, so the Job can run on every deploy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .definitions import FeatureView

AUTH_MODES = ("none", "iam")


def msk_token_callback(region: str) -> Callable[[Any], tuple[str, float]]:
    """librdkafka's `oauth_cb`: a fresh MSK IAM token and its expiry (seconds since the epoch)."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    def callback(_config: Any) -> tuple[str, float]:
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return token, expiry_ms / 1000

    return callback


def client_config(bootstrap: str, *, auth: str = "none", region: str | None = None) -> dict[str, Any]:
    """The connection settings every client here shares."""
    if auth not in AUTH_MODES:
        raise ValueError(f"--kafka-auth {auth!r}: allowed: {', '.join(AUTH_MODES)}")
    # Brokers close idle connections routinely; librdkafka would log each one to stderr.
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": "aiinfra-features",
                              "log.connection.close": False}
    if auth == "iam":
        if not region:
            raise ValueError("--kafka-auth iam needs a region (--region or AWS_REGION)")
        config.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER",
                       "oauth_cb": msk_token_callback(region)})
    return config


def consumer_config(base: dict[str, Any], group: str, *, session_timeout_ms: int = 10000,
                    stats_interval_ms: int = 5000) -> dict[str, Any]:
    """At-least-once: no auto commit (offsets are committed after the write); bounded prefetch."""
    return {**base, "group.id": group, "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 5),
            # A Redis outage holds a batch while the loop retries; stay in the group for up to 10 minutes.
            "max.poll.interval.ms": 600000,
            # Memory bound: at most this much prefetched per partition queue before the loop takes it.
            "queued.max.messages.kbytes": 8192, "fetch.max.bytes": 8 * 1024 * 1024,
            # Freshness: a fetch returns within 50 ms even when little is waiting (the default waits 500 ms).
            "fetch.wait.max.ms": 50,
            "statistics.interval.ms": stats_interval_ms}


def producer_config(base: dict[str, Any]) -> dict[str, Any]:
    """Idempotent producer: retries never duplicate or reorder within a partition."""
    return {**base, "enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "zstd"}


def topics_for(views: Iterable[FeatureView], *, replication: int) -> list[NewTopic]:
    out = []
    for view in views:
        out.append(NewTopic(view.source_topic, view.partitions, replication,
                            config={"cleanup.policy": "delete"}))
        out.append(NewTopic(view.dead_letter_topic, 1, replication, config={"cleanup.policy": "delete"}))
    return out


def create_topics(admin_config: dict[str, Any], views: Iterable[FeatureView], *, replication: int,
                  timeout_s: float = 30.0) -> dict[str, str]:
    """Create each view's topics; {topic: "created" | "exists"}. Other failures raise KafkaException."""
    admin = AdminClient(admin_config)
    futures = admin.create_topics(topics_for(views, replication=replication), request_timeout=timeout_s)
    result: dict[str, str] = {}
    for topic, future in futures.items():
        try:
            future.result(timeout_s)
            result[topic] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            result[topic] = "exists"
    return result
