"""Progress output: a bar on a terminal, JSON lines otherwise."""

from __future__ import annotations

import io
import json

from workloads.training.report import Reporter

TRAIN = {"event": "train", "step": 5, "epoch": 1, "train_loss": 0.5, "learning_rate": 1e-3, "samples_per_second": 80.0}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_mode_draws_a_bar_on_a_terminal_and_keeps_stdout_clean():
    out, err = io.StringIO(), _Terminal()
    reporter = Reporter("auto", 10, stdout=out, stderr=err)
    reporter.emit(TRAIN)
    reporter.emit({"event": "validation", "step": 10, "validation_accuracy": 0.9})
    reporter.close()
    assert out.getvalue() == ""
    text = err.getvalue()
    assert text.startswith("\r[" + "#" * 15 + " " * 15 + "] 5/10 loss 0.5000")
    assert "\nvalidation: step=10 validation_accuracy=0.9\n" in text


def test_auto_mode_writes_json_lines_when_not_a_terminal_and_only_on_rank_0():
    out, err = io.StringIO(), io.StringIO()
    Reporter("auto", 10, stdout=out, stderr=err).emit(TRAIN)
    assert json.loads(out.getvalue()) == TRAIN and err.getvalue() == ""
    quiet = io.StringIO()
    Reporter("json", 10, enabled=False, stdout=quiet).emit(TRAIN)
    assert quiet.getvalue() == ""
