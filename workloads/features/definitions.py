"""Feature definitions, declared once and read by every path: stream materializer, backfill, training sets, readers.

A `FeatureView` names its entity key, event-time field, source and dead-letter topics, schema versions, the
row transformation, the online TTL, the lateness policy and each feature's aggregation and default. The
aggregations are deliberately ones whose result does not depend on arrival order or on duplicates:

- `latest`: the value from the entity's newest event, ordered by (event time, event id); a replayed or late
  event never moves it backwards.
- `window_count` / `window_sum`: over the distinct events (by event id) in the tumbling window that holds the
  entity's newest event; a duplicate is counted once, a late event lands in its own window.

That is what makes at-least-once delivery plus idempotent upserts equal to exactly-once in effect, and what
lets the batch path (`fold.py`) and the stream path (`online.py`'s Redis script) agree value for value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from contracts.features import SCHEMA_DIR, USER_ACTIVITY as USER_ACTIVITY_STREAM, StreamSpec

Kind = Literal["latest", "window_count", "window_sum"]
DType = Literal["string", "int"]


@dataclass(frozen=True)
class Feature:
    """One value per entity: how it aggregates the transformed rows, its type, and what readers get without it."""

    name: str
    kind: Kind
    dtype: DType
    default: Any
    source: str = ""  # the transformed row's field (not used by window_count)
    description: str = ""

    def parse(self, raw: str | bytes | None) -> Any:
        """The typed value of what Redis holds (strings), or the default when absent."""
        if raw is None:
            return self.default
        text = raw.decode() if isinstance(raw, bytes) else raw
        return int(text) if self.dtype == "int" else text

    def encode(self, value: Any) -> str:
        return str(int(value)) if self.dtype == "int" else str(value)


@dataclass(frozen=True)
class FeatureView:
    """A group of features about one entity, computed from one event stream."""

    name: str
    entity_key: str
    event_time_field: str  # epoch milliseconds
    event_id_field: str
    source_topic: str
    dead_letter_topic: str
    schema_name: str
    schema_versions: tuple[int, ...]
    transform: Callable[[Mapping[str, Any]], dict[str, Any]]
    features: tuple[Feature, ...]
    online_ttl_s: int
    window_s: int
    max_lateness_s: int  # older than now - this: dead-lettered as "late"
    max_future_s: int  # newer than now + this: dead-lettered as "future"
    max_record_bytes: int
    partitions: int = 6

    def __post_init__(self) -> None:
        if self.max_lateness_s + self.window_s > self.online_ttl_s:
            raise ValueError(f"feature view {self.name}: online TTL {self.online_ttl_s}s must outlast lateness "
                             f"{self.max_lateness_s}s plus one window {self.window_s}s, or a late event could "
                             "reappear as the newest after its entity expired")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names) or any(n.startswith("_") for n in names):
            raise ValueError(f"feature view {self.name}: feature names must be unique and not start with '_'")

    @property
    def latest(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.kind == "latest")

    @property
    def windowed(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.kind != "latest")

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.features}

    def window_of(self, event_time_ms: int) -> int:
        return event_time_ms // (self.window_s * 1000)

    def schema_path(self, version: int) -> Path:
        return SCHEMA_DIR / f"{self.schema_name}.v{version}.json"

    @cached_property
    def schemas(self) -> dict[int, dict[str, Any]]:
        """The JSON Schema of each version, from the same files the stack registers in Glue."""
        return {v: json.loads(self.schema_path(v).read_text(encoding="utf-8")) for v in self.schema_versions}

    @property
    def latest_schema_version(self) -> int:
        return max(self.schema_versions)


def user_activity_row(event: Mapping[str, Any]) -> dict[str, Any]:
    """The demo transformation: the same function runs in the stream and in the batch path."""
    return {
        "action": event["action"],
        "text": event["text"],
        "text_length": len(event["text"]),
        "amount_cents": int(event.get("amount_cents", 0)),
        "is_purchase": 1 if event["action"] == "purchase" else 0,
    }


def _stream(spec: StreamSpec) -> dict[str, Any]:
    """The fields the stack shares (contracts.features), so topics and schemas are named in one place."""
    return {"name": spec.view, "source_topic": spec.source_topic, "dead_letter_topic": spec.dead_letter_topic,
            "partitions": spec.partitions, "schema_name": spec.schema_name, "schema_versions": spec.schema_versions}


USER_ACTIVITY = FeatureView(
    **_stream(USER_ACTIVITY_STREAM),
    entity_key="user_id",
    event_time_field="event_time_ms",
    event_id_field="event_id",
    transform=user_activity_row,
    features=(
        Feature("last_action", "latest", "string", "none", source="action",
                description="the action of the user's newest event"),
        Feature("last_text", "latest", "string", "", source="text",
                description="the text of the user's newest event (the training set's text)"),
        Feature("last_text_length", "latest", "int", 0, source="text_length",
                description="characters in the newest event's text"),
        Feature("events_1h", "window_count", "int", 0,
                description="distinct events in the clock hour of the user's newest event"),
        Feature("purchases_1h", "window_sum", "int", 0, source="is_purchase",
                description="purchases in that hour"),
        Feature("amount_1h_cents", "window_sum", "int", 0, source="amount_cents",
                description="purchase amounts in that hour, in cents (integers, so any order sums the same)"),
    ),
    online_ttl_s=8 * 86400,
    window_s=3600,
    max_lateness_s=7 * 86400,
    max_future_s=300,
    max_record_bytes=16 * 1024,
)

VIEWS: dict[str, FeatureView] = {USER_ACTIVITY.name: USER_ACTIVITY}


def view_named(name: str) -> FeatureView:
    try:
        return VIEWS[name]
    except KeyError:
        raise ValueError(f"unknown feature view {name!r}; known: {', '.join(sorted(VIEWS))}") from None
