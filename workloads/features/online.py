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
the window hashes its events fall in), sent in pipelines. Per window, the script looks up which event ids it
already holds (one HMGET), records the new ones and adds only their increments, so a duplicate or replay adds
nothing; `latest` fields take the batch's newest event only if it is strictly newer (event time, event id) than
the stored one; the entity's windowed values are those of its newest event's window. Each hash is read and
written a fixed number of times per call, whatever the number of events.
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
local a = 5 + nl + nw
local t, id, w = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
local cur = redis.call('HMGET', KEYS[1], '_t', '_id', '_w')
local ct, cid, cw = tonumber(cur[1]), cur[2], cur[3]
local newer = (ct == nil) or (t > ct) or (t == ct and id > cid)
local args = {}
if newer then
  cw = w
  args = {'_t', ARGV[a], '_id', id, '_w', w}
  for j = 1, nl do
    args[#args + 1] = names[j]
    args[#args + 1] = ARGV[a + 2 + j]
  end
end
local p = a + 3 + nl
local per = 1 + nw
for g = 2, #KEYS do
  local k, gw = tonumber(ARGV[p]), ARGV[p + 1]
  p = p + 2
  local fields = {}
  for i = 0, k - 1 do fields[i + 1] = 'e:' .. ARGV[p + i * per] end
  local seen = redis.call('HMGET', KEYS[g], unpack(fields))
  local totals, fresh = {}, {}
  for j = 1, nw do totals[j] = 0 end
  for i = 0, k - 1 do
    if not seen[i + 1] then
      fresh[#fresh + 1] = fields[i + 1]
      fresh[#fresh + 1] = '1'
      for j = 1, nw do totals[j] = totals[j] + tonumber(ARGV[p + i * per + j]) end
    end
  end
  p = p + k * per
  local values = nil
  if #fresh > 0 then
    redis.call('HSET', KEYS[g], unpack(fresh))
    values = {}
    for j = 1, nw do
      values[j] = redis.call('HINCRBY', KEYS[g], names[nl + j], string.format('%d', totals[j]))
    end
    redis.call('EXPIRE', KEYS[g], wttl)
  end
  if gw == cw and nw > 0 then
    if values == nil then
      local wanted = {}
      for j = 1, nw do wanted[j] = names[nl + j] end
      values = redis.call('HMGET', KEYS[g], unpack(wanted))
    end
    for j = 1, nw do
      args[#args + 1] = names[nl + j]
      args[#args + 1] = values[j] or '0'
    end
  end
end
if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
redis.call('EXPIRE', KEYS[1], ttl)
return newer and 1 or 0
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
        self._header = [view.online_ttl_s, self._window_ttl, len(self._latest), len(self._windowed),
                        *[f.name for f in self._latest], *[f.name for f in self._windowed]]

    def _entity_call(self, entity: str, events: Sequence[Event]) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV for one entity: its newest event's `latest` values, then its events by window."""
        distinct = list({e.event_id: e for e in events}.values())  # a duplicate inside one batch counts once
        newest = max(distinct, key=lambda e: (e.event_time_ms, e.event_id))
        row = self.view.transform(newest.fields)
        args: list[Any] = [*self._header, newest.event_time_ms, newest.event_id,
                           self.view.window_of(newest.event_time_ms),
                           *[f.encode(row[f.source]) for f in self._latest]]
        windows: dict[int, list[Event]] = {}
        for event in distinct:
            windows.setdefault(self.view.window_of(event.event_time_ms), []).append(event)
        keys = [entity_key(self.view, entity)]
        for window, group in windows.items():
            keys.append(window_key(self.view, entity, window))
            args += [len(group), window]
            for event in group:
                r = self.view.transform(event.fields)
                args.append(event.event_id)
                args += [1 if f.kind == "window_count" else int(r[f.source]) for f in self._windowed]
        return keys, args

    def upsert(self, events: Sequence[Event], *, chunk: int = 1000) -> None:
        """Write every event; safe to call again with any of them (that is how retries and replays work)."""
        by_entity: dict[str, list[Event]] = {}
        for event in events:
            by_entity.setdefault(event.entity, []).append(event)
        pipe, queued = self.client.pipeline(transaction=False), 0
        for entity, group in by_entity.items():
            keys, args = self._entity_call(entity, group)
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
