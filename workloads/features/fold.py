"""The batch path: a view's feature values from a set of events, as the online store ends up holding them.

Same semantics as the Redis upsert script in `online.py` (see `definitions.py`): duplicates by event id count
once, `latest` follows the max (event time, event id), windowed values cover the window of the newest event.
`as_of_ms` gives the value a reader would have seen at that instant (only events at or before it), which is
what point-in-time training sets need.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .definitions import FeatureView


@dataclass
class _EntityState:
    newest: tuple[int, str] = (-1, "")
    latest_row: dict[str, Any] = field(default_factory=dict)
    windows: dict[int, dict[str, int]] = field(default_factory=dict)


def fold(view: FeatureView, events: Iterable[Mapping[str, Any]], *,
         as_of_ms: int | None = None) -> dict[str, dict[str, Any]]:
    """{entity: {feature: value}} over distinct events (by event id), each entity's values as of `as_of_ms`."""
    seen: set[tuple[str, str]] = set()
    states: dict[str, _EntityState] = {}
    for event in events:
        t = int(event[view.event_time_field])
        if as_of_ms is not None and t > as_of_ms:
            continue
        entity, event_id = event[view.entity_key], event[view.event_id_field]
        if (entity, event_id) in seen:
            continue
        seen.add((entity, event_id))
        row = view.transform(event)
        state = states.setdefault(entity, _EntityState())
        if (t, event_id) > state.newest:
            state.newest = (t, event_id)
            state.latest_row = {f.name: row[f.source] for f in view.latest}
        window = state.windows.setdefault(view.window_of(t), {f.name: 0 for f in view.windowed})
        for f in view.windowed:
            window[f.name] += 1 if f.kind == "window_count" else int(row[f.source])
    return {entity: _values(view, state) for entity, state in states.items()}


def _values(view: FeatureView, state: _EntityState) -> dict[str, Any]:
    values = view.defaults()
    values.update(state.latest_row)
    values.update(state.windows[view.window_of(state.newest[0])])
    values["_event_time_ms"] = state.newest[0]
    return values
