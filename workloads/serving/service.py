"""The inference path shared by both protocols: cache lookup, then the batcher for the misses, under a deadline."""

from __future__ import annotations

import asyncio
from typing import Sequence

import numpy as np

from .batching import DynamicBatcher
from .cache import ResultCache
from .errors import DeadlineExceeded
from .model import Predictor


class InferenceService:
    """Rows for a request's texts, in the request's order, each computed by the model or found in the cache."""

    def __init__(self, predictor: Predictor, batcher: DynamicBatcher, cache: ResultCache | None,
                 request_timeout_s: float) -> None:
        self.predictor = predictor
        self.info = predictor.info
        self.batcher = batcher
        self.cache = cache if cache is not None and cache.enabled else None
        self._timeout = request_timeout_s
        self.active = 0  # requests inside infer(); the batcher reads it to decide whether to wait for more

    async def infer(self, texts: Sequence[str]) -> np.ndarray:
        self.active += 1
        try:
            return await self._infer(texts)
        finally:
            self.active -= 1

    async def _infer(self, texts: Sequence[str]) -> np.ndarray:
        if self.cache is None:
            return await self.batcher.submit(texts, self._timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        keys, rows = await self.cache.lookup(texts)
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeadlineExceeded(f"no answer within the {self._timeout:g}s request deadline")
            fresh = await self.batcher.submit([texts[i] for i in missing], remaining)
            self.cache.store([keys[i] for i in missing], fresh)
            if len(missing) == len(texts):
                return fresh
            for i, row in zip(missing, fresh):
                rows[i] = row
        return np.stack(rows)  # type: ignore[arg-type]  # every entry is filled by now

    async def close(self, timeout_s: float) -> None:
        await self.batcher.close(timeout_s)
        if self.cache is not None:
            await self.cache.close()
