"""Progress for people (a one-line bar on a terminal) and for machines (one JSON line per interval).

The JSON keys are fixed because the launcher's SageMaker metric definitions match them with regexes; change
a key here and `METRIC_DEFINITIONS` with it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r'"train_loss": ([-+0-9.eE]+)'},
    {"Name": "train:learning_rate", "Regex": r'"learning_rate": ([-+0-9.eE]+)'},
    {"Name": "train:samples_per_second", "Regex": r'"samples_per_second": ([-+0-9.eE]+)'},
    {"Name": "validation:loss", "Regex": r'"validation_loss": ([-+0-9.eE]+)'},
    {"Name": "validation:accuracy", "Regex": r'"validation_accuracy": ([-+0-9.eE]+)'},
]


class Reporter:
    """Writes step and validation records as JSON lines (stdout) or as a progress bar (stderr), and hands each
    record to the observers (the experiment tracker) as well."""

    def __init__(self, mode: str, total_steps: int, *, enabled: bool = True,
                 stdout: TextIO | None = None, stderr: TextIO | None = None,
                 observers: Sequence[Callable[[dict[str, Any]], None]] = ()) -> None:
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        if mode == "auto":
            mode = "progress" if self.err.isatty() else "json"
        self.mode = mode
        self.total = total_steps
        self.enabled = enabled
        self._bar_open = False
        self.observers = list(observers)

    def emit(self, record: dict[str, Any]) -> None:
        """One record: a JSON line, or (progress mode) a redrawn bar for steps and a printed line otherwise."""
        if not self.enabled:
            return
        for observe in self.observers:
            observe(record)
        if self.mode == "json":
            print(json.dumps(record), file=self.out, flush=True)
            return
        if record.get("event") == "train":
            done = record["step"] / max(self.total, 1)
            bar = "#" * int(done * 30)
            self.err.write(f"\r[{bar:<30}] {record['step']}/{self.total} loss {record['train_loss']:.4f} "
                           f"lr {record['learning_rate']:.2e} {record['samples_per_second']:.1f} samples/s")
            self.err.flush()
            self._bar_open = True
        else:
            self._close_bar()
            fields = " ".join(f"{k}={v}" for k, v in record.items() if k != "event")
            print(f"{record.get('event', 'info')}: {fields}", file=self.err, flush=True)

    def _close_bar(self) -> None:
        if self._bar_open:
            self.err.write("\n")
            self._bar_open = False

    def close(self) -> None:
        self._close_bar()


class Throughput:
    """Samples per second since the last reading."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._samples = 0

    def add(self, samples: int) -> None:
        self._samples += samples

    def read(self) -> float:
        now = time.perf_counter()
        rate = self._samples / max(now - self._start, 1e-9)
        self._start, self._samples = now, 0
        return rate
