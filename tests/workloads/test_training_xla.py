"""With torch_xla importable (Trainium), training picks the XLA device and cuts the graph every step."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import torch

from workloads.training.demo import write_demo
from workloads.training.train import main


def _fake_torch_xla(monkeypatch):
    calls = {"mark_step": 0, "xla_device": 0}
    xm = types.ModuleType("torch_xla.core.xla_model")

    def xla_device():
        calls["xla_device"] += 1
        return torch.device("cpu")

    def mark_step():
        calls["mark_step"] += 1

    xm.xla_device, xm.mark_step = xla_device, mark_step
    xm.get_rng_state, xm.set_rng_state = (lambda: 1234), (lambda seed: None)
    package = types.ModuleType("torch_xla")
    package.__spec__ = importlib.machinery.ModuleSpec("torch_xla", None)
    core = types.ModuleType("torch_xla.core")
    package.core, core.xla_model = core, xm
    for name, module in {"torch_xla": package, "torch_xla.core": core, "torch_xla.core.xla_model": xm}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_xla_device_is_used_with_mark_step_per_step(monkeypatch, tiny_bert_dir, tmp_path, capsys):
    # transformers would take the fake for a real torch_xla and import its internals: let it look first.
    import transformers
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup  # noqa: F401

    transformers.utils.is_torch_xla_available()
    calls = _fake_torch_xla(monkeypatch)
    demo = write_demo(tmp_path / "demo", train=64, validation=16, seed=2)
    code = main(["--train", str(demo["train"]), "--validation", str(demo["validation"]),
                 "--model-name-or-path", str(tiny_bert_dir), "--model-dir", str(tmp_path / "model"),
                 "--checkpoint-dir", str(tmp_path / "ckpt"), "--sagemaker-base-dir", str(tmp_path / "ml"),
                 "--epochs", "1", "--batch-size", "16", "--max-seq-len", "24", "--log-format", "json",
                 "--log-interval", "2"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["device"] == "xla" and metrics["step"] == 4
    assert calls["xla_device"] == 1
    assert calls["mark_step"] >= 4, "one graph cut per optimizer step at least"
    state = torch.load(tmp_path / "ckpt" / "step-00000004" / "rng-rank0.pt", weights_only=True)
    assert state["xla"] == 1234, "the XLA generator state is checkpointed too"
