"""`python -m workloads.compilation`: compile, check against eager, then publish artifact + manifest.

Exit codes: 0 published; 1 refused because the compiled artifact drifted beyond tolerance (nothing written);
2 bad input (flags, model directory, missing Neuron SDK for a Neuron target).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from workloads.common.cli import UsageError, run_main
from workloads.common.model_dir import check_model_dir, model_sha256, offline
from workloads.compilation.backends import (AUTO_CAST, AUTO_CAST_TYPES, NEURON_TARGETS, OPT_LEVELS, NeuronOptions,
                                            compile_neuron, compile_portable, import_neuronx)
from workloads.compilation.manifest import TARGETS
from workloads.compilation.onnx_export import ARTIFACT as ONNX_ARTIFACT
from workloads.compilation.onnx_export import export_onnx, import_onnxruntime

EXIT_DRIFT = 1
TRACE_TEXT = "compiled once with this example sentence"


class DriftError(Exception):
    """The compiled artifact disagrees with the eager model beyond tolerance."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m workloads.compilation",
        description="Compile a Hugging Face encoder (classifier or sentence encoder) to a TorchScript artifact "
                    "for Neuron (Inferentia/Trainium), CPU or CUDA, or to ONNX for ONNX Runtime; check it against "
                    "the eager model; write "
                    "model.pt, the tokenizer and manifest.json to --out; optionally upload to S3 with SSE-KMS. "
                    "Exit codes: 0 published, 1 refused (numeric drift), 2 bad input.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="Hugging Face model directory")
    source.add_argument("--model-s3-uri", metavar="S3_URI",
                        help="a trained model in S3: the pointer training/latest.json, a run prefix training/<run>/ "
                             "(SageMaker's layout) or its output/model.tar.gz")
    p.add_argument("--target", choices=TARGETS, default="cpu", help="where the artifact runs (default: cpu)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where compilation runs: auto (what --target needs), cpu, cuda or neuron; a device whose "
                        "runtime is missing fails at once")
    p.add_argument("--batch-size", type=int, default=1, help="compiled batch size (default: 1)")
    p.add_argument("--seq-len", type=int, default=128, help="compiled sequence length; inputs are padded to it")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; must be empty or --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--task", choices=("auto", "embedding", "classification"), default="auto",
                   help="auto: classification for *ForSequenceClassification models, else embedding")
    neuron = p.add_argument_group("Neuron (torch_neuronx.trace compiler arguments)")
    neuron.add_argument("--neuron-target", choices=("inf2", "trn1", "trn2"),
                        help="neuronx-cc --target (default: inf2 for inferentia, trn1 for trainium)")
    neuron.add_argument("--auto-cast", choices=AUTO_CAST, default="matmult", help="neuronx-cc --auto-cast")
    neuron.add_argument("--auto-cast-type", choices=AUTO_CAST_TYPES, default="bf16",
                        help="neuronx-cc --auto-cast-type")
    neuron.add_argument("--optlevel", type=int, choices=OPT_LEVELS, default=2, help="neuronx-cc --optlevel")
    neuron.add_argument("--no-dynamic-batch", dest="dynamic_batch", action="store_false",
                        help="do not wrap in torch_neuronx.dynamic_batch (then only --batch-size is accepted)")
    p.add_argument("--quantize", action="store_true",
                   help="int8 dynamic quantization, per-channel (cpu: Linear layers; onnx: MatMul nodes)")
    check = p.add_argument_group("numeric check against the eager model (defaults depend on target/casting)")
    check.add_argument("--min-cosine", type=float,
                       help="lowest row-wise cosine similarity accepted (default 0.9999; 0.99 with casting or "
                            "quantization)")
    check.add_argument("--max-abs-diff", type=float,
                       help="largest absolute difference accepted (default 1e-3; 0.1 with casting or quantization)")
    up = p.add_argument_group("upload")
    up.add_argument("--upload", metavar="S3_URI", help="also upload the folder to s3://bucket/prefix")
    up.add_argument("--kms-key-id", help="KMS key (ARN or id) for SSE-KMS; required with --upload")
    return p


def _tolerances(args: argparse.Namespace) -> tuple[float, float]:
    lossy = args.quantize or (args.target in NEURON_TARGETS and args.auto_cast != "none")
    min_cosine = args.min_cosine if args.min_cosine is not None else (0.99 if lossy else 0.9999)
    max_abs = args.max_abs_diff if args.max_abs_diff is not None else (0.1 if lossy else 1e-3)
    if not -1.0 <= min_cosine <= 1.0:
        raise UsageError(f"--min-cosine must be between -1 and 1, got {min_cosine}")
    if max_abs < 0:
        raise UsageError(f"--max-abs-diff must not be negative, got {max_abs}")
    return min_cosine, max_abs


def _validate(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.seq_len < 2:
        raise UsageError(f"--seq-len must be at least 2, got {args.seq_len}")
    if args.quantize and args.target not in ("cpu", "onnx"):
        raise UsageError(f"--quantize is only for --target cpu or onnx, not {args.target}")
    if args.upload and not args.kms_key_id:
        raise UsageError("--upload needs --kms-key-id (artifacts are stored with SSE-KMS only)")
    if args.neuron_target and args.target not in NEURON_TARGETS:
        raise UsageError(f"--neuron-target is for --target inferentia or trainium, not {args.target}")


DEVICES = ("auto", "cpu", "cuda", "neuron")


def target_device(target: str) -> str:
    """The device tracing for `target` needs: Neuron targets compile through torch_neuronx, CUDA on a GPU."""
    return "neuron" if target in NEURON_TARGETS else "cuda" if target == "cuda" else "cpu"


def check_device(device: str, target: str) -> str:
    """The device compilation runs on; a mismatch with --target or an absent runtime is one line."""
    needed = target_device(target)
    if device != "auto" and device != needed:
        raise UsageError(f"--device {device} cannot compile --target {target} (it needs --device {needed})")
    if needed == "neuron":
        import_neuronx()
    if needed == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device cuda (for --target {target}) but no CUDA device is available")
    return needed


def run(args: argparse.Namespace) -> dict:
    """Compile, check, publish; returns the summary printed as JSON. Raises DriftError or UsageError."""
    import torch
    from transformers import AutoTokenizer

    from workloads.compilation import check, publish
    from workloads.compilation.model import load_exportable

    _validate(args)
    min_cosine, max_abs = _tolerances(args)
    check_device(args.device, args.target)  # fail in one line before downloading or loading anything
    neuron = args.target in NEURON_TARGETS
    publish.check_destination(args.out, args.overwrite)
    if args.upload:
        publish.parse_s3_uri(args.upload)
    source_uri = None
    if args.model_s3_uri:
        from workloads.compilation.source import fetch_model

        args.model_dir, source_uri = fetch_model(args.model_s3_uri, args.out.parent / f".{args.out.name}.source")
    model_dir = check_model_dir(args.model_dir)

    onnx = args.target == "onnx"
    if onnx:
        import_onnxruntime()
    # Eager attention: Neuron traces it; ONNX Runtime's Attention fusion matches only its exported form.
    exportable = load_exportable(model_dir, args.task, attn_implementation="eager" if neuron or onnx else None)
    if args.seq_len > exportable.max_positions:
        raise UsageError(f"--seq-len {args.seq_len} exceeds the model's max_position_embeddings "
                         f"({exportable.max_positions}) in {model_dir / 'config.json'}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    example_batch = tokenizer([TRACE_TEXT] * args.batch_size, padding="max_length", truncation=True,
                              max_length=args.seq_len, return_tensors="pt")
    example = (example_batch["input_ids"].long(), example_batch["attention_mask"].long())
    eager = exportable.module
    torch.manual_seed(0)
    artifact_name = "model.pt"
    if onnx:
        config = exportable.module.model.config
        compiled = export_onnx(eager, example, output_name=exportable.output_name,
                               num_heads=int(config.num_attention_heads), hidden_size=int(config.hidden_size),
                               quantize=args.quantize)
        artifact_name = ONNX_ARTIFACT
        # Exporting traces the module and can change its later answers: judge against a freshly loaded one.
        eager = load_exportable(model_dir, args.task).module
    elif neuron:
        options = NeuronOptions(args.neuron_target or NEURON_TARGETS[args.target], args.auto_cast,
                                args.auto_cast_type, args.optlevel)
        compiled = compile_neuron(eager, example, options, args.dynamic_batch)
    else:
        compiled = compile_portable(copy.deepcopy(eager) if args.target == "cuda" else eager, example,
                                    args.target, args.quantize)
    batches = check.held_out_batches(tokenizer, batch_size=args.batch_size, seq_len=args.seq_len,
                                     vocab_size=len(tokenizer), dynamic_batch=compiled.dynamic_batch,
                                     dynamic_seq_len=compiled.dynamic_seq_len)
    try:
        result = check.compare(eager, compiled.module, batches, min_cosine=min_cosine, max_abs_diff=max_abs,
                               device="cuda" if args.target == "cuda" else "cpu")
        if result.passed:
            save = compiled.save if onnx else publish.save_torchscript(compiled.module)
            return _publish(args, compiled, result, exportable, model_dir, artifact_name, save, source_uri)
    finally:
        if onnx:
            compiled.cleanup()
    raise DriftError(
        f"compiled artifact drifts from the eager model: cosine {result.cosine_min:.6f} (minimum "
        f"{min_cosine}), max |diff| {result.max_abs_diff:.3g} (maximum {max_abs}); nothing written to "
        f"{args.out}" + (" or S3" if args.upload else ""))


def _publish(args: argparse.Namespace, compiled, result, exportable, model_dir: Path, artifact_name: str,
             save, source_uri: str | None) -> dict:
    """Write the checked artifact with its manifest (and upload it); the summary printed as JSON."""
    import torch

    from workloads.compilation import publish
    from workloads.compilation.manifest import Manifest

    shape = [args.batch_size, args.seq_len]
    manifest = Manifest(
        target=args.target, task=exportable.task, labels=exportable.labels, input_shapes=[shape, shape],
        input_dtypes=["int64", "int64"], output_names=[exportable.output_name],
        output_shape=[args.batch_size, exportable.output_dim], batch_size=args.batch_size, seq_len=args.seq_len,
        dynamic_batch=compiled.dynamic_batch, dynamic_seq_len=compiled.dynamic_seq_len, compiler=compiled.compiler,
        torch_version=torch.__version__,
        source_model_sha256=model_sha256(model_dir), numeric_check=result, quantized=compiled.quantized,
        artifact=artifact_name,
    )
    out = publish.write_artifact(args.out, save, manifest, model_dir)
    summary = {"out": str(out), "target": args.target, "task": manifest.task, "source": source_uri or str(model_dir),
               "numeric_check": manifest.to_dict()["numeric_check"]}
    if args.upload:
        summary["uploaded"] = [f"s3://{publish.parse_s3_uri(args.upload)[0]}/{k}"
                               for k in publish.upload(out, args.upload, args.kms_key_id)]
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    offline()

    def go(argv_: Sequence[str] | None) -> int:
        args = build_parser().parse_args(argv_)
        try:
            summary = run(args)
        except DriftError as exc:
            print(f"python -m workloads.compilation: refused: {exc}", file=sys.stderr, flush=True)
            return EXIT_DRIFT
        print(json.dumps(summary), flush=True)
        return 0

    return run_main(go, argv, prog="python -m workloads.compilation")
