"""The module that gets compiled: a Hugging Face encoder behind a fixed, class-free calling convention.

`module(input_ids, attention_mask)` with int64 [B, L] tensors returns one float tensor [B, D]: the logits of a
classifier, or the attention-masked mean of the last hidden states, L2-normalised, for a plain encoder (the
sentence embedding all-MiniLM-L6-v2 is trained for). That is what the server calls, whatever the backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workloads.common.cli import UsageError
from workloads.common.model_dir import check_model_dir, quiet_transformers

TASKS = ("auto", "embedding", "classification")


class ClassifierLogits(nn.Module):
    """Logits of a sequence-classification model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]


class MeanPooledEmbedding(nn.Module):
    """Mask-aware mean of the last hidden states, L2-normalised (sentence-transformers' mean pooling)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=1)


@dataclass
class Exportable:
    """The wrapped eager module and what the manifest needs to say about it."""

    module: nn.Module
    task: str
    labels: list[str] | None
    output_name: str
    output_dim: int
    max_positions: int


def detect_task(model_dir: Path) -> str:
    """classification when config.json names a *ForSequenceClassification architecture, else embedding."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    return "classification" if any(a.endswith("ForSequenceClassification") for a in architectures) else "embedding"


def load_exportable(model_dir: Path, task: str = "auto", *, attn_implementation: str | None = None) -> Exportable:
    """Load `model_dir` in eval mode, wrapped for `task` (auto: from its config)."""
    check_model_dir(model_dir)
    quiet_transformers()
    from transformers import AutoModel, AutoModelForSequenceClassification

    task = detect_task(model_dir) if task == "auto" else task
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if task == "classification":
        if detect_task(model_dir) != "classification":
            raise UsageError(f"{model_dir / 'config.json'}: task 'classification' needs a model with a "
                             "sequence-classification head (field 'architectures')")
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, **kwargs).eval()
        labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        wrapped: nn.Module = ClassifierLogits(model)
        output_name, dim = "logits", model.config.num_labels
    else:
        model = AutoModel.from_pretrained(model_dir, **kwargs).eval()
        wrapped, labels = MeanPooledEmbedding(model), None
        output_name, dim = "embedding", model.config.hidden_size
    max_positions = int(getattr(model.config, "max_position_embeddings", 512))
    return Exportable(wrapped.eval(), task, labels, output_name, dim, max_positions)
