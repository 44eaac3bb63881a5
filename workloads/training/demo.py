"""A learnable demo data set (and optionally a tiny model) so training runs anywhere in seconds.

Each text is a few filler words around one sentiment word; the label is that word's sentiment, so a model
that learns anything reaches well above chance. `python -m workloads.training.demo --out DIR` writes
`DIR/data/{train,validation}/*.jsonl` in the channel layout SageMaker uses, plus `DIR/tiny-model` with
`--tiny-model`.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path

from workloads.common.model_dir import quiet_transformers
from workloads.common.tiny_bert import LABELS, NEGATIVE_WORDS, NEUTRAL_WORDS, POSITIVE_WORDS, build_tiny_bert


def examples(count: int, seed: int) -> list[dict[str, str]]:
    """`count` labelled texts, balanced between the two classes, reproducible from `seed`."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        label = LABELS[i % 2]
        words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(3, 9))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE_WORDS if label == "positive" else NEGATIVE_WORDS))
        out.append({"text": " ".join(words), "label": label})
    rng.shuffle(out)
    return out


def write_jsonl(path: Path, records: Sequence[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_demo(out: Path, *, train: int = 512, validation: int = 128, seed: int = 0,
               tiny_model: bool = False) -> dict[str, Path]:
    """Write the demo channels (and tiny model); returns the paths by name."""
    paths = {
        "train": write_jsonl(out / "data" / "train" / "train.jsonl", examples(train, seed)),
        "validation": write_jsonl(out / "data" / "validation" / "validation.jsonl", examples(validation, seed + 1)),
    }
    if tiny_model:
        paths["model"] = build_tiny_bert(out / "tiny-model", head=True, seed=seed)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.training.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write data/ (and tiny-model/) into")
    parser.add_argument("--train-examples", type=int, default=512)
    parser.add_argument("--validation-examples", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny-model", action="store_true", help="also write a tiny random BERT classifier")
    args = parser.parse_args(argv)
    quiet_transformers()
    if args.train_examples < 2 or args.validation_examples < 2:
        parser.error("--train-examples and --validation-examples must be at least 2")
    for name, path in write_demo(args.out, train=args.train_examples, validation=args.validation_examples,
                                 seed=args.seed, tiny_model=args.tiny_model).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
