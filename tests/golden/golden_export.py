"""The golden stack exports: what each shipped stack declares, as `aiinfra export` writes it, pinned in a file.

A change to the engine that must not change what the program declares (speed work, refactoring) keeps these
files byte for byte; a change that does change it regenerates them, and its commit message says why:

    python tests/golden/golden_export.py            # rewrite tests/golden/<stack>.export.json for every shipped stack
    python tests/golden/golden_export.py prod       # only some stacks
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
GOLDEN_DIR = Path(__file__).resolve().parent
# The manifest's timestamp is the one field that differs between two exports of the same program; pin it.
GOLDEN_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)


def golden_path(stack: str) -> Path:
    return GOLDEN_DIR / f"{stack}.export.json"


def export_of(graph: object) -> str:
    """The exact text `aiinfra export` writes for `graph`, with the manifest time pinned."""
    from aiinfra.export import export_document, export_text

    return export_text(export_document(graph, time=GOLDEN_TIME))  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from aiinfra.engine import synthesize
    from aiinfra.stackfile import available_stacks

    for stack in argv or available_stacks():
        text = export_of(synthesize(stack))
        golden_path(stack).write_text(text)
        print(f"wrote {golden_path(stack).relative_to(ROOT)} ({len(text):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
