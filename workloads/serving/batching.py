"""Dynamic batching: concurrent requests share one forward pass, with a bounded queue and per-request deadlines.

Worker coroutines form batches and run the model each on its own dedicated thread, so the event loop keeps
parsing and answering requests while the model computes. A batch closes when it holds `max_batch_size`
inputs or `max_wait` after its first input arrived; under load the queue fills while the model is busy,
so batches form without any waiting. The queue is bounded in inputs: a full queue answers 503 at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import BatcherFailed, DeadlineExceeded, NotReady, Overloaded, ServingError
from .metrics import Metrics
from .tracing import current_span, now_ns, record_span, span

log = logging.getLogger("workloads.serving.batching")


@dataclass(eq=False)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[np.ndarray]
    enqueued: float
    trace: object = None   # the request's span context, when spans are on
    enqueued_ns: int = 0   # wall clock, for the request's queue-wait span


class DynamicBatcher:
    """Queue of requests in front of `predict(texts) -> rows`; `submit` returns this request's rows only.

    `predicts` holds one predict function per model worker (each worker has its own thread, so with a runtime
    that releases the GIL, such as ONNX Runtime, the batches of several workers compute at once). Workers take
    turns forming a batch: while one computes, the next collects the queue. If a worker's loop itself fails
    (not the model: that fails only its batch), every queued request gets a 500 that says so and the batcher
    reports itself broken, which turns the server not-ready instead of leaving requests to time out.
    """

    def __init__(self, predicts: Sequence[Callable[[list[str]], np.ndarray]], *, max_batch_size: int,
                 max_wait_s: float, max_queue: int, metrics: Metrics,
                 active_requests: Callable[[], int] | None = None) -> None:
        if not predicts:
            raise ValueError("a batcher needs at least one predict function")
        self._predicts = list(predicts)
        # How many requests are being served right now (queued or not yet): when every one of them is
        # already in the queue, nobody else can join this batch, so waiting for more would only add latency.
        self.active_requests = active_requests
        self.max_batch_size = max_batch_size
        self._max_wait = max_wait_s
        self.max_queue = max_queue
        self._metrics = metrics
        self._queue: deque[_Job] = deque()
        self._queued_inputs = 0
        self._waiter: asyncio.Future[None] | None = None
        self._executors = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{i}")
                           for i in range(len(self._predicts))]
        self._tasks: list[asyncio.Task[None]] = []
        self._forming: asyncio.Lock | None = None
        self._closing = False
        self.failure: str | None = None  # why the batcher stopped working, once it has

    @property
    def workers(self) -> int:
        return len(self._predicts)

    @property
    def queued_inputs(self) -> int:
        return self._queued_inputs

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._forming = asyncio.Lock()
        for i in range(len(self._predicts)):
            task = loop.create_task(self._run(i), name=f"batcher-{i}")
            task.add_done_callback(self._stopped)
            self._tasks.append(task)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """A worker loop ended: normal at shutdown; otherwise fail everything queued and turn not-ready."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if self.failure is None:
            self.failure = f"{type(exc).__name__}: {exc}"
            log.error("batcher failed; failing queued requests and turning not-ready", exc_info=exc,
                      extra={"event": "batcher_failed", "error": self.failure})
            self._metrics.ready.set(0)
        for other in self._tasks:
            if not other.done():
                other.cancel()
        pending = list(self._queue)
        self._queue.clear()
        self._queued_inputs = 0
        self._fail(pending, BatcherFailed(f"the batcher failed ({self.failure}); this server is not ready"))

    async def submit(self, texts: Sequence[str], timeout_s: float) -> np.ndarray:
        """Rows for `texts`, in order. Raises Overloaded when the queue is full, DeadlineExceeded after timeout."""
        if self._closing:
            raise NotReady("server is shutting down", kind="shutting_down")
        if self.failure is not None:
            raise BatcherFailed(f"the batcher failed ({self.failure}); this server is not ready")
        n = len(texts)
        if self._queued_inputs + n > self.max_queue:
            raise Overloaded(
                f"queue full ({self._queued_inputs} inputs waiting, limit {self.max_queue}); retry later",
                headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), loop.time(), current_span(), now_ns())
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

    def _infer(self, worker: int, texts: list[str]) -> np.ndarray:
        """Runs on the worker's model thread; a request larger than a batch is split into batch-sized forwards."""
        predict, step = self._predicts[worker], self.max_batch_size
        with span("model", inputs=len(texts)):
            if len(texts) <= step:
                return predict(texts)
            return np.concatenate([predict(texts[i:i + step]) for i in range(0, len(texts), step)])

    @staticmethod
    def _fail(jobs: Sequence[_Job], err: Exception) -> None:
        """Answer every still-waiting request of `jobs` with `err`."""
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(err)

    async def _next_batch(self) -> list[_Job] | None:
        """Wait for inputs and the batch window, then take a batch; None once closing with nothing left."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if self._closing:
                    return None
                await self._wait(None)
            fill_by = self._queue[0].enqueued + self._max_wait
            while self._queued_inputs < self.max_batch_size and not self._closing:
                if self.active_requests is not None and self.active_requests() <= len(self._queue):
                    break
                remaining = fill_by - loop.time()
                if remaining <= 0:
                    break
                await self._wait(remaining)
            batch = self._take()
            if batch:
                return batch

    async def _run(self, worker: int) -> None:
        loop = asyncio.get_running_loop()
        assert self._forming is not None
        while True:
            async with self._forming:  # one worker collects the queue at a time; the others compute
                batch = await self._next_batch()
            if batch is None:
                return
            texts = [t for job in batch for t in job.texts]
            started = loop.time()
            for job in batch:
                self._metrics.queue_wait.observe(started - job.enqueued)
            self._metrics.batch_size.observe(len(texts))
            started_ns = now_ns()
            for job in batch:
                record_span("queue_wait", job.trace, job.enqueued_ns, started_ns, inputs=len(job.texts))
            try:
                with span("batch", links=[job.trace for job in batch], inputs=len(texts), requests=len(batch),
                          worker=worker):
                    # The copied context carries the batch span to the model thread, for the model span.
                    rows = await loop.run_in_executor(self._executors[worker], contextvars.copy_context().run,
                                                      self._infer, worker, texts)
            except Exception as exc:
                log.exception("model failed on a batch of %d inputs", len(texts), extra={"event": "model_error"})
                self._fail(batch, ServingError(f"model failed: {type(exc).__name__}", kind="model_error"))
                continue
            try:
                self._metrics.inference_seconds.observe(loop.time() - started)
                if len(rows) != len(texts):
                    self._fail(batch, ServingError(f"model returned {len(rows)} rows for {len(texts)} inputs",
                                                   kind="model_error"))
                    continue
                offset = 0
                for job in batch:
                    n = len(job.texts)
                    if not job.future.done():
                        job.future.set_result(rows[offset:offset + n])
                    offset += n
            except BaseException:
                # This batch's callers are answered here; _stopped answers everyone still queued.
                self._fail(batch, BatcherFailed("the batcher failed while answering this request"))
                raise

    async def close(self, timeout_s: float) -> None:
        """Finish every queued request (up to `timeout_s`), then stop the worker and the model thread."""
        self._closing = True
        self._wake()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=timeout_s)
            if late:
                log.warning("batcher did not drain within %.1fs; cancelling", timeout_s,
                            extra={"event": "drain_timeout"})
                for task in late:
                    task.cancel()
                self._fail(list(self._queue), NotReady("server shut down before this request ran",
                                                       kind="shutting_down"))
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)
