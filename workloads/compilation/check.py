"""Compare the compiled artifact with the eager model on held-out inputs before anything is written.

Held-out means not the example the tracer saw: real sentences tokenized and padded to the compiled
length, plus random token ids with random padding, and, for every flexibility the artifact claims, a batch
that uses it (another batch size for dynamic batching, a shorter length for dynamic sequence length).
Agreement is the minimum row-wise cosine similarity and the maximum absolute difference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from workloads.compilation.manifest import NumericCheck

HELD_OUT_TEXTS = (
    "The quarterly report shows revenue growing faster than costs.",
    "a cat sat quietly on the warm windowsill",
    "Kubernetes restarts the pod when the liveness probe fails.",
    "terrible service , cold food and a long wait",
    "What time does the last train leave tonight?",
    "great",
    "The model was compiled for a fixed sequence length and batch size, then checked against the original.",
    "good movie , happy day",
)


def held_out_batches(tokenizer, *, batch_size: int, seq_len: int, vocab_size: int, dynamic_batch: bool,
                     dynamic_seq_len: bool = False, seed: int = 1234) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of (input_ids, attention_mask), int64 [B, seq_len], none of them the tracing example."""
    texts = list(HELD_OUT_TEXTS)
    while len(texts) < batch_size:
        texts += list(HELD_OUT_TEXTS)
    encoded = tokenizer(texts[:batch_size], padding="max_length", truncation=True, max_length=seq_len,
                        return_tensors="pt")
    batches = [(encoded["input_ids"].long(), encoded["attention_mask"].long())]
    generator = torch.Generator().manual_seed(seed)
    shapes = [(batch_size, seq_len)]
    if dynamic_batch:
        shapes.append((batch_size + 1 if batch_size == 1 else batch_size - 1, seq_len))
    if dynamic_seq_len:
        shapes.append((batch_size, max(2, seq_len // 2)))
    for size, length in shapes:
        ids = torch.randint(5, max(vocab_size, 6), (size, length), generator=generator)
        lengths = torch.randint(1, length + 1, (size,), generator=generator)
        mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()
        batches.append((ids * mask, mask))
    return batches


def compare(eager: Callable[..., torch.Tensor], compiled: Callable[..., torch.Tensor],
            batches: list[tuple[torch.Tensor, torch.Tensor]], *, min_cosine: float, max_abs_diff: float,
            device: str = "cpu") -> NumericCheck:
    """Run both on every batch; passed when cosine >= min_cosine and |diff| <= max_abs_diff everywhere."""
    worst_cos, worst_diff = 1.0, 0.0
    with torch.no_grad():
        for ids, mask in batches:
            expected = eager(ids, mask).float()
            got = compiled(ids.to(device), mask.to(device)).float().cpu()
            if got.shape != expected.shape or not bool(torch.isfinite(got).all()):
                return NumericCheck(-1.0, float("inf"), _tolerances(min_cosine, max_abs_diff), False)
            cos = torch.nn.functional.cosine_similarity(got, expected, dim=-1, eps=1e-12)
            worst_cos = min(worst_cos, float(cos.min()))
            worst_diff = max(worst_diff, float((got - expected).abs().max()))
    passed = worst_cos >= min_cosine and worst_diff <= max_abs_diff
    return NumericCheck(round(worst_cos, 8), worst_diff, _tolerances(min_cosine, max_abs_diff), passed)


def _tolerances(min_cosine: float, max_abs_diff: float) -> dict[str, float]:
    return {"cosine_min": min_cosine, "max_abs_diff": max_abs_diff}
