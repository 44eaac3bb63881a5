"""Demo user-activity events (reproducible from a seed) and a producer that checks them before sending.

The producer validates each record against the same schema files the consumer uses (and the stack registers
in Glue), so a producer bug is caught where it is made; the consumer checks again, because not every
producer is this one.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import Producer

from .definitions import FeatureView
from .validation import DeadLetter, validate

WORDS = ("great", "slow", "blue", "cheap", "fast", "broken", "lovely", "late", "shiny", "useful", "noisy", "warm")


def events(count: int, *, users: int = 50, seed: int = 0, now_ms: int | None = None,
           span_s: int = 3 * 3600) -> list[dict[str, Any]]:
    """`count` valid events for `users` users over the last `span_s` seconds, in event-time order."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    out = []
    for i in range(count):
        action = rng.choices(("view", "click", "purchase"), weights=(6, 3, 1))[0]
        event: dict[str, Any] = {
            "schema_version": 2 if i % 3 else 1,
            "event_id": f"e{seed}-{i:07d}",
            "user_id": f"u{rng.randrange(users):04d}",
            "event_time_ms": now_ms - span_s * 1000 + (i * span_s * 1000) // max(1, count),
            "action": action,
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))),
        }
        if event["schema_version"] == 2 and action == "purchase":
            event["amount_cents"] = rng.randint(100, 20000)
        out.append(event)
    return out


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def produce(producer: Producer, view: FeatureView, records: Iterable[dict[str, Any] | bytes], *,
            check: bool = True) -> int:
    """Send records keyed by entity (so an entity's events share a partition); returns how many were sent."""
    now_ms = int(time.time() * 1000)
    sent = 0
    for record in records:
        raw = record if isinstance(record, bytes) else encode(record)
        if check and not isinstance(record, bytes):
            result = validate(view, raw, now_ms)
            if isinstance(result, DeadLetter):
                raise ValueError(f"event {record.get(view.event_id_field)!r} rejected before sending: "
                                 f"{result.reason}: {result.detail}")
        key = record.get(view.entity_key) if isinstance(record, dict) else None
        while True:
            try:
                producer.produce(view.source_topic, value=raw, key=str(key).encode() if key else None)
                break
            except BufferError:
                producer.poll(0.1)
        sent += 1
        if sent % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        raise RuntimeError(f"{remaining} records not acknowledged by the broker within 30s")
    return sent


def bad_records(view: FeatureView, now_ms: int) -> dict[str, bytes]:
    """One record per dead-letter reason, for tests and for trying the dead-letter path by hand."""
    good = {"schema_version": 2, "event_id": "bad", "user_id": "u-bad", "event_time_ms": now_ms,
            "action": "view", "text": "hi"}
    return {
        "oversized": encode({**good, "text": "x" * 2000, "pad": "y" * view.max_record_bytes}),
        "not_json": b"{not json",
        "unknown_schema_version": encode({**good, "schema_version": 99}),
        "missing_entity_key": encode({k: v for k, v in good.items() if k != view.entity_key}),
        "schema": encode({**good, "action": "dance"}),
        "late": encode({**good, "event_time_ms": now_ms - (view.max_lateness_s + 3600) * 1000}),
        "future": encode({**good, "event_time_ms": now_ms + (view.max_future_s + 3600) * 1000}),
    }


def shuffled_with_duplicates(records: Sequence[dict[str, Any]], *, seed: int, duplicate_every: int = 4) -> list[dict[str, Any]]:
    out = list(records) + [r for i, r in enumerate(records) if i % duplicate_every == 0]
    random.Random(seed).shuffle(out)
    return out
