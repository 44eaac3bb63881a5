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
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from workloads.common.tiny_bert import build_tiny_bert  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BertForSequenceClassification in Hugging Face format."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-classifier"), head=True, seed=0)


@pytest.fixture(scope="session")
def tiny_bert_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BertModel (no head) in Hugging Face format."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-encoder"), head=False, seed=0)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    """moto's mock_aws with fake credentials in account 123456789012, region us-east-1."""
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


class FakeNeuronx:
    """Stands in for torch_neuronx: checks the call contract, then returns CPU TorchScript of fixed shape.

    `trace` accepts only what the real one accepts (an eval-mode nn.Module, a tuple of int64 example tensors,
    a list of neuronx-cc arguments it can parse) and returns a module that, like a Neuron graph, refuses any
    input shape other than the example's. `dynamic_batch` wraps it to split and pad along the batch dimension.
    """

    __version__ = "2.99.0-fake"
    VALUES = {"--target": {"inf2", "trn1", "trn2"}, "--auto-cast": {"none", "matmult", "all"},
              "--auto-cast-type": {"bf16", "fp16", "tf32", "fp8_e4m3"}, "--optlevel": {"1", "2", "3"}}

    def __init__(self) -> None:
        self.trace_calls: list[dict] = []
        self.dynamic_batch_calls = 0

    def trace(self, model, example_inputs, *, compiler_args):
        import torch

        assert isinstance(model, torch.nn.Module) and not model.training, "trace wants an eval-mode module"
        assert isinstance(example_inputs, tuple) and len(example_inputs) == 2, example_inputs
        assert all(t.dtype == torch.int64 and t.dim() == 2 for t in example_inputs)
        assert isinstance(compiler_args, list) and all(isinstance(a, str) for a in compiler_args)
        parsed = dict(zip(compiler_args[::2], compiler_args[1::2]))
        assert len(parsed) * 2 == len(compiler_args), f"flags come in pairs: {compiler_args}"
        for flag, value in parsed.items():
            assert flag in self.VALUES and value in self.VALUES[flag], f"neuronx-cc rejects {flag} {value}"
        assert "--target" in parsed, "neuronx-cc needs --target"
        self.trace_calls.append({"compiler_args": list(compiler_args),
                                 "shape": tuple(example_inputs[0].shape)})
        traced = torch.jit.trace(model, example_inputs, check_trace=False)
        return torch.jit.script(_FixedShape(traced, list(example_inputs[0].shape)))

    def dynamic_batch(self, neuron_module):
        import torch

        self.dynamic_batch_calls += 1
        return torch.jit.script(_DynamicBatch(neuron_module, int(neuron_module.shape[0])))


def _modules():
    import torch

    class FixedShape(torch.nn.Module):
        def __init__(self, inner, shape: list[int]) -> None:
            super().__init__()
            self.inner = inner
            self.shape = shape

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            if list(input_ids.shape) != self.shape or list(attention_mask.shape) != self.shape:
                raise RuntimeError("Neuron graph compiled for another input shape")
            return self.inner(input_ids, attention_mask)

    class DynamicBatch(torch.nn.Module):
        def __init__(self, inner, batch: int) -> None:
            super().__init__()
            self.inner = inner
            self.batch = batch

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            outputs: list[torch.Tensor] = []
            for start in range(0, input_ids.shape[0], self.batch):
                ids = input_ids[start:start + self.batch]
                mask = attention_mask[start:start + self.batch]
                real = ids.shape[0]
                if real < self.batch:
                    ids = torch.cat([ids, ids[:1].expand(self.batch - real, -1)])
                    mask = torch.cat([mask, mask[:1].expand(self.batch - real, -1)])
                outputs.append(self.inner(ids, mask)[:real])
            return torch.cat(outputs)

    return FixedShape, DynamicBatch


_FixedShape, _DynamicBatch = _modules()


@pytest.fixture
def fake_torch_neuronx(monkeypatch: pytest.MonkeyPatch) -> FakeNeuronx:
    """A FakeNeuronx installed as `torch_neuronx` in sys.modules for the test."""
    import sys

    fake = FakeNeuronx()
    monkeypatch.setitem(sys.modules, "torch_neuronx", fake)
    return fake
