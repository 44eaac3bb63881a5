"""Turn bad input into one clear line and exit code 2, the same way in every workload command."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path


class UsageError(ValueError):
    """Bad input (flag, file, field) that the user can fix; printed as one line, never as a traceback."""


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
