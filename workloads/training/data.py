"""Read JSON-lines channels, map labels to class ids, and order the data reproducibly per epoch and rank.

The order of epoch `e` is a pure function of (seed, e, world size, rank), so a resumed run only needs the
epoch and the step within it to continue exactly where the interrupted one stopped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from workloads.common.cli import UsageError

DATA_SUFFIXES = (".jsonl", ".json", ".ndjson")


@dataclass(frozen=True)
class Example:
    text: str
    label: object
    where: str  # "file:line", for error messages


def channel_files(path: Path, channel: str) -> list[Path]:
    """The data files of a channel: the file itself, or the JSON-lines files in the folder (sorted)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"{channel} data not found: {path} (set --{channel} or SM_CHANNEL_{channel.upper()})")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
    if not files:
        raise UsageError(f"{path}: no {channel} data ({', '.join(DATA_SUFFIXES)} files) in the {channel} channel")
    return files


def read_examples(path: Path, channel: str) -> list[Example]:
    """All examples of a channel; malformed lines are errors naming file, line and field."""
    examples: list[Example] = []
    for file in channel_files(path, channel):
        with file.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{file}:{number}"
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise UsageError(f"{where}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise UsageError(f"{where}: expected an object with 'text' and 'label'")
                for name in ("text", "label"):
                    if name not in record:
                        raise UsageError(f"{where}: missing field '{name}'")
                if not isinstance(record["text"], str) or not record["text"].strip():
                    raise UsageError(f"{where}: field 'text' must be a non-empty string")
                label = record["label"]
                if isinstance(label, bool) or not isinstance(label, (str, int)):
                    raise UsageError(f"{where}: field 'label' must be a string or an integer, got {label!r}")
                examples.append(Example(record["text"], label, where))
    if not examples:
        raise UsageError(f"{path}: the {channel} data set is empty")
    return examples


def class_names(explicit: Sequence[str], model_labels: Sequence[str] | None, train: Sequence[Example]) -> list[str]:
    """Class names: the `labels` hyperparameter, else the model's named id2label, else the training labels."""
    if explicit:
        if len(set(explicit)) != len(explicit):
            raise UsageError(f"hyperparameter 'labels': duplicate class names in {','.join(explicit)}")
        return list(explicit)
    if model_labels:
        return list(model_labels)
    values = {e.label for e in train}
    if all(isinstance(v, int) for v in values):
        return [str(v) for v in sorted(values)]
    return sorted(str(v) for v in values)


def label_ids(examples: Sequence[Example], names: Sequence[str], *, by_index: bool) -> list[int]:
    """Map each label to its class id; a label outside the classes is an error naming the file and line.

    `by_index` also accepts integer labels as ids (when the names came from the model or the flag).
    """
    ids = {name: i for i, name in enumerate(names)}
    out = []
    for example in examples:
        label = example.label
        if isinstance(label, int) and by_index and 0 <= label < len(names):
            out.append(label)
        elif str(label) in ids:
            out.append(ids[str(label)])
        else:
            raise UsageError(f"{example.where}: field 'label' is {label!r}, not one of the classes "
                             f"{', '.join(names)}")
    return out


def epoch_order(n: int, *, seed: int, epoch: int, world_size: int, rank: int) -> list[int]:
    """This rank's example indices for `epoch`: a seeded shuffle, padded so every rank gets equally many."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    per_rank = -(-n // world_size)
    base = list(order)
    while len(order) < per_rank * world_size:  # cycle (more ranks than examples is legal, if odd)
        order += base[: per_rank * world_size - len(order)]
    return order[rank::world_size]


def steps_per_epoch(n: int, *, batch_size: int, world_size: int) -> int:
    """Steps per epoch on every rank (the last batch may be short)."""
    per_rank = -(-n // world_size)
    return -(-per_rank // batch_size)
