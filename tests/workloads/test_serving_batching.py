"""Dynamic batching, backpressure and deadlines against the real server in a thread, with the tiny model
slowed down per batch so that queues, batches and timeouts are observable and deterministic."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from serving_helpers import SlowPredictor, ThreadServer, distinct_texts, expected_rows, metric_value, request

from workloads.serving.config import ServerConfig
from workloads.serving.model import load_predictor


@pytest.fixture(scope="module")
def encoder(tiny_bert_encoder_dir: Path):
    return load_predictor(tiny_bert_encoder_dir)


def _config(model_dir: Path, **overrides: object) -> ServerConfig:
    base = dict(model_dir=model_dir, model_name="m", cache_size=0, access_log=False, log_level="WARNING")
    return ServerConfig(**{**base, **overrides})  # type: ignore[arg-type]


async def _post_all(port: int, bodies: list[dict], stagger_s: float = 0.0) -> list[tuple[int, dict, dict]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i: int, body: dict) -> tuple[int, dict, dict]:
            await asyncio.sleep(i * stagger_s)
            async with session.post(f"http://127.0.0.1:{port}/invocations", json=body) as r:
                return r.status, dict(r.headers), await r.json()

        return await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))


def test_concurrent_requests_share_forward_passes(tiny_bert_encoder_dir: Path, encoder) -> None:
    slow = SlowPredictor(encoder, delay_s=0.0)
    delay = 0.05
    texts = distinct_texts(24, seed=10)
    with ThreadServer(_config(tiny_bert_encoder_dir, max_batch_size=8, max_wait_ms=20), slow) as srv:
        slow.delay_s, slow.batches[:] = delay, []  # forget the warm-up passes
        results = asyncio.run(_post_all(srv.port, [{"inputs": [t]} for t in texts]))
        metrics = request(srv.port, "GET", "/metrics")[2].decode()
    assert all(status == 200 for status, _, _ in results)
    np.testing.assert_allclose(np.array([b["outputs"][0] for _, _, b in results]), expected_rows(encoder, texts),
                               atol=1e-4)
    assert sum(slow.batches) == 24
    # Fewer forward passes than requests, none over the limit (how many depends on arrival timing).
    assert 1 < max(slow.batches) <= 8 and len(slow.batches) < 24, slow.batches
    assert metric_value(metrics, "serving_batch_size_count") == len(slow.batches)


def test_a_request_larger_than_a_batch_is_split_but_answered_whole(tiny_bert_encoder_dir: Path, encoder) -> None:
    slow = SlowPredictor(encoder, delay_s=0.0)
    delay = 0.0
    texts = distinct_texts(20, seed=11)
    with ThreadServer(_config(tiny_bert_encoder_dir, max_batch_size=8, max_inputs=32, max_queue=64), slow) as srv:
        slow.batches.clear()
        [(status, _, body)] = asyncio.run(_post_all(srv.port, [{"inputs": texts}]))
    assert status == 200
    assert slow.batches == [8, 8, 4]
    np.testing.assert_allclose(np.array(body["outputs"]), expected_rows(encoder, texts), atol=1e-4)


def test_full_queue_answers_503_with_retry_after_at_once(tiny_bert_encoder_dir: Path, encoder) -> None:
    slow = SlowPredictor(encoder, delay_s=0.0)
    delay = 1.0
    texts = distinct_texts(12, seed=12)
    config = _config(tiny_bert_encoder_dir, max_batch_size=1, max_wait_ms=0, max_queue=3)
    with ThreadServer(config, slow) as srv:
        slow.delay_s, slow.batches[:] = delay, []
        url = f"http://127.0.0.1:{srv.port}/invocations"

        async def run() -> list:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                async def one(t: str):
                    async with session.post(url, json={"inputs": [t]}) as r:
                        return r.status, dict(r.headers), await r.json()

                first = asyncio.ensure_future(one(texts[0]))
                while not slow.batches:  # the model is now busy with the first request for a second
                    await asyncio.sleep(0.005)
                rest = await asyncio.gather(*(one(t) for t in texts[1:]))
                return [await first, *rest]

        results = asyncio.run(run())
        metrics = request(srv.port, "GET", "/metrics")[2].decode()
    rejected = [(h, b) for s, h, b in results if s == 503]
    served = [(t, b) for t, (s, _, b) in zip(texts, results) if s == 200]
    # One running, three queued: the other eight are turned away at once, not after the queue drains.
    assert len(served) == 4 and len(rejected) == 8, [s for s, _, _ in results]
    for headers, body in rejected:
        assert headers["Retry-After"] == "1"
        assert body["kind"] == "queue_full" and "queue full" in body["error"]
    for text, body in served:
        np.testing.assert_allclose(body["outputs"][0], encoder.predict([text])[0], atol=1e-4)
    assert metric_value(metrics, "serving_errors_total", {"kind": "queue_full"}) == 8


def test_rejections_are_fast_while_the_model_is_busy(tiny_bert_encoder_dir: Path, encoder) -> None:
    slow = SlowPredictor(encoder, delay_s=0.0)
    delay = 1.0
    config = _config(tiny_bert_encoder_dir, max_batch_size=1, max_wait_ms=0, max_queue=1)
    with ThreadServer(config, slow) as srv:
        slow.delay_s, slow.batches[:] = delay, []
        url = f"http://127.0.0.1:{srv.port}/invocations"

        async def run() -> tuple[list[int], int, float]:
            async with aiohttp.ClientSession() as session:
                busy = [asyncio.ensure_future(session.post(url, json={"inputs": ["good movie"]}))]
                while not slow.batches:  # the first request is running (for a second)
                    await asyncio.sleep(0.005)
                busy.append(asyncio.ensure_future(session.post(url, json={"inputs": ["good film"]})))
                while True:  # ... and the second is waiting in the queue
                    async with session.get(url.replace("/invocations", "/metrics")) as r:
                        if metric_value(await r.text(), "serving_queue_depth") == 1:
                            break
                t0 = time.monotonic()
                async with session.post(url, json={"inputs": ["bad"]}) as r:
                    status = r.status
                elapsed = time.monotonic() - t0
                statuses = []
                for f in busy:
                    resp = await f
                    statuses.append(resp.status)
                    resp.release()
                return statuses, status, elapsed

        busy_statuses, status, elapsed = asyncio.run(run())
    assert busy_statuses == [200, 200]
    assert status == 503 and elapsed < 0.5


def test_deadline_gives_504_and_the_next_request_still_works(tiny_bert_encoder_dir: Path, encoder) -> None:
    slow = SlowPredictor(encoder, delay_s=0.0)
    delay = 0.8
    config = _config(tiny_bert_encoder_dir, request_timeout_s=0.3, max_batch_size=4)
    with ThreadServer(config, slow) as srv:
        slow.delay_s, slow.batches[:] = delay, []
        [(status, _, body)] = asyncio.run(_post_all(srv.port, [{"inputs": ["the film"]}]))
        assert status == 504 and body["kind"] == "deadline_exceeded" and "0.3s" in body["error"]
        slow.delay_s = 0.0
        time.sleep(0.6)  # let the abandoned batch finish
        [(status, _, body)] = asyncio.run(_post_all(srv.port, [{"inputs": ["the book"]}]))
    assert status == 200
    np.testing.assert_allclose(body["outputs"][0], encoder.predict(["the book"])[0], atol=1e-4)


def test_a_failing_model_answers_500_for_its_batch_only(tiny_bert_encoder_dir: Path, encoder) -> None:
    class Flaky:
        info = encoder.info

        def predict(self, texts):
            if any("ugly" in t for t in texts):
                raise RuntimeError("kernel fault")
            return encoder.predict(texts)

    with ThreadServer(_config(tiny_bert_encoder_dir, max_batch_size=1), Flaky()) as srv:
        results = asyncio.run(_post_all(srv.port, [{"inputs": ["ugly food"]}, {"inputs": ["nice food"]}]))
    (s1, _, b1), (s2, _, b2) = results
    assert s1 == 500 and b1["kind"] == "model_error" and "RuntimeError" in b1["error"]
    assert s2 == 200
    np.testing.assert_allclose(b2["outputs"][0], encoder.predict(["nice food"])[0], atol=1e-4)


def test_a_lone_request_does_not_wait_for_a_batch_to_fill(tiny_bert_encoder_dir: Path, encoder) -> None:
    """With nobody else in the server, the max wait would only add latency: the request runs at once."""
    with ThreadServer(_config(tiny_bert_encoder_dir, max_batch_size=32, max_wait_ms=1000), encoder) as srv:
        t0 = time.monotonic()
        [(status, _, body)] = asyncio.run(_post_all(srv.port, [{"inputs": ["the food was nice"]}]))
        elapsed = time.monotonic() - t0
    assert status == 200 and elapsed < 0.5, elapsed
    np.testing.assert_allclose(body["outputs"][0], encoder.predict(["the food was nice"])[0], atol=1e-4)


class _BreaksTheLoop(SlowPredictor):
    """Answers warm-up, then returns something that is not rows: the batch loop fails outside predict's try."""

    broken = False

    def predict(self, texts):
        if self.broken:
            time.sleep(self.delay_s)
            return None
        return super().predict(texts)


def test_a_failing_batch_loop_fails_every_queued_request_and_turns_not_ready(tiny_bert_encoder_dir: Path,
                                                                             encoder) -> None:
    broken = _BreaksTheLoop(encoder, delay_s=0.0)
    with ThreadServer(_config(tiny_bert_encoder_dir, max_batch_size=2, request_timeout_s=20), broken) as srv:
        broken.broken, broken.delay_s = True, 0.2
        started = time.monotonic()
        results = asyncio.run(_post_all(srv.port, [{"inputs": [t]} for t in distinct_texts(6, seed=12)]))
        elapsed = time.monotonic() - started
        ping = request(srv.port, "GET", "/ping")
        live = request(srv.port, "GET", "/v2/health/live")
        after = asyncio.run(_post_all(srv.port, [{"inputs": ["good"]}]))
        metrics = request(srv.port, "GET", "/metrics")[2].decode()
    assert elapsed < 10, "no request may wait for its deadline"
    for status, _, body in results + after:
        assert status == 503 and body["kind"] == "batcher_failed", body
        assert "the batcher failed" in body["error"]
    assert "TypeError" in after[0][2]["error"]
    assert ping[0] == 503 and json.loads(ping[2])["kind"] == "batcher_failed"
    assert live[0] == 503 and json.loads(live[2])["live"] is False
    assert metric_value(metrics, "serving_ready") == 0


def test_several_workers_compute_batches_at_once(tiny_bert_encoder_dir: Path, encoder) -> None:
    """Two workers, each batch sleeping 0.3 s without the GIL: both take batches from the one queue."""
    first = SlowPredictor(encoder, 0.0)
    config = _config(tiny_bert_encoder_dir, max_batch_size=2, max_wait_ms=50, workers=2)
    with ThreadServer(config, first) as srv:
        workers = [first, *first.clones]
        assert len(workers) == 2
        for w in workers:
            w.delay_s, w.batches[:] = 0.3, []
        texts = distinct_texts(8, seed=13)
        results = asyncio.run(_post_all(srv.port, [{"inputs": [t]} for t in texts]))
    assert all(status == 200 for status, _, _ in results)
    np.testing.assert_allclose(np.array([b["outputs"][0] for _, _, b in results]), expected_rows(encoder, texts),
                               atol=1e-4)
    assert all(w.batches for w in workers), "both workers ran batches"
    assert sum(map(sum, (w.batches for w in workers))) == 8
