"""Turn the eager module into a TorchScript artifact for one target.

Neuron (inferentia -> `--target inf2`, trainium -> `--target trn1`): `torch_neuronx.trace` with the compiler
arguments from the flags, optionally wrapped in `torch_neuronx.dynamic_batch` so any batch size is split into
compiled-size chunks. CPU and CUDA: `torch.jit.trace`, optionally after int8 dynamic quantization (CPU only).
Every result is a ScriptModule saved with `torch.jit.save`, loadable without the model's Python class.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from workloads.common.cli import UsageError
from workloads.compilation.manifest import CompilerInfo

NEURON_TARGETS = {"inferentia": "inf2", "trainium": "trn1"}
AUTO_CAST = ("none", "matmult", "all")
AUTO_CAST_TYPES = ("bf16", "fp16", "tf32", "fp8_e4m3")
OPT_LEVELS = (1, 2, 3)


@dataclass(frozen=True)
class NeuronOptions:
    """neuronx-cc settings: hardware generation, automatic down-casting and optimisation level."""

    hardware: str
    auto_cast: str = "matmult"
    auto_cast_type: str = "bf16"
    optlevel: int = 2

    def compiler_args(self) -> list[str]:
        args = ["--target", self.hardware, "--auto-cast", self.auto_cast]
        if self.auto_cast != "none":
            args += ["--auto-cast-type", self.auto_cast_type]
        return args + ["--optlevel", str(self.optlevel)]


@dataclass
class Compiled:
    module: torch.jit.ScriptModule
    compiler: CompilerInfo
    dynamic_batch: bool
    quantized: bool
    dynamic_seq_len: bool  # Neuron graphs are fixed-length; traced TorchScript takes shorter inputs too


def _quiet_trace(fn, *args, **kwargs):
    """Run a tracer without its deprecation and TracerWarning noise: the numeric check is the real guard."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def import_neuronx():
    """torch_neuronx, or a one-line UsageError saying where it exists."""
    try:
        return importlib.import_module("torch_neuronx")
    except ImportError:
        raise UsageError("torch_neuronx (AWS Neuron SDK) is not installed: Neuron targets compile only on an "
                         "Inf2/Trn1 host or in the Neuron image (workloads/images/neuron.Dockerfile)") from None


def compile_neuron(module: nn.Module, example: tuple[torch.Tensor, ...], options: NeuronOptions,
                   dynamic_batch: bool) -> Compiled:
    """torch_neuronx.trace with the flags' compiler arguments; dynamic_batch wraps the result."""
    neuronx = import_neuronx()
    args = options.compiler_args()
    traced = _quiet_trace(neuronx.trace, module, example, compiler_args=args)
    if dynamic_batch:
        traced = neuronx.dynamic_batch(traced)
    version = str(getattr(neuronx, "__version__", "unknown"))
    return Compiled(traced, CompilerInfo("torch_neuronx.trace", version, args), dynamic_batch, False, False)


def compile_portable(module: nn.Module, example: tuple[torch.Tensor, ...], target: str, quantize: bool) -> Compiled:
    """torch.jit.trace on CPU or CUDA; `quantize` applies int8 dynamic quantization to Linear layers (CPU)."""
    args: list[str] = []
    if target == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--target cuda: no CUDA device is available on this host")
        if quantize:
            raise UsageError("--quantize is for --target cpu (int8 dynamic quantization has no CUDA kernels)")
        module = module.to("cuda")
        example = tuple(t.to("cuda") for t in example)
    if quantize:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Per-channel weight scales: on all-MiniLM-L6-v2 they lift the worst-case cosine from 0.78 to 0.90.
            qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
            module = torch.ao.quantization.quantize_dynamic(module, {nn.Linear: qconfig}, dtype=torch.qint8)
        args.append("quantize_dynamic(Linear, qint8, per-channel)")
    with torch.no_grad():
        traced = _quiet_trace(torch.jit.trace, module, example, check_trace=False)
    traced = _quiet_trace(torch.jit.freeze, traced.eval()) if not quantize else traced
    return Compiled(traced, CompilerInfo("torch.jit.trace", torch.__version__, args), True, quantize, True)
