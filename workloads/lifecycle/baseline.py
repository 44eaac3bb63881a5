"""`baseline`: the statistics drift is measured against, from the training data the model learned from.

Writes `statistics.json` (per signal: a sorted sample and decile bins for a continuous one, category shares for a
categorical one; the vocabulary and projection seed the drift job must reuse) and `constraints.json` (the
test thresholds), optionally uploaded with SSE-KMS under `baselines/<endpoint>/`, where the monitoring
schedule's job definition points. Output signals come from the training labels and, with `--model-dir`, from
running the model server's own predictor over the training texts, so the baseline answers are formatted
exactly as the endpoint's captured ones.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from contracts import lifecycle as lc
from workloads.common import s3
from workloads.common.cli import UsageError
from workloads.lifecycle import signals

FORMAT_VERSION = 1
BINS = 10
DEFAULT_CONSTRAINTS = {"alpha": 0.01, "psi": 0.1, "min_records": 30}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("baseline", help="baseline statistics for drift, from the training JSON lines",
                       description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True, help='training JSON lines ({"text", "label"}): file, folder or s3://')
    p.add_argument("--out", type=Path, required=True, help=f"folder for {lc.BASELINE_STATISTICS_FILE} and "
                   f"{lc.BASELINE_CONSTRAINTS_FILE}")
    p.add_argument("--model-dir", type=Path, help="also baseline the model's answers (compiled artifact or "
                   "Hugging Face folder, as the server loads it)")
    p.add_argument("--labels", help="class names for integer labels, comma-separated, in class-id order")
    p.add_argument("--vocabulary-size", type=int, default=50, help="most common words tracked (default 50)")
    p.add_argument("--sample-size", type=int, default=5000, help="values kept per signal for KS (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the projections and the sample")
    p.add_argument("--alpha", type=float, default=DEFAULT_CONSTRAINTS["alpha"],
                   help="significance level of KS and chi-square (default 0.01)")
    p.add_argument("--psi", type=float, default=DEFAULT_CONSTRAINTS["psi"],
                   help="population stability index a drifted signal also reaches (default 0.1)")
    p.add_argument("--min-records", type=int, default=DEFAULT_CONSTRAINTS["min_records"],
                   help="fewest captured inputs judged at all (default 30)")
    p.add_argument("--upload", help="s3://<models bucket>/baselines/<endpoint>/ to upload both files to")
    p.add_argument("--kms-key-id", help="SSE-KMS key for --upload (the models key)")
    p.set_defaults(run=run)


def summarise(extractor: signals.Extractor, *, sample_size: int, seed: int) -> dict[str, Any]:
    """Per signal: a continuous sample and its decile bins, or categorical shares."""
    rng = np.random.default_rng(seed)
    found: dict[str, Any] = {}
    for name, values in sorted(extractor.continuous.items()):
        data = np.asarray(values, dtype=np.float64)
        edges = np.unique(np.quantile(data, np.linspace(0, 1, BINS + 1)[1:-1]))
        sample = data if data.size <= sample_size else rng.choice(data, size=sample_size, replace=False)
        found[name] = {"kind": signals.CONTINUOUS, "count": int(data.size), "mean": float(data.mean()),
                       "std": float(data.std()), "edges": edges.tolist(),
                       "proportions": signals.bin_shares(data, edges).tolist(), "sample": np.sort(sample).tolist()}
    for name, counter in sorted(extractor.counts.items()):
        total = sum(counter.values())
        categories = sorted(counter)
        found[name] = {"kind": signals.CATEGORICAL, "count": total, "categories": categories,
                       "proportions": [counter[c] / total for c in categories]}
    return found


def build(texts: list[str], labels: list[str], *, vocabulary_size: int, sample_size: int, seed: int,
          outputs: list[Any] | None = None) -> dict[str, Any]:
    """The statistics document for these training texts (and the model's answers to them, if given)."""
    vocabulary = signals.top_words(Counter(w for text in texts for w in signals.words(text)), vocabulary_size)
    extractor = signals.Extractor(vocabulary=[*vocabulary, signals.OTHER], seed=seed)
    for text in texts:
        extractor.add_text(text)
    if outputs is None:
        for label in labels:
            extractor.add_label(label)
    else:
        for output in outputs:
            extractor.add_output(output)
    return {"version": FORMAT_VERSION, "records": len(texts), "seed": seed, "projections": extractor.projections,
            "vocabulary": extractor.vocabulary, "signals": summarise(extractor, sample_size=sample_size, seed=seed)}


def model_outputs(model_dir: Path, texts: list[str]) -> list[Any]:
    """The server's own answers to `texts` (its predictor and its SageMaker response format)."""
    from workloads.serving.model import ModelLoadError, load_predictor
    from workloads.serving.sagemaker import format_outputs

    try:
        predictor = load_predictor(model_dir)
    except ModelLoadError as exc:
        raise UsageError(f"--model-dir: {exc}") from None
    answers: list[Any] = []
    for start in range(0, len(texts), 256):
        rows = predictor.predict(texts[start:start + 256])
        answers.extend(json.loads(format_outputs(predictor.info, rows))["outputs"])
    return answers


def label_names(examples: list[Any], names: str | None) -> list[str]:
    classes = [n.strip() for n in names.split(",")] if names else None
    out = []
    for example in examples:
        label = example.label
        if isinstance(label, int) and classes is not None:
            if not 0 <= label < len(classes):
                raise UsageError(f"{example.where}: label {label} is not a class id of --labels ({len(classes)})")
            label = classes[label]
        out.append(str(label))
    return out


def run(args: argparse.Namespace) -> int:
    from workloads.training.data import read_examples

    for flag, value, low in (("--vocabulary-size", args.vocabulary_size, 1), ("--sample-size", args.sample_size, 100),
                             ("--min-records", args.min_records, 1)):
        if value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    if not 0 < args.alpha < 1 or not args.psi > 0:
        raise UsageError(f"--alpha must be in (0, 1) and --psi positive, got {args.alpha} and {args.psi}")
    if args.upload and not args.kms_key_id:
        raise UsageError("--upload needs --kms-key-id (the models bucket accepts only SSE-KMS objects)")
    with tempfile.TemporaryDirectory(prefix="aiinfra-baseline-") as tmp:
        train = Path(args.train)
        if s3.is_s3(args.train):
            train = s3.download_prefix(args.train, Path(tmp) / "train", what="--train")
        examples = read_examples(train, "train")
    texts = [e.text for e in examples]
    outputs = model_outputs(args.model_dir, texts) if args.model_dir else None
    statistics = build(texts, label_names(examples, args.labels), vocabulary_size=args.vocabulary_size,
                       sample_size=args.sample_size, seed=args.seed, outputs=outputs)
    statistics["source"] = args.train
    constraints = {"version": FORMAT_VERSION, "alpha": args.alpha, "psi": args.psi, "min_records": args.min_records}
    args.out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, document in ((lc.BASELINE_STATISTICS_FILE, statistics), (lc.BASELINE_CONSTRAINTS_FILE, constraints)):
        path = args.out / name
        path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written[name] = str(path)
        if args.upload:
            bucket, prefix = s3.prefix_of(args.upload, "--upload")
            s3.upload_file(path, f"s3://{bucket}/{prefix}{name}", args.kms_key_id)
    print(json.dumps({"event": "baseline", "records": len(texts), "signals": sorted(statistics["signals"]),
                      "files": written, **({"uploaded": args.upload} if args.upload else {})}), flush=True)
    return 0
