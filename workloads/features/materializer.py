"""The stream materializer: a consumer group that validates events, upserts Redis, and only then commits.

One loop, one batch at a time: consume up to `batch` records, dead-letter the bad ones (original bytes, reason
in headers; the dead-letter producer is flushed before the commit, so a dead letter is never lost), write the
good ones to Redis in pipelined idempotent upserts, add them to the offline buffer, then commit the offsets
that are safe: written to Redis, and flushed to the offline store if there is one. A crash anywhere replays
from the last commit, and the upserts make the replay change nothing (at-least-once + idempotent writes).

Backpressure: while a Redis write fails or times out the loop pauses its partitions (librdkafka stops
fetching), retries with capped backoff and resumes once the write succeeds; memory stays bounded by one batch
plus librdkafka's capped prefetch. SIGTERM sets `stop`: the current batch finishes (or, if Redis is down, is
left uncommitted to be replayed), offsets are committed synchronously and the consumer leaves its group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from .definitions import FeatureView
from .metrics import MaterializerMetrics
from .online import OnlineWriter
from .validation import DeadLetter, Event, validate

if TYPE_CHECKING:
    from .offline import ObjectStore

log = logging.getLogger("workloads.features.materializer")


@dataclass
class _OfflineBuffer:
    """Accepted events waiting for the next Parquet flush, and the oldest offset each partition holds back."""

    records: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    holds: dict[int, int] = field(default_factory=dict)  # partition -> oldest unflushed offset
    since: float = 0.0


class Materializer:
    def __init__(self, view: FeatureView, *, consumer_config: dict[str, Any], producer_config: dict[str, Any],
                 redis_client: redis.Redis, metrics: MaterializerMetrics, offline: ObjectStore | None = None,
                 batch: int = 2000, offline_flush_s: float = 30.0, offline_flush_events: int = 50000,
                 clock: Callable[[], float] = time.time) -> None:
        self.view = view
        self.metrics = metrics
        self.writer = OnlineWriter(redis_client, view)
        self.offline = offline
        self.batch = batch
        self.offline_flush_s, self.offline_flush_events = offline_flush_s, offline_flush_events
        self.clock = clock
        self.stop = threading.Event()
        self._buffer = _OfflineBuffer(since=time.monotonic())
        self._done: dict[int, int] = {}  # partition -> next offset to commit (everything before it is written)
        self._committed: dict[int, int] = {}
        self._last_message: float | None = None
        self.consumer = Consumer({**consumer_config, "stats_cb": metrics.stats, "error_cb": self._kafka_error})
        self._producer_config = {**producer_config, "error_cb": self._kafka_error}
        self._dlq_fatal = False
        self.dlq = Producer(self._producer_config)

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self, *, exit_when_idle_s: float | None = None) -> int:
        """Consume until `stop` is set (or nothing arrived for `exit_when_idle_s`); returns the exit code."""
        self.consumer.subscribe([self.view.source_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not self.stop.is_set():
                messages = self.consumer.consume(self.batch, timeout=0.05)  # a batch never waits long to fill
                real = [m for m in messages if self._usable(m)]
                if real:
                    self._last_message = time.monotonic()
                    if not self._process(real):
                        break  # stopped while Redis was down: leave the batch uncommitted, it replays
                    self._last_message = time.monotonic()  # idle time starts after the work, not before
                self._maybe_flush_offline()
                self._commit(asynchronous=True)
                # Idle counts from the last record or the last assignment: joining the group is not idleness.
                if (exit_when_idle_s is not None and self._last_message is not None
                        and time.monotonic() - self._last_message >= exit_when_idle_s):
                    log.info("idle for %.1fs; exiting", exit_when_idle_s)
                    break
        finally:
            self._shutdown()
        return 0

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consume error: %s", error)
        return False

    def _process(self, messages: list[Message]) -> bool:
        now_ms = int(self.clock() * 1000)
        accepted: list[tuple[Message, Event]] = []
        dead = 0
        for message in messages:
            result = validate(self.view, message.value(), now_ms)
            if isinstance(result, DeadLetter):
                self._dead_letter(message, result)
                dead += 1
            else:
                accepted.append((message, result))
        if not self._write([event for _, event in accepted]):
            return False
        if dead:
            self._flush_dlq()
        for message, event in accepted:
            if self.offline is not None:
                self._buffer.records.append((message.partition(), message.offset(), event.fields))
                self._buffer.holds.setdefault(message.partition(), message.offset())
        for message in messages:  # in order within a partition; follows an offset reset backwards too
            self._done[message.partition()] = message.offset() + 1
        if accepted:
            newest = max(e.event_time_ms for _, e in accepted)
            self.metrics.freshness.observe(max(0.0, self.clock() - newest / 1000))
        return True

    def _write(self, events: list[Event]) -> bool:
        """Write until it succeeds; pause fetching meanwhile. False only if stopped before it succeeded."""
        delay, paused = 0.05, False
        while True:
            started = time.monotonic()
            try:
                self.writer.upsert(events)
            except redis.RedisError as exc:
                self.metrics.write_retries.inc()
                if not paused:
                    log.warning("online store write failed (%s); pausing partitions", exc)
                    self._pause(True)
                    paused = True
                if self.stop.wait(delay):
                    return False
                delay = min(delay * 2, 2.0)
                continue
            self.metrics.wrote(len(events), time.monotonic() - started)
            if paused:
                log.info("online store writable again; resuming partitions")
                self._pause(False)
            return True

    def _pause(self, pause: bool) -> None:
        try:
            assignment = self.consumer.assignment()
            (self.consumer.pause if pause else self.consumer.resume)(assignment)
        except KafkaException as exc:
            log.warning("could not %s partitions: %s", "pause" if pause else "resume", exc)
        self.metrics.paused.set(1 if pause else 0)

    # -- dead letters ---------------------------------------------------------------------------------------

    def _dead_letter(self, message: Message, letter: DeadLetter) -> None:
        headers = [("reason", letter.reason.encode()), ("detail", letter.detail.encode()),
                   ("source.topic", (message.topic() or "").encode()),
                   ("source.partition", str(message.partition()).encode()),
                   ("source.offset", str(message.offset()).encode())]
        if self._dlq_fatal:  # e.g. the broker lost the idempotent producer's state: start a new producer
            self.dlq.flush(1.0)
            self.dlq, self._dlq_fatal = Producer(self._producer_config), False
        while True:
            try:
                self.dlq.produce(self.view.dead_letter_topic, value=message.value(), key=message.key(),
                                 headers=headers)
                break
            except BufferError:
                self.dlq.poll(0.1)
        self.metrics.dead_letters.labels(self.view.name, letter.reason).inc()

    def _flush_dlq(self) -> None:
        while self.dlq.flush(5.0) and not self.stop.is_set():
            log.warning("dead-letter topic slow; still flushing")

    # -- offsets ----------------------------------------------------------------------------------------------

    def _maybe_flush_offline(self, force: bool = False) -> None:
        buf = self._buffer
        if self.offline is None or not buf.records:
            return
        due = (force or len(buf.records) >= self.offline_flush_events
               or time.monotonic() - buf.since >= self.offline_flush_s)
        if not due:
            return
        from .offline import write_events  # pyarrow loads only when there is an offline store

        try:
            write_events(self.offline, self.view, buf.records)
        except Exception as exc:  # S3 unreachable: keep the buffer (and the held-back offsets), try again later
            log.warning("offline store write failed (%s); keeping %d events", exc, len(buf.records))
            return
        self._buffer = _OfflineBuffer(since=time.monotonic())

    def _safe_offsets(self) -> list[TopicPartition]:
        out = []
        for partition, done in self._done.items():
            safe = min(done, self._buffer.holds.get(partition, done))
            if safe != self._committed.get(partition):
                out.append(TopicPartition(self.view.source_topic, partition, safe))
        return out

    def _commit(self, *, asynchronous: bool) -> None:
        offsets = self._safe_offsets()
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:  # rebalance or broker restart: the offsets replay, harmlessly
            log.warning("offset commit failed: %s", exc)
            return
        for tp in offsets:
            self._committed[tp.partition] = tp.offset
        self.metrics.committed.inc()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing")
        self._last_message = time.monotonic()
        for tp in partitions:
            self._done.pop(tp.partition, None)
            self._committed.pop(tp.partition, None)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._maybe_flush_offline(force=True)
        self._commit(asynchronous=False)
        for tp in partitions:
            self._done.pop(tp.partition, None)
            self._committed.pop(tp.partition, None)
            self._buffer.holds.pop(tp.partition, None)

    def _shutdown(self) -> None:
        self._maybe_flush_offline(force=True)
        self.dlq.flush(5.0)
        self._commit(asynchronous=False)
        try:
            self.consumer.close()
        except KafkaException as exc:
            log.warning("consumer close: %s", exc)

    def _kafka_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._dlq_fatal = True
        log.warning("kafka: %s", error)
