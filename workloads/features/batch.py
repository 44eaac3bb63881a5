"""The batch path over the offline store: backfill (features, and optionally Redis) and point-in-time training sets.

Backfill folds every stored event with `fold.fold`, writes the result as a feature snapshot next to the events
and, with `rematerialize`, replays the events through the same idempotent Redis upsert the stream uses, so a
new or flushed online store ends with the values the stream would have produced.

A training set joins (entity, timestamp, label) rows to the features as they were at each timestamp: only
events at or before it count, so no row sees its future. Output is the JSON-lines format
`python -m workloads.training` reads (`text` and `label`, here the entity's newest text), with the feature
values and the row's entity and timestamp alongside.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from workloads.common.cli import UsageError

from .definitions import FeatureView
from .fold import fold
from .offline import ObjectStore, read_events, write_feature_snapshot
from .online import OnlineWriter
from .validation import Event


@dataclass(frozen=True)
class BackfillResult:
    events: int
    entities: int
    snapshot: str
    rematerialized: bool


def backfill(store: ObjectStore, view: FeatureView, *, redis_client: redis.Redis | None = None,
             as_of_ms: int | None = None) -> BackfillResult:
    events = list(read_events(store, view))
    as_of_ms = int(time.time() * 1000) if as_of_ms is None else as_of_ms
    values = fold(view, events, as_of_ms=as_of_ms)
    snapshot = write_feature_snapshot(store, view, values, as_of_ms)
    if redis_client is not None:
        OnlineWriter(redis_client, view).upsert([as_event(view, e) for e in events
                                                 if e[view.event_time_field] <= as_of_ms])
    return BackfillResult(len(events), len(values), snapshot, redis_client is not None)


def as_event(view: FeatureView, fields: Mapping[str, Any]) -> Event:
    return Event(entity=fields[view.entity_key], event_id=fields[view.event_id_field],
                 event_time_ms=int(fields[view.event_time_field]), schema_version=int(fields["schema_version"]),
                 fields=dict(fields))


def read_label_rows(path: Path, view: FeatureView) -> list[dict[str, Any]]:
    """(entity, timestamp_ms, label) rows from JSON lines; errors name the file, line and field."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"--labels {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise UsageError(f"{where}: expected an object with {view.entity_key!r}, 'timestamp_ms' and 'label'")
        for name in (view.entity_key, "timestamp_ms", "label"):
            if name not in row:
                raise UsageError(f"{where}: missing field {name!r}")
        if isinstance(row["timestamp_ms"], bool) or not isinstance(row["timestamp_ms"], int):
            raise UsageError(f"{where}: field 'timestamp_ms' must be an integer (epoch milliseconds)")
        rows.append(row)
    return rows


def training_set(events: Iterable[Mapping[str, Any]], view: FeatureView,
                 label_rows: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Point-in-time rows, and how many label rows were dropped because their entity had no event yet."""
    by_entity: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_entity.setdefault(event[view.entity_key], []).append(event)
    out, dropped = [], 0
    for row in label_rows:
        entity, ts = row[view.entity_key], row["timestamp_ms"]
        values = fold(view, by_entity.get(entity, ()), as_of_ms=ts).get(entity)
        if values is None:
            dropped += 1
            continue
        features = {f.name: values[f.name] for f in view.features}
        out.append({"text": features["last_text"] or "(empty)", "label": row["label"], view.entity_key: entity,
                    "timestamp_ms": ts, "features": features})
    return out, dropped


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
            count += 1
    return count
