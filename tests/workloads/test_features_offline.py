"""Offline store (Parquet in S3 through moto, and a local folder), backfill, point-in-time training sets, the
online reader, and the command line's bad-input paths."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from features_services import RedisServer, free_port

from workloads.features import __main__ as cli
from workloads.features import demo
from workloads.features.batch import as_event, backfill, training_set
from workloads.features.definitions import USER_ACTIVITY as VIEW
from workloads.features.fold import fold
from workloads.features.offline import ObjectStore, read_events, write_events
from workloads.features.online import OnlineReader, OnlineUnavailable, OnlineWriter, dump
from workloads.training.data import read_examples

NOW = int(time.time() * 1000)


def stored(store: ObjectStore, events: list[dict]) -> list[str]:
    return write_events(store, VIEW, [(i % 3, i, e) for i, e in enumerate(events)])


def test_events_land_in_s3_as_parquet_partitioned_by_date_with_the_schema_version(aws) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="offline")
    key_id = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    store = ObjectStore("s3://offline/features-store", kms_key_id=key_id)
    events = demo.events(200, users=10, seed=5, now_ms=NOW, span_s=2 * 86400)
    names = stored(store, events)
    dates = {n.split("/")[2] for n in names}
    assert len(dates) >= 2 and all(d.startswith("date=") for d in dates)
    assert {n.split("/")[3] for n in names} == {"schema_version=1", "schema_version=2"}
    head = s3.head_object(Bucket="offline", Key=f"features-store/{names[0]}")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_id)
    body = s3.get_object(Bucket="offline", Key=f"features-store/{names[0]}")["Body"].read()
    meta = pq.read_schema(io.BytesIO(body)).metadata
    version = names[0].split("schema_version=")[1].split("/")[0]
    assert meta[b"aiinfra.schema"] == b"user_activity" and meta[b"aiinfra.schema_version"] == version.encode()
    back = sorted(read_events(store, VIEW), key=lambda e: e["event_id"])
    assert back == sorted(events, key=lambda e: e["event_id"])
    # The same offsets written again (a replay) overwrite the same objects rather than adding copies.
    assert stored(store, events) == names
    assert len(list(read_events(store, VIEW))) == len(events)


def test_training_set_is_point_in_time_and_readable_by_the_training_workload(tmp_path: Path) -> None:
    events = demo.events(300, users=6, seed=7, now_ms=NOW)
    store = ObjectStore(str(tmp_path / "offline"))
    stored(store, events)
    users = sorted({e["user_id"] for e in events})
    times = sorted(e["event_time_ms"] for e in events)
    labels = [{"user_id": u, "timestamp_ms": times[(i * 37) % len(times)], "label": "positive" if i % 2 else "negative"}
              for i, u in enumerate(users * 3)]
    labels.append({"user_id": "nobody", "timestamp_ms": NOW, "label": "negative"})
    rows, dropped = training_set(read_events(store, VIEW), VIEW, labels)
    assert dropped == sum(1 for r in labels if not fold(VIEW, [e for e in events if e["user_id"] == r["user_id"]],
                                                       as_of_ms=r["timestamp_ms"]))
    differs_from_today = 0
    for row in rows:
        mine = [e for e in events if e["user_id"] == row["user_id"]]
        before = [e for e in mine if e["event_time_ms"] <= row["timestamp_ms"]]
        strip = lambda v: {k: x for k, x in v.items() if k != "_event_time_ms"}  # noqa: E731
        assert row["features"] == strip(fold(VIEW, before)[row["user_id"]])
        differs_from_today += row["features"] != strip(fold(VIEW, mine)[row["user_id"]])
    assert differs_from_today > 0  # later events exist and were left out: a leaky join would fail above
    labels_file = tmp_path / "labels.jsonl"
    labels_file.write_text("".join(json.dumps(r) + "\n" for r in labels))
    out = tmp_path / "train" / "train.jsonl"
    assert cli.main(["training-set", "--offline-uri", str(tmp_path / "offline"), "--labels", str(labels_file),
                     "--out", str(out)]) == 0
    examples = read_examples(out, "train")
    assert len(examples) == len(rows) and {e.label for e in examples} <= {"positive", "negative"}


def test_backfill_command_rematerializes_redis_from_parquet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    events = demo.events(500, users=12, seed=9, now_ms=NOW)
    stored(ObjectStore(str(tmp_path / "offline")), demo.shuffled_with_duplicates(events, seed=1))
    server = RedisServer()
    try:
        assert cli.main(["backfill", "--offline-uri", str(tmp_path / "offline"), "--redis-url", server.url,
                         "--rematerialize"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["entities"] == 12 and result["rematerialized"] is True
        assert dump(server.client(), VIEW) == fold(VIEW, events)
        assert cli.main(["read", "--redis-url", server.url, events[-1]["user_id"]]) == 0
        read = json.loads(capsys.readouterr().out)
        assert read["known"] and read["features"]["last_text"] == fold(VIEW, events)[events[-1]["user_id"]]["last_text"]
    finally:
        server.stop()


def test_upserts_are_idempotent_and_never_move_a_value_backwards() -> None:
    server = RedisServer()
    try:
        writer, client = OnlineWriter(server.client(), VIEW), server.client()
        events = demo.events(50, users=2, seed=2, now_ms=NOW)
        parsed = [as_event(VIEW, e) for e in events]
        writer.upsert(parsed)
        once = dump(client, VIEW)
        writer.upsert(parsed[::-1])  # a full replay, in reverse
        writer.upsert(parsed[:10])  # an old batch again
        assert dump(client, VIEW) == once == fold(VIEW, events)
        ttl = client.ttl(f"features:{VIEW.name}:{{{events[0]['user_id']}}}")
        assert 0 < ttl <= VIEW.online_ttl_s
    finally:
        server.stop()


def test_online_reader_defaults_unknown_entities_and_opens_its_breaker() -> None:
    import redis

    server = RedisServer()
    try:
        events = demo.events(20, users=1, seed=4, now_ms=NOW)
        OnlineWriter(server.client(), VIEW).upsert([as_event(VIEW, e) for e in events])
        reader = OnlineReader(server.client(), VIEW)
        values = reader.get(events[0]["user_id"])
        expected = fold(VIEW, events)[events[0]["user_id"]]
        assert values == {k: v for k, v in expected.items() if k != "_event_time_ms"}
        assert isinstance(values["events_1h"], int)
        assert reader.get("stranger") is None and reader.get_or_default("stranger") == VIEW.defaults()
    finally:
        server.stop()
    now = [0.0]
    down = OnlineReader(redis.Redis(port=free_port(), socket_connect_timeout=0.2), VIEW, failures=2, open_s=5,
                        clock=lambda: now[0])
    for _ in range(2):
        with pytest.raises(OnlineUnavailable, match="read failed"):
            down.get("u")
    with pytest.raises(OnlineUnavailable, match="circuit open"):
        down.get("u")
    now[0] = 6.0  # half-open after open_s: the next call tries Redis again
    with pytest.raises(OnlineUnavailable, match="read failed"):
        down.get("u")


@pytest.mark.parametrize("argv, message", [
    (["materialize", "--redis-url", "redis://127.0.0.1:1/0"], "--bootstrap (or FEATURES_BOOTSTRAP) is required"),
    (["materialize", "--bootstrap", "b:9098", "--kafka-auth", "iam", "--region", "", "--redis-url", "redis://x"],
     "--kafka-auth iam needs a region"),
    (["--view", "nope", "read", "u"], "--view: unknown feature view 'nope'; known: user_activity"),
    (["read", "u"], "--redis-url (or FEATURES_REDIS_URL) is required"),
    (["backfill", "--offline-uri", "ftp://x/y"], "expected s3://bucket/prefix or a local folder"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads.common.cli import run_main

    monkeypatch.delenv("AWS_REGION", raising=False)
    assert run_main(cli.main, argv, prog="python -m workloads.features") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_bad_label_rows_name_the_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from workloads.common.cli import run_main

    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"user_id": "u", "timestamp_ms": 5, "label": "x"}\n{"user_id": "u", "label": "x"}\n')
    argv = ["training-set", "--offline-uri", str(tmp_path), "--labels", str(labels), "--out", str(tmp_path / "o")]
    assert run_main(cli.main, argv, prog="features") == 2
    assert f"{labels}:2: missing field 'timestamp_ms'" in capsys.readouterr().err
