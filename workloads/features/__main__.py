"""`python -m workloads.features COMMAND`: create-topics, produce-demo, materialize, read, backfill, training-set.

Every flag has an environment variable (FEATURES_<FLAG>, e.g. FEATURES_BOOTSTRAP), which is how the stack's
Deployment and Job configure them. Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workloads.common.cli import UsageError, run_main

from .definitions import VIEWS, view_named


def env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"FEATURES_{name.upper()}", default)


def _kafka_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", default=env("bootstrap"), help="Kafka bootstrap servers (host:port,...)")
    p.add_argument("--kafka-auth", default=env("kafka_auth", "none"), choices=("none", "iam"),
                   help="none: plain TCP (local brokers); iam: MSK IAM over TLS with the pod's role")
    p.add_argument("--region", default=env("region", os.environ.get("AWS_REGION")), help="AWS region for IAM")


def _redis_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", default=env("redis_url"), help="redis://host:port/db or rediss:// for TLS")
    p.add_argument("--redis-auth-secret-arn", default=env("redis_auth_secret_arn"),
                   help="read the Redis AUTH token from this Secrets Manager secret (the feature store's)")
    p.add_argument("--redis-timeout", type=float, default=float(env("redis_timeout", 2.0)),
                   help="seconds before a Redis call counts as failed (then the batch is retried)")


def _offline_flags(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--offline-uri", default=env("offline_uri"), required=required and not env("offline_uri"),
                   help="s3://bucket/prefix or a local folder for the Parquet offline store")
    p.add_argument("--offline-kms-key-id", default=env("offline_kms_key_id"),
                   help="KMS key for SSE-KMS on offline-store writes")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workloads.features", description=__doc__.splitlines()[0])
    p.add_argument("--view", default=env("view", "user_activity"), help=f"feature view ({', '.join(VIEWS)})")
    sub = p.add_subparsers(dest="command", required=True)

    topics = sub.add_parser("create-topics", help="create the views' topics (idempotent)")
    _kafka_flags(topics)
    topics.add_argument("--replication", type=int, default=int(env("replication", 1)))

    demo = sub.add_parser("produce-demo", help="produce demo events (checked against the schema first)")
    _kafka_flags(demo)
    demo.add_argument("--events", type=int, default=1000)
    demo.add_argument("--users", type=int, default=50)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--with-bad", action="store_true", help="also send one bad record per dead-letter reason")

    mat = sub.add_parser("materialize", help="consume the view's topic into Redis (and the offline store)")
    _kafka_flags(mat)
    _redis_flags(mat)
    _offline_flags(mat)
    mat.add_argument("--group", default=env("group"), help="consumer group id (default: <view>-materializer)")
    mat.add_argument("--batch", type=int, default=int(env("batch", 2000)))
    mat.add_argument("--metrics-port", type=int, default=int(env("metrics_port", 9400)), help="0 to disable")
    mat.add_argument("--metrics-addr", default=env("metrics_addr", "0.0.0.0"))
    mat.add_argument("--offline-flush-s", type=float, default=float(env("offline_flush_s", 30.0)))
    mat.add_argument("--exit-when-idle", type=float, default=env("exit_when_idle"), metavar="SECONDS",
                     help="exit once no record arrived for this long (batch-like runs, tests)")
    mat.add_argument("--session-timeout-ms", type=int, default=int(env("session_timeout_ms", 10000)))
    mat.add_argument("--stats-interval-ms", type=int, default=int(env("stats_interval_ms", 5000)),
                     help="how often consumer lag is refreshed in /metrics")

    read = sub.add_parser("read", help="print an entity's online features as JSON")
    _redis_flags(read)
    read.add_argument("entity")

    back = sub.add_parser("backfill", help="compute features from the offline store; --rematerialize writes Redis")
    _redis_flags(back)
    _offline_flags(back, required=True)
    back.add_argument("--rematerialize", action="store_true")
    back.add_argument("--as-of-ms", type=int, default=None)

    ts = sub.add_parser("training-set", help="point-in-time join of label rows to offline features")
    _offline_flags(ts, required=True)
    ts.add_argument("--labels", type=Path, required=True, help="JSON lines: {<entity key>, timestamp_ms, label}")
    ts.add_argument("--out", type=Path, required=True, help="JSON-lines file the training workload reads")
    return p


def _redis(args: argparse.Namespace):
    import redis

    if not args.redis_url:
        raise UsageError("--redis-url (or FEATURES_REDIS_URL) is required")
    kwargs: dict[str, Any] = {"socket_timeout": args.redis_timeout, "socket_connect_timeout": args.redis_timeout}
    if args.redis_auth_secret_arn:
        from workloads.serving.secrets import SecretsManagerToken

        try:
            kwargs["credential_provider"] = SecretsManagerToken(args.redis_auth_secret_arn)
        except ValueError as exc:
            raise UsageError(f"--redis-auth-secret-arn: {exc}") from None
    try:
        return redis.Redis.from_url(args.redis_url, **kwargs)
    except ValueError as exc:
        raise UsageError(f"--redis-url {args.redis_url!r}: {exc}") from None


def _kafka(args: argparse.Namespace) -> dict[str, Any]:
    from .kafka import client_config

    if not args.bootstrap:
        raise UsageError("--bootstrap (or FEATURES_BOOTSTRAP) is required")
    try:
        return client_config(args.bootstrap, auth=args.kafka_auth, region=args.region)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _offline(args: argparse.Namespace):
    from .offline import ObjectStore

    if not args.offline_uri:
        return None
    try:
        return ObjectStore(args.offline_uri, kms_key_id=args.offline_kms_key_id)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def materialize(args: argparse.Namespace, view) -> int:
    from contracts.features import consumer_group

    from .kafka import consumer_config, producer_config
    from .materializer import Materializer
    from .metrics import MaterializerMetrics

    if args.batch < 1:
        raise UsageError(f"--batch {args.batch}: must be at least 1")
    idle = None if args.exit_when_idle in (None, "") else float(args.exit_when_idle)
    base = _kafka(args)
    metrics = MaterializerMetrics(view.name)
    materializer = Materializer(
        view, consumer_config=consumer_config(base, args.group or consumer_group("", view.name),
                                              session_timeout_ms=args.session_timeout_ms,
                                              stats_interval_ms=args.stats_interval_ms),
        producer_config=producer_config(base), redis_client=_redis(args), metrics=metrics,
        offline=_offline(args), batch=args.batch, offline_flush_s=args.offline_flush_s)
    if args.metrics_port:
        metrics.serve(args.metrics_port, args.metrics_addr)
    signal.signal(signal.SIGTERM, lambda *_: materializer.stop.set())
    signal.signal(signal.SIGINT, lambda *_: materializer.stop.set())
    logging.info("materializing %s from %s", view.name, args.bootstrap)
    return materializer.run(exit_when_idle_s=idle)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        view = view_named(args.view)
    except ValueError as exc:
        raise UsageError(f"--view: {exc}") from None
    if args.command == "create-topics":
        from .kafka import create_topics

        print(json.dumps(create_topics(_kafka(args), [view], replication=args.replication)))
        return 0
    if args.command == "produce-demo":
        from confluent_kafka import Producer

        from .demo import bad_records, events, produce
        from .kafka import producer_config

        producer = Producer(producer_config(_kafka(args)))
        sent = produce(producer, view, events(args.events, users=args.users, seed=args.seed))
        if args.with_bad:
            sent += produce(producer, view, list(bad_records(view, int(time.time() * 1000)).values()), check=False)
        print(json.dumps({"sent": sent, "topic": view.source_topic}))
        return 0
    if args.command == "materialize":
        return materialize(args, view)
    if args.command == "read":
        from .online import OnlineReader

        values = OnlineReader(_redis(args), view).get(args.entity)
        print(json.dumps({"entity": args.entity, "known": values is not None,
                          "features": values if values is not None else view.defaults()}))
        return 0
    if args.command == "backfill":
        from .batch import backfill

        client = _redis(args) if args.rematerialize else None
        result = backfill(_offline(args), view, redis_client=client, as_of_ms=args.as_of_ms)
        print(json.dumps(result.__dict__))
        return 0
    if args.command == "training-set":
        from .batch import read_label_rows, training_set, write_jsonl
        from .offline import read_events

        rows, dropped = training_set(read_events(_offline(args), view), view, read_label_rows(args.labels, view))
        print(json.dumps({"rows": write_jsonl(args.out, rows), "dropped_no_history": dropped,
                          "out": str(args.out)}))
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(run_main(main, prog="python -m workloads.features"))
