"""Dynamic batching: concurrent requests share one forward pass, with a bounded queue and per-request deadlines.

One worker coroutine forms batches and runs the model on a single dedicated thread, so the event loop keeps
parsing and answering requests while the model computes. A batch closes when it holds `max_batch_size`
inputs or `max_wait` after its first input arrived; under load the queue fills while the model is busy,
so batches form without any waiting. The queue is bounded in inputs: a full queue answers 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import DeadlineExceeded, NotReady, Overloaded, ServingError
from .metrics import Metrics

log = logging.getLogger("workloads.serving.batching")


@dataclass(eq=False)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[np.ndarray]
    enqueued: float


class DynamicBatcher:
    """Queue of requests in front of `predict(texts) -> rows`; `submit` returns this request's rows only."""

    def __init__(self, predict: Callable[[list[str]], np.ndarray], *, max_batch_size: int, max_wait_s: float,
                 max_queue: int, metrics: Metrics, active_requests: Callable[[], int] | None = None) -> None:
        self._predict = predict
        # How many requests are being served right now (queued or not yet): when every one of them is
        # already in the queue, nobody else can join this batch, so waiting for more would only add latency.
        self._active_requests = active_requests
        self.max_batch_size = max_batch_size
        self._max_wait = max_wait_s
        self.max_queue = max_queue
        self._metrics = metrics
        self._queue: deque[_Job] = deque()
        self._queued_inputs = 0
        self._waiter: asyncio.Future[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._busy = False

    @property
    def queued_inputs(self) -> int:
        return self._queued_inputs

    @property
    def idle(self) -> bool:
        return not self._queue and not self._busy

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def submit(self, texts: Sequence[str], timeout_s: float) -> np.ndarray:
        """Rows for `texts`, in order. Raises Overloaded when the queue is full, DeadlineExceeded after timeout."""
        if self._closing:
            raise NotReady("server is shutting down", kind="shutting_down")
        n = len(texts)
        if self._queued_inputs + n > self.max_queue:
            raise Overloaded(
                f"queue full ({self._queued_inputs} inputs waiting, limit {self.max_queue}); retry later",
                headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), loop.time())
        self._queue.append(job)
        self._queued_inputs += n
        self._metrics.queue_depth.set(self._queued_inputs)
        self._wake()
        try:
            # On timeout wait_for cancels the future; the worker then skips the job (or drops its rows).
            return await asyncio.wait_for(job.future, timeout_s)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"no answer within the {timeout_s:g}s request deadline") from None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, timeout_s: float | None) -> None:
        """Sleep until a submit (or close) wakes the worker, or `timeout_s` passes; cheaper than Event+wait_for."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, self._wake) if timeout_s is not None else None
        try:
            await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _take(self) -> list[_Job]:
        """Pop whole requests, oldest first, up to `max_batch_size` inputs (a larger request goes alone)."""
        batch: list[_Job] = []
        total = 0
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # deadline passed while queued: its caller already got a 504
                self._queue.popleft()
                self._queued_inputs -= len(job.texts)
                continue
            if batch and total + len(job.texts) > self.max_batch_size:
                break
            self._queue.popleft()
            self._queued_inputs -= len(job.texts)
            batch.append(job)
            total += len(job.texts)
        self._metrics.queue_depth.set(self._queued_inputs)
        return batch

    def _infer(self, texts: list[str]) -> np.ndarray:
        """Runs on the model thread; a request larger than a batch is split into batch-sized forwards."""
        step = self.max_batch_size
        if len(texts) <= step:
            return self._predict(texts)
        return np.concatenate([self._predict(texts[i:i + step]) for i in range(0, len(texts), step)])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if self._closing:
                    return
                await self._wait(None)
            fill_by = self._queue[0].enqueued + self._max_wait
            while self._queued_inputs < self.max_batch_size and not self._closing:
                if self._active_requests is not None and self._active_requests() <= len(self._queue):
                    break
                remaining = fill_by - loop.time()
                if remaining <= 0:
                    break
                await self._wait(remaining)
            batch = self._take()
            if not batch:
                continue
            texts = [t for job in batch for t in job.texts]
            started = loop.time()
            for job in batch:
                self._metrics.queue_wait.observe(started - job.enqueued)
            self._metrics.batch_size.observe(len(texts))
            self._busy = True
            try:
                rows = await loop.run_in_executor(self._executor, self._infer, texts)
            except Exception as exc:
                log.exception("model failed on a batch of %d inputs", len(texts), extra={"event": "model_error"})
                err = ServingError(f"model failed: {type(exc).__name__}", kind="model_error")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            finally:
                self._busy = False
            self._metrics.inference_seconds.observe(loop.time() - started)
            if len(rows) != len(texts):
                err = ServingError(f"model returned {len(rows)} rows for {len(texts)} inputs", kind="model_error")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            offset = 0
            for job in batch:
                n = len(job.texts)
                if not job.future.done():
                    job.future.set_result(rows[offset:offset + n])
                offset += n

    async def close(self, timeout_s: float) -> None:
        """Finish every queued request (up to `timeout_s`), then stop the worker and the model thread."""
        self._closing = True
        self._wake()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except asyncio.TimeoutError:
                log.warning("batcher did not drain within %.1fs; cancelling", timeout_s,
                            extra={"event": "drain_timeout"})
                self._task.cancel()
                for job in self._queue:
                    if not job.future.done():
                        job.future.set_exception(NotReady("server shut down before this request ran",
                                                          kind="shutting_down"))
        self._executor.shutdown(wait=False, cancel_futures=True)
