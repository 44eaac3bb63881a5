"""Model loading: a Hugging Face directory or a compiled artifact, behind one `Predictor.predict(texts)`.

The model runs on the device it is given (`--device cpu|cuda|neuron`) or, with `auto`, the one the artifact and
the host call for; a device the host cannot provide is a one-line error before any weights load, never a
silent fall-back to the CPU. ONNX artifacts run on ONNX Runtime (CUDA execution provider on a GPU).

The server, the benchmark's in-process limit and the tests all call the same `predict`, so the limit the
server is measured against is exactly the work the server does per batch (tokenize plus forward), no more.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

log = logging.getLogger("workloads.serving.model")

EMBEDDING = "embedding"
CLASSIFICATION = "classification"
NEURON_TARGETS = ("inferentia", "trainium")
DEVICES = ("auto", "cpu", "cuda", "neuron")
# Files that change a model's answers; their bytes make up the cache identity.
_IDENTITY_SKIP = {"README.md", ".gitattributes"}
# Inputs padded together; larger batches are sorted by length and run as groups of this size (see _run).
PAD_GROUP = 16


class ModelLoadError(RuntimeError):
    """The model directory cannot be served; the message says which file or field and why."""


@dataclass(frozen=True)
class ModelInfo:
    """What the protocols need to describe and format answers, independent of how the model was loaded."""

    task: str                      # "embedding" or "classification"
    labels: tuple[str, ...] | None  # class names, in output column order, for a classifier
    dim: int                       # width of one output row
    identity: str                  # sha256 of the model's files and settings: the cache key's model part
    platform: str                  # "huggingface", "torchscript_<target>" or "onnxruntime"
    max_seq_len: int               # tokens kept per input
    fixed_batch: int | None        # a fixed-shape artifact runs exactly this many rows per forward
    fixed_seq_len: bool = False    # ... and/or exactly max_seq_len tokens per row (Neuron graphs are static)
    device: str = "cpu"            # where the model runs: cpu, cuda or neuron
    releases_gil: bool = False     # the forward runs without the GIL, so several model threads overlap


class Predictor:
    """Tokenize a list of texts and run the model on them, returning float32 rows [N, dim], in order.

    Inputs are padded in groups of up to PAD_GROUP of similar length (a fixed-shape artifact instead gets
    exactly its batch size and sequence length).
    For an encoder a row is the L2-normalised sentence embedding; for a classifier it is the softmax over
    the labels. Not thread-safe: each worker thread calls its own `clone()`.
    """

    def __init__(self, tokenizer: Any, forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                 info: ModelInfo, *, device: str = "cpu") -> None:
        self.tokenizer = tokenizer
        self._forward = forward
        self.info = info
        self._device = device

    def clone(self) -> "Predictor":
        """The same model behind its own tokenizer, for another worker thread (a fast tokenizer is not
        safe to call from two threads at once; the model itself is shared)."""
        import copy

        return Predictor(copy.deepcopy(self.tokenizer), self._forward, self.info, device=self._device)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Rows for `texts`, in order; a fixed-shape artifact is run in padded chunks of its batch size."""
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        step = self.info.fixed_batch or len(texts)
        parts = [self._run(list(texts[i:i + step])) for i in range(0, len(texts), step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _run(self, texts: list[str]) -> np.ndarray:
        if self.info.fixed_batch or self.info.fixed_seq_len:
            return self._run_fixed(texts)
        n = len(texts)
        ids = self.tokenizer(texts, truncation=True, max_length=self.info.max_seq_len,
                             return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        # Sort by length and pad each group of PAD_GROUP to its own longest input: with sentence lengths
        # spread 2-5x, padding a whole batch to its longest wastes a third of the compute.
        order = sorted(range(n), key=lambda i: len(ids[i])) if n > PAD_GROUP else list(range(n))
        out = np.empty((n, self.info.dim), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, n, PAD_GROUP):
            idx = order[start:start + PAD_GROUP]
            width = max(len(ids[i]) for i in idx)
            input_ids = np.full((len(idx), width), pad, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            enc = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
            if self._device != "cpu":
                enc = {k: v.to(self._device) for k, v in enc.items()}
            with torch.inference_mode():
                out[idx] = self._forward(enc).float().cpu().numpy()
        return out

    def _run_fixed(self, texts: list[str]) -> np.ndarray:
        """A fixed-shape artifact: exactly `fixed_batch` rows and/or exactly `max_seq_len` tokens."""
        n = len(texts)
        if self.info.fixed_batch and n < self.info.fixed_batch:
            # Repeat the last real text rather than feeding empty rows: every row stays numerically ordinary.
            texts = texts + [texts[-1]] * (self.info.fixed_batch - n)
        enc = self.tokenizer(texts, truncation=True, max_length=self.info.max_seq_len, return_tensors="pt",
                             padding="max_length" if self.info.fixed_seq_len else True,
                             return_token_type_ids=False)
        if self._device != "cpu":
            enc = {k: v.to(self._device) for k, v in enc.items()}
        with torch.inference_mode():
            out = self._forward(dict(enc))
        return out[:n].float().cpu().numpy()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, L2-normalised: what sentence-transformers does for all-MiniLM-L6-v2."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def model_identity(model_dir: Path, extra: str) -> str:
    """sha256 over every file that shapes the answers (weights, config, tokenizer) plus `extra` settings."""
    h = hashlib.sha256(extra.encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name not in _IDENTITY_SKIP):
        h.update(str(path.relative_to(model_dir)).encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_predictor(model_dir: str | Path, *, max_seq_len: int | None = None, device: str = "auto",
                   threads: int | None = None) -> Predictor:
    """Load a compiled artifact (when `manifest.json` is present) or a Hugging Face model directory on `device`.

    `threads` is ONNX Runtime's intra-op thread count per session (torch's is set process-wide by the server).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    if (model_dir / "manifest.json").is_file():
        return _load_artifact(model_dir, max_seq_len, device, threads)
    if (model_dir / "config.json").is_file():
        return _load_huggingface(model_dir, max_seq_len, resolve_device(device, None, model_dir))
    raise ModelLoadError(
        f"{model_dir} has neither manifest.json (compiled artifact) nor config.json (Hugging Face model)")


def artifact_target(model_dir: str | Path) -> str | None:
    """The manifest's target of a compiled artifact directory; None for anything else (or an unreadable one)."""
    try:
        return json.loads((Path(model_dir) / "manifest.json").read_text(encoding="utf-8")).get("target")
    except (OSError, ValueError, AttributeError):
        return None


def _cuda_available(onnx: bool) -> bool:
    if onnx:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return torch.cuda.is_available()


def resolve_device(requested: str, target: str | None, model_dir: Path) -> str:
    """The device to run on: `requested`, or with auto the artifact's own (ONNX and Hugging Face: a GPU if any).

    `target` is the artifact's manifest target (None for a Hugging Face directory). A device this host cannot
    provide, or one the artifact was not built for, raises ModelLoadError in one line naming both.
    """
    onnx = target == "onnx"
    if requested == "auto":
        if target in NEURON_TARGETS:
            requested = "neuron"
        elif target in ("cpu", "cuda"):
            requested = target
        else:
            requested = "cuda" if _cuda_available(onnx) else "cpu"
    if requested == "neuron":
        if target not in NEURON_TARGETS:
            what = f"a {target} artifact" if target else "a Hugging Face model"
            raise ModelLoadError(f"{model_dir}: device neuron serves an artifact compiled for inferentia or "
                                 f"trainium; this is {what}")
        try:
            import torch_neuronx  # noqa: F401  (importing it registers the Neuron ops TorchScript needs)
        except ImportError:
            raise ModelLoadError(f"{model_dir}: device neuron needs torch_neuronx (AWS Neuron SDK), which is not "
                                 "installed here") from None
    elif target in NEURON_TARGETS:
        raise ModelLoadError(f"{model_dir}: a {target} artifact runs only on device neuron, not {requested}")
    elif requested == "cuda":
        if target == "cpu":
            raise ModelLoadError(f"{model_dir}: a cpu artifact runs only on device cpu; compile with --target cuda "
                                 "or onnx for a GPU")
        if not _cuda_available(onnx):
            what = "onnxruntime has no CUDAExecutionProvider" if onnx else "torch sees no GPU"
            raise ModelLoadError(f"{model_dir}: device cuda asked for, but {what}")
    elif target == "cuda":
        raise ModelLoadError(f"{model_dir}: a cuda artifact runs only on device cuda, not {requested}")
    return requested


def _tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir}: cannot load the tokenizer: {exc}") from None


def _seq_len_limit(model_dir: Path, tokenizer: Any, positions: int | None) -> int:
    """The model's own token limit: sentence-transformers' setting if present, else tokenizer and positions."""
    st = model_dir / "sentence_bert_config.json"
    if st.is_file():
        try:
            return int(json.loads(st.read_text())["max_seq_length"])
        except (KeyError, ValueError, TypeError):
            pass
    limits = [n for n in (getattr(tokenizer, "model_max_length", None), positions)
              if isinstance(n, int) and 0 < n < 1_000_000]
    return min(limits) if limits else 512


def _load_huggingface(model_dir: Path, max_seq_len: int | None, device: str) -> Predictor:
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a progress bar in the JSON log stream is noise

    try:
        config = AutoConfig.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir}/config.json: {exc}") from None
    is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    tokenizer = _tokenizer(model_dir)
    limit = _seq_len_limit(model_dir, tokenizer, getattr(config, "max_position_embeddings", None))
    seq_len = min(limit, max_seq_len) if max_seq_len else limit
    cls = AutoModelForSequenceClassification if is_classifier else AutoModel
    try:
        model = cls.from_pretrained(str(model_dir)).eval().to(device)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir}: cannot load the weights: {exc}") from None
    accepted = {"input_ids", "attention_mask", "token_type_ids"}

    if is_classifier:
        id2label = config.id2label or {}
        labels = tuple(str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels))

        def forward(enc: dict[str, torch.Tensor]) -> torch.Tensor:
            logits = model(**{k: v for k, v in enc.items() if k in accepted}).logits
            return torch.softmax(logits.float(), dim=-1)

        task, dim = CLASSIFICATION, len(labels)
    else:
        labels = None

        def forward(enc: dict[str, torch.Tensor]) -> torch.Tensor:
            hidden = model(**{k: v for k, v in enc.items() if k in accepted}).last_hidden_state
            return mean_pool(hidden, enc["attention_mask"])

        task, dim = EMBEDDING, int(config.hidden_size)
    info = ModelInfo(task=task, labels=labels, dim=dim, platform="huggingface", max_seq_len=seq_len,
                     fixed_batch=None, identity=model_identity(model_dir, f"hf:{task}:{seq_len}"), device=device)
    return Predictor(tokenizer, forward, info, device=device)


def _manifest(model_dir: Path) -> Any:
    from workloads.compilation.manifest import Manifest, ManifestError

    try:
        return Manifest.load(model_dir)
    except ManifestError as exc:
        raise ModelLoadError(str(exc)) from None


def _load_artifact(model_dir: Path, max_seq_len: int | None, requested: str, threads: int | None) -> Predictor:
    m = _manifest(model_dir)
    if not m.numeric_check.passed:
        raise ModelLoadError(f"{model_dir}/manifest.json: numeric_check.passed is false; the artifact's answers "
                             "did not match the eager model, refusing to serve it")
    device = resolve_device(requested, m.target, model_dir)
    if m.target == "onnx":
        return _load_onnx(model_dir, m, max_seq_len, device, threads)
    if m.torch_version.split("+")[0] != torch.__version__.split("+")[0]:
        log.warning("artifact built with torch %s, serving with %s", m.torch_version, torch.__version__)
    path = model_dir / m.artifact
    try:
        module = torch.jit.load(str(path), map_location="cpu" if device == "neuron" else device).eval()
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: cannot load the TorchScript artifact: {exc}") from None
    tokenizer = _tokenizer(model_dir)
    fixed_batch = None if m.dynamic_batch else m.batch_size
    fixed_seq = not m.dynamic_seq_len
    # A static sequence length is the compiled graph's; only a dynamic one may be shortened by --max-seq-len.
    seq_len = m.seq_len if fixed_seq else min(m.seq_len, max_seq_len or m.seq_len)
    classification = m.task == CLASSIFICATION

    def forward(enc: dict[str, torch.Tensor]) -> torch.Tensor:
        out = module(enc["input_ids"].to(torch.int64), enc["attention_mask"].to(torch.int64))
        return torch.softmax(out.float(), dim=-1) if classification else out

    info = ModelInfo(
        task=m.task, labels=tuple(m.labels) if classification else None, dim=int(m.output_shape[-1]),
        platform=f"torchscript_{m.target}", max_seq_len=seq_len, fixed_batch=fixed_batch,
        fixed_seq_len=fixed_seq, device=device,
        identity=model_identity(model_dir, f"artifact:{m.task}:{seq_len}"),
    )
    # Neuron graphs take their inputs on the host; torch_neuronx moves them to the NeuronCore.
    return Predictor(tokenizer, forward, info, device="cpu" if device == "neuron" else device)


def _load_onnx(model_dir: Path, m: Any, max_seq_len: int | None, device: str, threads: int | None) -> Predictor:
    """An ONNX artifact on ONNX Runtime: CPU provider, or CUDA first on a GPU; inputs are host numpy arrays."""
    from workloads.common.cli import UsageError
    from workloads.compilation.onnx_export import OnnxModule, session

    path = model_dir / m.artifact
    try:
        module = OnnxModule(session(path, device=device, threads=threads))
    except UsageError as exc:
        raise ModelLoadError(f"{model_dir}: {exc}") from None
    except Exception as exc:  # onnxruntime raises its own exception types for a corrupt or foreign file
        raise ModelLoadError(f"{path}: cannot load the ONNX artifact: {type(exc).__name__}: {exc}") from None
    tokenizer = _tokenizer(model_dir)
    seq_len = min(m.seq_len, max_seq_len or m.seq_len)
    classification = m.task == CLASSIFICATION

    def forward(enc: dict[str, torch.Tensor]) -> torch.Tensor:
        out = module(enc["input_ids"], enc["attention_mask"])
        return torch.softmax(out.float(), dim=-1) if classification else out

    info = ModelInfo(
        task=m.task, labels=tuple(m.labels) if classification else None, dim=int(m.output_shape[-1]),
        platform="onnxruntime", max_seq_len=seq_len, fixed_batch=None, device=device, releases_gil=True,
        identity=model_identity(model_dir, f"onnx:{m.task}:{seq_len}"),
    )
    return Predictor(tokenizer, forward, info)
