"""The materializer as a process against a real Tansu broker and a real redis-server: consistency with the
batch path, dead letters, metrics, SIGTERM, and the fault cases (Redis paused, materializer killed, broker
restarted). After each: every value equals the batch fold of the events, and none ever moved backwards."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from features_services import (RedisServer, TansuBroker, free_port, materializer_process, rss_kib, stop_process,
                               wait_for)
from serving_helpers import metric_value

from workloads.features import demo, online
from workloads.features.batch import backfill
from workloads.features.definitions import USER_ACTIVITY as VIEW
from workloads.features.fold import fold
from workloads.features.kafka import client_config, create_topics, producer_config
from workloads.features.offline import ObjectStore, read_table
from workloads.features.validation import REASONS

GROUP = "user_activity-materializer"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    b = TansuBroker(tmp_path)
    create_topics(client_config(b.bootstrap), [VIEW], replication=1)
    yield b
    b.stop()


@pytest.fixture
def store() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    os.kill(server.proc.pid, signal.SIGCONT)
    server.stop()


def send(broker: TansuBroker, records) -> int:
    producer = Producer(producer_config(client_config(broker.bootstrap)))
    return demo.produce(producer, VIEW, records, check=False)


def online_values(store: RedisServer, db: int = 0) -> dict:
    return online.dump(store.client() if db == 0 else _client(store, db), VIEW)


def _client(store: RedisServer, db: int):
    import redis

    return redis.Redis(host="127.0.0.1", port=store.port, db=db, socket_timeout=2)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def scrape_when(port: int, needle: str) -> str | None:
    text = scrape(port)
    return text if needle in text else None


def committed_total(broker: TansuBroker) -> int:
    consumer = Consumer({**client_config(broker.bootstrap), "group.id": GROUP})
    try:
        offsets = consumer.committed([TopicPartition(VIEW.source_topic, p) for p in range(VIEW.partitions)], 10)
        return sum(max(0, tp.offset) for tp in offsets)
    finally:
        consumer.close()


def dead_letters(broker: TansuBroker, expected: int) -> list:
    consumer = Consumer({**client_config(broker.bootstrap), "group.id": "dlq-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(VIEW.dead_letter_topic, 0, 0)])
    got: list = []
    deadline = time.monotonic() + 15
    while len(got) < expected and time.monotonic() < deadline:
        got += [m for m in consumer.consume(100, 0.5) if m.error() is None]
    consumer.close()
    return got


class NeverBackwards:
    """Polls every entity's newest event time while the stream runs; records any value that went down."""

    def __init__(self, store: RedisServer) -> None:
        self.client = store.client()
        self.seen: dict[bytes, int] = {}
        self.backwards: list = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                keys = [k for k in self.client.scan_iter(match=f"features:{VIEW.name}:*", count=1000)
                        if b":w:" not in k]
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.hget(key, "_t")
                for key, value in zip(keys, pipe.execute()):
                    if value is None:
                        continue
                    t = int(value)
                    if t < self.seen.get(key, -1):
                        self.backwards.append((key, self.seen[key], t))
                    self.seen[key] = max(t, self.seen.get(key, -1))
                self.samples += 1
            except Exception:  # Redis paused: try again
                pass
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_stream_and_batch_paths_give_identical_values_from_shuffled_duplicated_events(
        broker: TansuBroker, store: RedisServer, tmp_path: Path) -> None:
    events = demo.events(3000, users=40, seed=11)
    feed = demo.shuffled_with_duplicates(events, seed=12)
    bad = demo.bad_records(VIEW, int(time.time() * 1000))
    records = list(feed)
    for i, raw in enumerate(bad.values()):  # bad records interleaved: the consumer keeps going past each
        records.insert(i * 500 + 7, raw)
    send(broker, records)
    offline_dir = tmp_path / "offline"
    proc = materializer_process(broker, store.url, "--exit-when-idle", "1.5", "--metrics-port", "0",
                                "--offline-uri", str(offline_dir), "--offline-flush-s", "0.5",
                                log_path=tmp_path / "materializer.log")
    assert proc.wait(60) == 0, (tmp_path / "materializer.log").read_text()[-3000:]

    expected = fold(VIEW, events)
    assert online_values(store) == expected  # stream path
    assert committed_total(broker) == len(records)  # every record committed, bad ones included

    # Batch path: the offline Parquet the stream wrote, folded and rematerialized into another Redis db.
    result = backfill(ObjectStore(str(offline_dir)), VIEW, redis_client=_client(store, 1))
    assert result.entities == len(expected) and result.events >= len(events)
    assert online_values(store, db=1) == expected
    snapshot = {row["user_id"]: {k: v for k, v in row.items() if k != "user_id"}
                for row in read_table(ObjectStore(str(offline_dir)), result.snapshot).to_pylist()}
    assert snapshot == expected

    letters = dead_letters(broker, len(bad))
    by_reason = {dict(m.headers())["reason"].decode(): m for m in letters}
    assert sorted(by_reason) == sorted(REASONS) and len(letters) == len(REASONS)
    for reason, message in by_reason.items():
        assert message.value() == bad[reason], reason  # the original bytes, untouched
        headers = dict(message.headers())
        assert headers["detail"] and headers["source.topic"] == VIEW.source_topic.encode()


def test_metrics_then_sigterm_commits_and_exits_within_the_grace_period(
        broker: TansuBroker, store: RedisServer, tmp_path: Path) -> None:
    events = demo.events(2000, users=30, seed=21)
    port = free_port()
    proc = materializer_process(broker, store.url, "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
                                "--stats-interval-ms", "300", log_path=tmp_path / "materializer.log")
    try:
        send(broker, events + [demo.bad_records(VIEW, int(time.time() * 1000))["schema"]])
        expected = fold(VIEW, events)
        wait_for(lambda: online_values(store) == expected, 30, "the stream to be materialized")
        text = wait_for(lambda: scrape_when(port, "features_consumer_lag{"), 10, "the lag metric")
        labels = {"view": VIEW.name}
        assert metric_value(text, "features_events_total", labels) >= len(events)
        assert metric_value(text, "features_dead_letters_total", {**labels, "reason": "schema"}) == 1
        assert metric_value(text, "features_write_seconds_count", labels) >= 1
        assert "features_events_per_second" in text and "features_freshness_seconds_bucket" in text
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 10
    finally:
        stop_process(proc)
    assert committed_total(broker) == len(events) + 1


def test_redis_paused_mid_stream_loses_nothing_and_memory_stays_bounded(
        broker: TansuBroker, store: RedisServer, tmp_path: Path) -> None:
    events = demo.events(3000, users=60, seed=31)
    first, second = events[:1000], events[1000:]
    port = free_port()
    proc = materializer_process(broker, store.url, "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
                                "--batch", "500", log_path=tmp_path / "materializer.log")
    watcher = NeverBackwards(store)
    try:
        send(broker, demo.shuffled_with_duplicates(first, seed=1))
        wait_for(lambda: online_values(store) == fold(VIEW, first), 30, "the first part")
        rss_before = rss_kib(proc.pid)
        os.kill(store.proc.pid, signal.SIGSTOP)
        try:
            send(broker, demo.shuffled_with_duplicates(second, seed=2))
            wait_for(lambda: metric_value(scrape(port), "features_paused", {"view": VIEW.name}) == 1, 10,
                     "partitions paused while Redis does not answer")
            time.sleep(1)
            rss_stalled = rss_kib(proc.pid)
        finally:
            os.kill(store.proc.pid, signal.SIGCONT)
        wait_for(lambda: online_values(store) == fold(VIEW, events), 30, "the rest after Redis resumed")
        text = scrape(port)
        assert metric_value(text, "features_write_retries_total", {"view": VIEW.name}) >= 1
        assert metric_value(text, "features_paused", {"view": VIEW.name}) == 0
        assert proc.poll() is None, "the materializer must ride out a Redis stall"
        # Bounded: a stalled consumer holds one batch plus a capped prefetch, not the backlog.
        assert rss_stalled - rss_before < 64 * 1024, (rss_before, rss_stalled)
    finally:
        watcher.stop()
        stop_process(proc)
    assert watcher.samples > 5 and watcher.backwards == []


def test_materializer_killed_mid_stream_and_restarted_ends_with_every_value(
        broker: TansuBroker, store: RedisServer, tmp_path: Path) -> None:
    events = demo.events(3000, users=80, seed=41)
    send(broker, demo.shuffled_with_duplicates(events, seed=3))
    expected = fold(VIEW, events)
    watcher = NeverBackwards(store)
    log = tmp_path / "materializer.log"
    proc = materializer_process(broker, store.url, "--metrics-port", "0", "--batch", "200", log_path=log)
    try:
        wait_for(lambda: online_values(store), 30, "the first values")
        proc.kill()  # SIGKILL: no commit, no goodbye
        proc.wait(5)
        partial = online_values(store)
        assert partial != expected, "killed too late to test anything: it had finished"
        proc = materializer_process(broker, store.url, "--metrics-port", "0", "--exit-when-idle", "1.5", log_path=log)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        watcher.stop()
        stop_process(proc)
    assert online_values(store) == expected
    assert watcher.backwards == []


def test_broker_restart_mid_run_the_materializer_reconnects_and_keeps_every_value(
        broker: TansuBroker, store: RedisServer, tmp_path: Path) -> None:
    events = demo.events(3000, users=40, seed=51)
    before, after = events[:2000], events[2000:]
    log = tmp_path / "materializer.log"
    proc = materializer_process(broker, store.url, "--metrics-port", "0", log_path=log)
    watcher = NeverBackwards(store)
    try:
        send(broker, before)
        wait_for(lambda: online_values(store) == fold(VIEW, before), 30, "values before the restart")
        # Tansu keeps its log in memory: the restarted broker is empty, so the topics are created again (as the
        # stack's topic Job would) and the producer sends what follows.
        broker.restart()
        create_topics(client_config(broker.bootstrap), [VIEW], replication=1)
        send(broker, after)
        wait_for(lambda: online_values(store) == fold(VIEW, events), 60, "values after the restart")
        assert proc.poll() is None
    finally:
        watcher.stop()
        stop_process(proc)
    assert watcher.backwards == []
