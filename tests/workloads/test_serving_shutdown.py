"""SIGTERM on the real server process: it turns not-ready, stops accepting, answers everything already queued,
and exits with status 0 well within 30 s."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import numpy as np
from serving_helpers import ServerProcess, distinct_texts, expected_rows, metric_value, request

from workloads.serving.model import load_predictor

SLOW_SERVER = str(Path(__file__).with_name("serving_slow_server.py"))


def test_sigterm_drains_the_queue_then_exits(tiny_bert_encoder_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(["--delay", "0.3", "--model-dir", str(tiny_bert_encoder_dir), "--max-batch-size", "2",
                            "--max-wait-ms", "0", "--cache-size", "0"], tmp_path / "server.log",
                           entry=[SLOW_SERVER])
    # 0.3 s per batch of 2: the 12 requests are 1.8 s of work, most of it still queued at SIGTERM.
    texts = distinct_texts(12, seed=30)
    try:
        async def run() -> tuple[list[tuple[int, dict]], float]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                url = f"http://127.0.0.1:{server.port}/invocations"
                pending = [asyncio.ensure_future(_post(session, url, t)) for t in texts]
                depth, give_up = 0.0, time.monotonic() + 20
                while depth < 4 and time.monotonic() < give_up:  # wait for queued work, then pull the plug
                    async with session.get(f"http://127.0.0.1:{server.port}/metrics") as r:
                        depth = metric_value(await r.text(), "serving_queue_depth")
                    await asyncio.sleep(0.01)
                assert depth >= 4, "requests never queued up; the test would not exercise draining"
                t0 = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                results = await asyncio.gather(*pending)
                return results, t0

        results, sigterm_at = asyncio.run(run())
        code = server.proc.wait(30)
        exited_after = time.monotonic() - sigterm_at
    finally:
        server.kill()
    assert code == 0
    assert exited_after < 30
    reference = expected_rows(load_predictor(tiny_bert_encoder_dir), texts)
    for (status, body), want in zip(results, reference):
        assert status == 200, body
        np.testing.assert_allclose(body["outputs"][0], want, atol=1e-4)
    events = [r.get("event") for r in server.log_records()]
    assert events.index("draining") < events.index("stopped")
    try:
        refused = request(server.port, "GET", "/ping", timeout=2)[0] != 200
    except OSError:
        refused = True
    assert refused


async def _post(session: aiohttp.ClientSession, url: str, text: str) -> tuple[int, dict]:
    async with session.post(url, json={"inputs": [text]}) as r:
        return r.status, await r.json()
