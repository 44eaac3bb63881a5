"""The Neuron path end to end with a fake torch_neuronx that checks the call contract, and its absence."""

from __future__ import annotations

import sys

import pytest
import torch

from workloads.compilation.compile import main
from workloads.compilation.manifest import Manifest
from workloads.compilation.model import load_exportable

# TorchScript (trace, script, save, load) is the artifact contract; its deprecation notices are expected.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")


def test_inferentia_compiles_with_flags_dynamic_batch_and_manifest(fake_torch_neuronx, tiny_bert_dir, tmp_path,
                                                                   capsys):
    out = tmp_path / "inf2"
    code = main(["--model-dir", str(tiny_bert_dir), "--target", "inferentia", "--batch-size", "2", "--seq-len", "16",
                 "--auto-cast", "all", "--auto-cast-type", "fp16", "--optlevel", "3", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert fake_torch_neuronx.trace_calls == [{
        "compiler_args": ["--target", "inf2", "--auto-cast", "all", "--auto-cast-type", "fp16", "--optlevel", "3"],
        "shape": (2, 16),
    }]
    assert fake_torch_neuronx.dynamic_batch_calls == 1
    manifest = Manifest.load(out)
    assert (manifest.target, manifest.dynamic_batch, manifest.batch_size, manifest.seq_len) == ("inferentia", True,
                                                                                                 2, 16)
    assert manifest.compiler.name == "torch_neuronx.trace" and manifest.compiler.version == "2.99.0-fake"
    assert not manifest.dynamic_seq_len, "a Neuron graph takes exactly seq_len tokens"
    assert manifest.compiler.args[:2] == ["--target", "inf2"]
    assert manifest.numeric_check.tolerances == {"cosine_min": 0.99, "max_abs_diff": 0.1}

    module = torch.jit.load(str(out / "model.pt"))
    mask = torch.ones(5, 16, dtype=torch.int64)
    ids = torch.randint(5, 40, (5, 16))
    with torch.no_grad():
        assert torch.allclose(module(ids, mask), load_exportable(tiny_bert_dir).module(ids, mask), atol=1e-4)


def test_trainium_without_dynamic_batch_keeps_the_fixed_shape(fake_torch_neuronx, tiny_bert_encoder_dir, tmp_path,
                                                              capsys):
    out = tmp_path / "trn1"
    code = main(["--model-dir", str(tiny_bert_encoder_dir), "--target", "trainium", "--batch-size", "4",
                 "--seq-len", "8", "--auto-cast", "none", "--no-dynamic-batch", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert fake_torch_neuronx.trace_calls[0]["compiler_args"] == ["--target", "trn1", "--auto-cast", "none",
                                                                 "--optlevel", "2"]
    assert fake_torch_neuronx.dynamic_batch_calls == 0
    manifest = Manifest.load(out)
    assert not manifest.dynamic_batch and manifest.task == "embedding"
    assert manifest.numeric_check.tolerances == {"cosine_min": 0.9999, "max_abs_diff": 0.001}
    module = torch.jit.load(str(out / "model.pt"))
    assert module(torch.ones(4, 8, dtype=torch.int64), torch.ones(4, 8, dtype=torch.int64)).shape == (4, 32)


def test_missing_neuron_sdk_is_one_line(monkeypatch, tiny_bert_dir, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch_neuronx", None)  # import torch_neuronx -> ImportError
    code = main(["--model-dir", str(tiny_bert_dir), "--target", "trainium", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == ("python -m workloads.compilation: error: torch_neuronx (AWS Neuron SDK) is not installed: Neuron "
                   "targets compile only on an Inf2/Trn1 host or in the Neuron image "
                   "(workloads/images/neuron.Dockerfile)")
    assert not (tmp_path / "o").exists()


def test_neuron_target_override(fake_torch_neuronx, tiny_bert_dir, tmp_path, capsys):
    code = main(["--model-dir", str(tiny_bert_dir), "--target", "trainium", "--neuron-target", "trn2",
                 "--seq-len", "8", "--out", str(tmp_path / "trn2")])
    assert code == 0, capsys.readouterr().err
    assert fake_torch_neuronx.trace_calls[0]["compiler_args"][:2] == ["--target", "trn2"]
