"""Shared fixtures for the workload tests: tiny BERT model directories built offline, once per session.

`tiny_bert_dir` is a BertForSequenceClassification (2 labels, id2label set); `tiny_bert_encoder_dir` is a
plain BertModel whose output is an embedding. Both are hidden 32, 2 layers, 2 heads, with a word-level
tokenizer (vocab.txt and tokenizer.json), and load with AutoModel*/AutoTokenizer.from_pretrained offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from workloads.common.tiny_bert import build_tiny_bert  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BertForSequenceClassification in Hugging Face format."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-classifier"), head=True, seed=0)


@pytest.fixture(scope="session")
def tiny_bert_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BertModel (no head) in Hugging Face format."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-encoder"), head=False, seed=0)
