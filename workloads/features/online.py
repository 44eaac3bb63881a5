"""The Redis online store: key layout, the idempotent event-time-guarded upsert, and a reader.

Layout (one hash per entity, string values, readable with any Redis client):

    features:<view>:{<entity>}             fields: one per feature, plus _t (newest event time, ms),
                                           _id (its event id), _w (its window index); TTL = the view's online TTL
    features:<view>:{<entity>}:w:<window>  fields: e:<event id> for each distinct event seen in that window,
                                           and one running total per windowed feature; TTL = lateness + window

The braces are a Redis Cluster hash tag, so an entity's keys share a slot and the script stays legal in
cluster mode. Feast's Redis layout was considered and not used: its keys are serialized EntityKey protobufs
and its fields murmur3 hashes of "view:feature" holding serialized ValueProtos, so reading or writing them
needs Feast's protobuf types and registry, which is the stack this module avoids.

The upsert is one Lua script call per entity per batch (atomic on the server; KEYS are the entity's hash and
the window hash of each of its events), sent in pipelines: each event id is recorded in its window first
(HSETNX), so a duplicate or replay adds nothing; `latest` fields change only for a strictly newer
(event time, event id); the entity's windowed values are read from its newest event's window. The entity hash
is read once and written once per call, whatever the number of events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from .definitions import FeatureView
from .validation import Event

UPSERT = """
local ttl, wttl = ARGV[1], ARGV[2]
local nl, nw = tonumber(ARGV[3]), tonumber(ARGV[4])
local names = {}
for j = 1, nl + nw do names[j] = ARGV[4 + j] end
local at = 5 + nl + nw
local per = 3 + nl + nw
local cur = redis.call('HMGET', KEYS[1], '_t', '_id', '_w')
local ct, cid, cw = tonumber(cur[1]), cur[2], cur[3]
local newest, newest_key, touched = nil, nil, {}
for i = 0, #KEYS - 2 do
  local a = at + i * per
  local t, id, w = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local wkey = KEYS[2 + i]
  if redis.call('HSETNX', wkey, 'e:' .. id, '1') == 1 then
    for j = 1, nw do redis.call('HINCRBY', wkey, names[nl + j], ARGV[a + 2 + nl + j]) end
    redis.call('EXPIRE', wkey, wttl)
  end
  touched[w] = wkey
  if ct == nil or t > ct or (t == ct and id > cid) then
    ct, cid, cw, newest = t, id, w, a
  end
end
local args = {}
if newest then
  args = {'_t', ARGV[newest], '_id', cid, '_w', cw}
  for j = 1, nl do
    args[#args + 1] = names[j]
    args[#args + 1] = ARGV[newest + 2 + j]
  end
end
if nw > 0 and touched[cw] then
  local fields = {}
  for j = 1, nw do fields[j] = names[nl + j] end
  local values = redis.call('HMGET', touched[cw], unpack(fields))
  for j = 1, nw do
    args[#args + 1] = fields[j]
    args[#args + 1] = values[j] or '0'
  end
end
if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
redis.call('EXPIRE', KEYS[1], ttl)
return newest and 1 or 0
"""


def entity_key(view: FeatureView, entity: str) -> str:
    return f"features:{view.name}:{{{entity}}}"


def window_key(view: FeatureView, entity: str, window: int) -> str:
    return f"{entity_key(view, entity)}:w:{window}"


class OnlineWriter:
    """Pipelined upserts of accepted events; raises redis errors to the caller, which decides how to retry."""

    def __init__(self, client: redis.Redis, view: FeatureView) -> None:
        self.client = client
        self.view = view
        self._script = client.register_script(UPSERT)
        self._window_ttl = view.max_lateness_s + view.window_s
        self._latest, self._windowed = view.latest, view.windowed

    def _header(self) -> list[Any]:
        return [self.view.online_ttl_s, self._window_ttl, len(self.view.latest), len(self.view.windowed),
                *[f.name for f in self.view.latest], *[f.name for f in self.view.windowed]]

    def _event_args(self, event: Event) -> list[Any]:
        row = self.view.transform(event.fields)
        return [event.event_time_ms, event.event_id, self.view.window_of(event.event_time_ms),
                *[f.encode(row[f.source]) for f in self._latest],
                *[1 if f.kind == "window_count" else int(row[f.source]) for f in self._windowed]]

    def upsert(self, events: Sequence[Event], *, chunk: int = 1000) -> None:
        """Write every event; safe to call again with any of them (that is how retries and replays work)."""
        by_entity: dict[str, list[Event]] = {}
        for event in events:
            by_entity.setdefault(event.entity, []).append(event)
        header = self._header()
        pipe, queued = self.client.pipeline(transaction=False), 0
        for entity, group in by_entity.items():
            keys = [entity_key(self.view, entity)]
            args = list(header)
            for event in group:
                keys.append(window_key(self.view, entity, self.view.window_of(event.event_time_ms)))
                args += self._event_args(event)
            self._script(keys=keys, args=args, client=pipe)
            queued += len(group)
            if queued >= chunk:
                pipe.execute()
                pipe, queued = self.client.pipeline(transaction=False), 0
        if queued:
            pipe.execute()


class OnlineReader:
    """Typed feature values by entity, with the view's defaults for what is absent.

    A small interface for the model server to use: `get` returns None for an entity the store does not know
    (the caller picks default-or-4xx), and a circuit breaker stops calling Redis for `open_s` after
    `failures` consecutive errors, raising `OnlineUnavailable` so the caller applies its fallback at once.
    """

    def __init__(self, client: redis.Redis, view: FeatureView, *, failures: int = 3, open_s: float = 5.0,
                 clock: Any = time.monotonic) -> None:
        self.client, self.view = client, view
        self._failures, self._open_s, self._clock = failures, open_s, clock
        self._consecutive = 0
        self._open_until = 0.0

    def get(self, entity: str, names: Iterable[str] | None = None) -> dict[str, Any] | None:
        features = [self.view.feature(n) for n in names] if names is not None else list(self.view.features)
        if self._clock() < self._open_until:
            raise OnlineUnavailable(f"feature store circuit open for {self._open_until - self._clock():.1f}s more")
        try:
            raw = self.client.hmget(entity_key(self.view, entity), ["_t", *[f.name for f in features]])
        except redis.RedisError as exc:
            self._consecutive += 1
            if self._consecutive >= self._failures:
                self._open_until = self._clock() + self._open_s
            raise OnlineUnavailable(f"feature store read failed: {type(exc).__name__}: {exc}") from exc
        self._consecutive = 0
        if raw[0] is None:
            return None
        return {f.name: f.parse(v) for f, v in zip(features, raw[1:])}

    def get_or_default(self, entity: str) -> dict[str, Any]:
        return self.get(entity) or self.view.defaults()


class OnlineUnavailable(RuntimeError):
    """Redis is slow or down (or the breaker is open): use the documented fallback."""


def dump(client: redis.Redis, view: FeatureView) -> dict[str, dict[str, Any]]:
    """Every entity's typed values plus `_event_time_ms`, for tests and the consistency check."""
    out: dict[str, dict[str, Any]] = {}
    prefix = f"features:{view.name}:{{"
    for key in client.scan_iter(match=f"features:{view.name}:*", count=1000):
        text = key.decode()
        if ":w:" in text:
            continue
        entity = text[len(prefix):-1]
        raw = client.hgetall(key)
        values = {f.name: f.parse(raw.get(f.name.encode())) for f in view.features}
        values["_event_time_ms"] = int(raw[b"_t"])
        out[entity] = values
    return out
