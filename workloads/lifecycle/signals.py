"""The signals drift is measured on, extracted the same way from training data and from endpoint capture.

Inputs (text): length in characters and words (continuous), the share of words outside the baseline's
vocabulary (continuous), word frequencies over the baseline's most common words (categorical), and a few
random projections of the bag of words (continuous): each word maps to a fixed pseudo-random vector seeded by
its CRC32, a text to the mean of its words' vectors, so a shift in what people write moves the projections
even when lengths stay put. No model is needed for these. Outputs: the predicted label (categorical) and its
confidence (continuous) for a classifier, random projections of the vector for an embedding model.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CONTINUOUS = "continuous"
CATEGORICAL = "categorical"
OTHER = "<other>"
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class Extractor:
    """Accumulates signal values over texts and answers; `vocabulary` and `seed` come from the baseline."""

    vocabulary: Sequence[str] = ()       # categories of input.vocabulary (empty while building a baseline)
    seed: int = 0
    projections: int = 4
    continuous: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, Counter] = field(default_factory=dict)
    _cache: dict[str, np.ndarray] = field(default_factory=dict)
    _directions: np.ndarray | None = None
    _known: frozenset[str] = frozenset()
    inputs: int = 0

    def __post_init__(self) -> None:
        self._known = frozenset(self.vocabulary)

    def _value(self, name: str, value: float) -> None:
        self.continuous.setdefault(name, []).append(float(value))

    def _count(self, name: str, values: Iterable[str]) -> None:
        self.counts.setdefault(name, Counter()).update(values)

    def _word_vector(self, word: str) -> np.ndarray:
        vector = self._cache.get(word)
        if vector is None:
            rng = np.random.default_rng((zlib.crc32(word.encode()) << 16) ^ self.seed)
            vector = self._cache[word] = rng.standard_normal(self.projections)
        return vector

    def add_text(self, text: str) -> None:
        self.inputs += 1
        tokens = words(text)
        self._value("input.chars", len(text))
        self._value("input.words", len(tokens))
        known = self._known
        if known:
            self._value("input.oov_rate", sum(t not in known for t in tokens) / len(tokens) if tokens else 0.0)
            self._count("input.vocabulary", (t if t in known else OTHER for t in tokens))
        else:
            self._count("input.vocabulary", tokens)
        mean = np.zeros(self.projections)
        for token in tokens:
            mean += self._word_vector(token)
        if tokens:
            mean /= len(tokens)
        for i, value in enumerate(mean):
            self._value(f"input.projection.{i}", value)

    def add_label(self, label: str) -> None:
        """A known label (training data) or a predicted one (capture)."""
        self._count("output.label", [str(label)])

    def add_output(self, output: Any) -> None:
        """One answer from the SageMaker contract: {"label", "scores"} or an embedding vector."""
        if isinstance(output, dict):
            self.add_label(str(output.get("label")))
            scores = output.get("scores") or {}
            if scores:
                self._value("output.confidence", max(float(v) for v in scores.values()))
            return
        vector = np.asarray(output, dtype=np.float64)
        if self._directions is None or self._directions.shape[0] != vector.shape[0]:
            rng = np.random.default_rng(self.seed + 1)
            self._directions = rng.standard_normal((vector.shape[0], self.projections)) / np.sqrt(vector.shape[0])
        norm = np.linalg.norm(vector) or 1.0
        for i, value in enumerate((vector / norm) @ self._directions):
            self._value(f"output.projection.{i}", value)


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Shares of `values` in the bins (-inf, e0], (e0, e1], ..., (en, inf): right-closed, so a discrete signal
    whose deciles coincide (word counts, an all-zero rate) still separates "at the edge" from "above it"."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def top_words(counts: Counter, size: int) -> list[str]:
    """The `size` most common words, ties broken by the word, so a baseline is reproducible."""
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]
