"""The offline store: events and computed features as Parquet in S3 (or a local folder), partitioned by date.

    <uri>/events/<view>/date=YYYY-MM-DD/schema_version=N/part-<partition>-<first offset>-<last offset>.parquet
    <uri>/features/<view>/date=YYYY-MM-DD/snapshot-<as of ms>.parquet

Columns follow the view's newest schema (older versions leave the new columns null) and each file records its
schema name and version in the Parquet metadata too. A file name is a function of the offsets it holds, so a
replay after a crash rewrites the same object instead of adding a copy; readers also fold by event id, so a
duplicate that does slip in (different batch boundaries) changes nothing.
S3 writes use SSE-KMS with the data key when one is given (the stack passes its ARN).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from .definitions import FeatureView

_ARROW = {"integer": pa.int64(), "string": pa.string(), "number": pa.float64(), "boolean": pa.bool_()}


class ObjectStore:
    """put/get/list over `s3://bucket/prefix` (boto3) or a local folder, so laptops and pods share one code path."""

    def __init__(self, uri: str, *, kms_key_id: str | None = None, client: Any = None) -> None:
        parsed = urlparse(uri)
        self.uri = uri
        self.kms_key_id = kms_key_id
        if parsed.scheme == "s3":
            import boto3

            self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
            self.s3 = client or boto3.client("s3")
            self.root: Path | None = None
        elif parsed.scheme in ("", "file"):
            self.root = Path(parsed.path if parsed.scheme else uri)
            self.s3 = None
        else:
            raise ValueError(f"offline store {uri!r}: expected s3://bucket/prefix or a local folder")

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, name: str, data: bytes) -> None:
        if self.root is not None:
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            return
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id} if self.kms_key_id else {}
        self.s3.put_object(Bucket=self.bucket, Key=self._key(name), Body=data, **extra)

    def get(self, name: str) -> bytes:
        if self.root is not None:
            return (self.root / name).read_bytes()
        return self.s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()

    def list(self, prefix: str) -> list[str]:
        if self.root is not None:
            base = self.root / prefix
            if not base.exists():
                return []
            return sorted(str(p.relative_to(self.root)) for p in base.rglob("*.parquet"))
        names: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                key = item["Key"]
                names.append(key[len(self.prefix) + 1:] if self.prefix else key)
        return sorted(n for n in names if n.endswith(".parquet"))


def event_schema(view: FeatureView) -> pa.Schema:
    props = view.schemas[view.latest_schema_version]["properties"]
    fields = []
    for name, spec in props.items():
        kind = spec.get("type", "integer" if name == "schema_version" else "string")
        fields.append(pa.field(name, _ARROW[kind]))
    return pa.schema(fields)


def _date(event_time_ms: int) -> str:
    return dt.datetime.fromtimestamp(event_time_ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d")


def _parquet(table: pa.Table, metadata: Mapping[str, str]) -> bytes:
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_events(store: ObjectStore, view: FeatureView, records: Sequence[tuple[int, int, Mapping[str, Any]]]) -> list[str]:
    """Write (partition, offset, event fields) records, one file per (date, schema version, partition)."""
    schema = event_schema(view)
    groups: dict[tuple[str, int, int], list[tuple[int, Mapping[str, Any]]]] = {}
    for partition, offset, fields in records:
        key = (_date(fields[view.event_time_field]), fields["schema_version"], partition)
        groups.setdefault(key, []).append((offset, fields))
    written = []
    for (date, version, partition), rows in sorted(groups.items()):
        offsets = [o for o, _ in rows]
        columns = {f.name: [r.get(f.name) for _, r in rows] for f in schema}
        table = pa.table(columns, schema=schema)
        name = (f"events/{view.name}/date={date}/schema_version={version}/"
                f"part-{partition}-{min(offsets):012d}-{max(offsets):012d}.parquet")
        store.put(name, _parquet(table, {"aiinfra.schema": view.schema_name,
                                         "aiinfra.schema_version": str(version)}))
        written.append(name)
    return written


def read_events(store: ObjectStore, view: FeatureView) -> Iterator[dict[str, Any]]:
    """Every stored event, as dicts with the schema's fields (absent optional fields dropped)."""
    for name in store.list(f"events/{view.name}/"):
        table = pq.read_table(io.BytesIO(store.get(name)))
        for row in table.to_pylist():
            yield {k: v for k, v in row.items() if v is not None}


def write_feature_snapshot(store: ObjectStore, view: FeatureView, values: Mapping[str, Mapping[str, Any]],
                           as_of_ms: int) -> str:
    """Computed features for every entity as of an instant (what backfill produces)."""
    types = {"int": pa.int64(), "string": pa.string()}
    schema = pa.schema([pa.field(view.entity_key, pa.string()), pa.field("_event_time_ms", pa.int64()),
                        *[pa.field(f.name, types[f.dtype]) for f in view.features]])
    entities = sorted(values)
    columns: dict[str, list[Any]] = {view.entity_key: entities,
                                     "_event_time_ms": [values[e]["_event_time_ms"] for e in entities]}
    for f in view.features:
        columns[f.name] = [values[e][f.name] for e in entities]
    name = f"features/{view.name}/date={_date(as_of_ms)}/snapshot-{as_of_ms}.parquet"
    store.put(name, _parquet(pa.table(columns, schema=schema),
                             {"aiinfra.view": view.name, "aiinfra.as_of_ms": str(as_of_ms)}))
    return name


def read_table(store: ObjectStore, name: str) -> pa.Table:
    return pq.read_table(io.BytesIO(store.get(name)))


def rows(tables: Iterable[pa.Table]) -> Iterator[dict[str, Any]]:
    for table in tables:
        yield from table.to_pylist()
