"""`--target onnx`: export the eager module to ONNX, fuse it for transformers, optionally quantize it to int8.

Export uses torch's TorchScript-based exporter (`dynamo=False`: the dynamo exporter needs onnxscript, which is
not a serving dependency) with dynamic batch and sequence axes, through the keyword-argument wrapper of
workloads/compilation/model.py (transformers 5's `BertModel.forward` takes `use_cache` positionally, so a
positional call would bind the mask to the wrong parameter). The exported graph is then rewritten by ONNX
Runtime's transformer optimizer (Attention, EmbedLayerNormalization, SkipLayerNormalization and BiasGelu
fusions; attention must be exported in its eager form for the Attention fusion to match), and with `--quantize`
by ONNX Runtime's dynamic int8 quantization with per-channel weight scales. The same file runs on the CPU
execution provider here and on the CUDA provider on a GPU pool.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from workloads.common.cli import UsageError
from workloads.compilation.manifest import CompilerInfo

ARTIFACT = "model.onnx"
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask")


def import_onnxruntime() -> Any:
    """onnxruntime, or a one-line UsageError naming the pinned requirement."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("--target onnx needs onnx and onnxruntime (pinned in workloads/requirements.txt)") from None
    return onnxruntime


def session(path: Path, *, device: str = "cpu", threads: int | None = None) -> Any:
    """An ONNX Runtime session with every graph optimization; CUDA provider first when `device` is cuda."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UsageError("device cuda: this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=providers)


class OnnxModule:
    """Calls an ONNX Runtime session like the eager module: `(input_ids, attention_mask) -> tensor [B, D]`."""

    def __init__(self, sess: Any) -> None:
        self.session = sess
        self._output = sess.get_outputs()[0].name

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feed = {"input_ids": input_ids.cpu().numpy().astype(np.int64, copy=False),
                "attention_mask": attention_mask.cpu().numpy().astype(np.int64, copy=False)}
        return torch.from_numpy(self.session.run([self._output], feed)[0])


@dataclass
class OnnxArtifact:
    """The file to publish, a runner for the numeric check, and how it was made."""

    path: Path
    module: OnnxModule
    compiler: CompilerInfo
    quantized: bool
    workdir: Path
    dynamic_batch: bool = True    # the batch and sequence axes are dynamic (checked at another size and length)
    dynamic_seq_len: bool = True

    def save(self, destination: Path) -> None:
        shutil.copyfile(self.path, destination)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def export_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], *, output_name: str, num_heads: int,
                hidden_size: int, quantize: bool, exclude_nodes: Sequence[str] = ()) -> OnnxArtifact:
    """Export, fuse and (optionally) quantize `module`; the files live in a temporary folder until saved."""
    ort = import_onnxruntime()
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    workdir = Path(tempfile.mkdtemp(prefix="aiinfra-onnx-"))
    raw, fused = workdir / "exported.onnx", workdir / "fused.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    axes[output_name] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(raw), dynamo=False, input_names=list(INPUT_NAMES),
                          output_names=[output_name], dynamic_axes=axes, opset_version=OPSET)
    optimizer = optimize_model(str(raw), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                               opt_level=1, use_gpu=False)
    optimizer.save_model_to_file(str(fused))
    fusions = sorted(k for k, v in optimizer.get_fused_operator_statistics().items() if v)
    args = [f"torch.onnx.export(dynamo=False, opset={OPSET}, dynamic axes batch and sequence)",
            f"onnxruntime.transformers.optimizer(model_type=bert, fusions={'+'.join(fusions) or 'none'})"]
    final = fused
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        final = workdir / ARTIFACT
        quantize_dynamic(str(fused), str(final), per_channel=True, weight_type=QuantType.QInt8,
                         nodes_to_exclude=list(exclude_nodes),
                         # Fused contrib ops have no ONNX shape inference: their outputs are float.
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        args.append("onnxruntime.quantization.quantize_dynamic(QInt8, per-channel"
                    + (f", excluding {','.join(exclude_nodes)})" if exclude_nodes else ")"))
    runner = OnnxModule(session(final, threads=1))
    compiler = CompilerInfo("onnxruntime", ort.__version__, args)
    return OnnxArtifact(final, runner, compiler, quantize, workdir)

