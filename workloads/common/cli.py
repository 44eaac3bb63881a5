"""Turn bad input into one clear line and exit code 2, the same way in every workload command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class UsageError(ValueError):
    """Bad input (flag, file, field) that the user can fix; printed as one line, never as a traceback."""


def number_pairs(pairs: Sequence[str], flag: str, form: str = "NAME=NUMBER") -> dict[str, float]:
    """`--flag name=0.9` values (repeatable) as {name: number}; a malformed one is a UsageError naming it."""
    found: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UsageError(f"{flag} {pair!r}: expected {form}")
        found[name.strip()] = number
    return found


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`; missing, unreadable or not an object is one line naming the file and `what`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no {what} there (file not found)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path}: {what} must be a JSON object")
    return document


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *,
             prog: str, failure_file: Path | None = None) -> int:
    """Call `main`; report UsageError-like failures (any ValueError subclass we raise on purpose) as one line.

    `failure_file` is SageMaker's `/opt/ml/output/failure`: when its folder exists the same line is written
    there, so the console shows the reason instead of "AlgorithmError".
    """
    from workloads.common.model_dir import ModelDirError

    try:
        return main(argv)
    except (UsageError, ModelDirError) as exc:
        message = f"{prog}: error: {exc}"
        print(message, file=sys.stderr, flush=True)
        if failure_file is not None and failure_file.parent.is_dir():
            try:
                failure_file.write_text(message + "\n", encoding="utf-8")
            except OSError:
                pass
        return 2
