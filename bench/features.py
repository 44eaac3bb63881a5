"""The stream materializer against a naive consumer, and end-to-end freshness at a fixed rate, in one run.

Both read the same backlog of demo events from a real Tansu broker (memory storage) into a real redis-server:
  * naive: the common first version: poll one record, parse it, one Redis write, one synchronous commit;
  * materializer: `python -m workloads.features materialize` as its own process (schema checks, dead letters,
    idempotent event-time-guarded upserts, commit after write), steady-state events/s from its /metrics.
Then freshness: the materializer keeps running while this process produces events at a fixed rate with their
event time set to the produce time; a sampler polls every entity's newest event time in Redis and records,
for each event, when it (or a newer event of its entity) became readable. The materializer's RSS is sampled
throughout to show memory stays flat.

    python bench/features.py [--backlog 30000] [--rates 1000 5000] [--seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "workloads"))

import redis  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from features_services import (RedisServer, TansuBroker, free_port, materializer_process, rss_kib,  # noqa: E402
                               stop_process)
from serving_helpers import metric_value  # noqa: E402

from workloads.features import demo  # noqa: E402
from workloads.features.definitions import USER_ACTIVITY as VIEW  # noqa: E402
from workloads.features.kafka import client_config, create_topics, producer_config  # noqa: E402
from workloads.features.online import entity_key  # noqa: E402


def naive(bootstrap: str, redis_url: str, limit_s: float, total: int) -> dict:
    consumer = Consumer({**client_config(bootstrap), "group.id": "naive", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([VIEW.source_topic])
    client = redis.Redis.from_url(redis_url)
    count, started = 0, None
    deadline = time.monotonic() + 30
    while count < total and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        if started is None:
            started, deadline = time.monotonic(), time.monotonic() + limit_s
        event = json.loads(message.value())
        client.hset(f"naive:{event['user_id']}", mapping={"last_action": event["action"],
                                                         "_t": event["event_time_ms"]})
        consumer.commit(message, asynchronous=False)
        count += 1
    elapsed = time.monotonic() - started
    consumer.close()
    return {"events": count, "seconds": round(elapsed, 2), "events_per_s": round(count / elapsed, 1)}


def scrape(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return metric_value(response.read().decode(), name, {"view": VIEW.name})


def materializer_throughput(broker: TansuBroker, redis_url: str, port: int, total: int, log: Path):
    proc = materializer_process(broker, redis_url, "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
                                "--group", "bench", log_path=log)
    points: list[tuple[float, float]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            points.append((time.monotonic(), scrape(port, "features_events_total")))
        except OSError:
            pass
        if points and points[-1][1] >= total:
            break
        time.sleep(0.2)
    # Steady state: between 10% and 90% of the backlog (excludes start-up, group join and the tail).
    lo = next(p for p in points if p[1] >= 0.1 * total)
    hi = next(p for p in points if p[1] >= 0.9 * total)
    rate = (hi[1] - lo[1]) / (hi[0] - lo[0])
    return proc, {"events": int(points[-1][1]), "events_per_s": round(rate, 1)}


def freshness(broker: TansuBroker, redis_url: str, proc: subprocess.Popen, rate: int, seconds: float,
              users: int) -> dict:
    client = redis.Redis.from_url(redis_url)
    produced: dict[str, list[tuple[int, float]]] = {}  # entity -> [(event time ms, produce wall time)]
    readable: dict[str, list[tuple[float, int]]] = {}  # entity -> [(sample wall time, newest event time)]
    stop = threading.Event()
    keys = [f"u{i:05d}" for i in range(users)]

    def sample() -> None:
        while not stop.is_set():
            pipe = client.pipeline(transaction=False)
            for user in keys:
                pipe.hget(entity_key(VIEW, user), "_t")
            values = pipe.execute()
            now = time.time()
            for user, value in zip(keys, values):
                if value is not None:
                    readable.setdefault(user, []).append((now, int(value)))
            stop.wait(0.01)

    rss: list[int] = []

    def memory() -> None:
        while not stop.is_set():
            rss.append(rss_kib(proc.pid))
            stop.wait(1.0)

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=memory, daemon=True)]
    for t in threads:
        t.start()
    producer = Producer(producer_config(client_config(broker.bootstrap)))
    total = int(rate * seconds)
    start = time.time()
    for i in range(total):
        due = start + i / rate
        while (now := time.time()) < due:
            time.sleep(min(0.001, due - now))
        user = keys[i % users]
        t_ms = int(time.time() * 1000)
        event = {"schema_version": 2, "event_id": f"f{rate}-{i:08d}", "user_id": user, "event_time_ms": t_ms,
                 "action": "click", "text": "fresh"}
        producer.produce(VIEW.source_topic, value=demo.encode(event), key=user.encode())
        produced.setdefault(user, []).append((t_ms, time.time()))
        if i % 200 == 0:
            producer.poll(0)
    producer.flush(30)
    offered = total / (time.time() - start)
    # Wait (up to 60 s) until every entity's newest produced event is readable, so every event is measured.
    last = {user: events[-1][0] for user, events in produced.items()}
    deadline = time.time() + 60
    while time.time() < deadline and any(not readable.get(u) or readable[u][-1][1] < t for u, t in last.items()):
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(5)
    lags = []
    for user, events in produced.items():
        seen = readable.get(user, [])
        newest = [v for _, v in seen]
        for t_ms, sent in events:
            # first sample whose newest event time is at or past this event's (values only move forward)
            i = bisect.bisect_left(newest, t_ms)
            if i < len(seen):
                lags.append(max(0.0, seen[i][0] - sent))
    lags.sort()
    pct = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 1)  # noqa: E731
    return {"offered_events_per_s": round(offered, 1), "events": total, "measured": len(lags),
            "freshness_ms_p50": pct(0.50), "freshness_ms_p99": pct(0.99), "freshness_ms_max": pct(1.0),
            "rss_mib_first": round(rss[0] / 1024, 1), "rss_mib_last": round(rss[-1] / 1024, 1),
            "rss_mib_max": round(max(rss) / 1024, 1), "rss_samples": len(rss)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backlog", type=int, default=30000)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--naive-seconds", type=float, default=8.0)
    p.add_argument("--rates", type=int, nargs="+", default=[1000, 5000], help="offered events/s, one run each")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    broker, store = TansuBroker(work), RedisServer()
    proc = None
    try:
        create_topics(client_config(broker.bootstrap), [VIEW], replication=1)
        producer = Producer(producer_config(client_config(broker.bootstrap)))
        demo.produce(producer, VIEW, demo.events(args.backlog, users=args.users, seed=1))
        result = {"machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)},
                  "backlog": args.backlog}
        result["naive"] = naive(broker.bootstrap, store.url, args.naive_seconds, args.backlog)
        port = free_port()
        proc, result["materializer"] = materializer_throughput(broker, store.url, port, args.backlog,
                                                               work / "materializer.log")
        result["speedup"] = round(result["materializer"]["events_per_s"] / result["naive"]["events_per_s"], 1)
        result["freshness"] = [freshness(broker, store.url, proc, rate, args.seconds, args.users)
                               for rate in args.rates]
        result["machine"]["load_1m_end"] = round(os.getloadavg()[0], 2)
    finally:
        if proc is not None:
            stop_process(proc)
        broker.stop()
        store.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
