"""The inference path shared by both protocols: input limits, cache lookup, then the batcher for the misses,
under a deadline."""

from __future__ import annotations

import asyncio
import copy
from typing import Callable, Sequence

import numpy as np

from .batching import DynamicBatcher
from .cache import ResultCache
from .errors import DeadlineExceeded, InputTooLong
from .model import Predictor
from .tracing import span


class InferenceService:
    """Rows for a request's texts, in the request's order, each computed by the model or found in the cache."""

    def __init__(self, predictor: Predictor, batcher: DynamicBatcher, cache: ResultCache | None,
                 request_timeout_s: float, *, max_input_tokens: int | None = None) -> None:
        self.predictor = predictor
        self.info = predictor.info
        self.batcher = batcher
        self.cache = cache if cache is not None and cache.enabled else None
        self._timeout = request_timeout_s
        self._max_tokens = max_input_tokens
        # The event loop's own tokenizer for counting: the model threads' tokenizers are theirs alone.
        self._counter = copy.deepcopy(predictor.tokenizer) if max_input_tokens else None
        self.active = 0  # requests inside infer(); the batcher reads it to decide whether to wait for more

    def check_lengths(self, texts: Sequence[str], field: Callable[[int], str]) -> None:
        """InputTooLong (422) naming the first input with more than `max_input_tokens` tokens."""
        if self._counter is None or self._max_tokens is None:
            return
        ids = self._counter(list(texts), add_special_tokens=True, truncation=False, return_attention_mask=False,
                            return_token_type_ids=False)["input_ids"]
        for i, tokens in enumerate(ids):
            if len(tokens) > self._max_tokens:
                raise InputTooLong(f"'{field(i)}' has {len(tokens)} tokens; at most {self._max_tokens} are "
                                   "allowed per input", field=field(i))

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
        with span("cache", inputs=len(texts)):
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
