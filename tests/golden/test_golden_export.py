"""Every shipped stack exports exactly as its golden file: the proof that engine and refactoring work leave
what the program declares unchanged. Regenerate with `python tests/golden/golden_export.py` (see that module)."""

from __future__ import annotations

import difflib
from collections.abc import Callable

import pytest

from aiinfra.stackfile import available_stacks
from golden_export import export_of, golden_path

STACKS = available_stacks()


def test_every_shipped_stack_has_a_golden_file() -> None:
    assert STACKS == ["dev", "prod", "staging"]
    for stack in STACKS:
        assert golden_path(stack).is_file(), f"missing {golden_path(stack)}; run python tests/golden/golden_export.py"


@pytest.mark.parametrize("stack", STACKS)
def test_export_matches_golden_byte_for_byte(stack: str, stack_graph: Callable) -> None:
    actual = export_of(stack_graph(stack))
    expected = golden_path(stack).read_text()
    if actual != expected:
        diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), "golden", "now", lineterm="",
                                         n=2))
        pytest.fail(f"{stack} export differs from {golden_path(stack).name} ({len(diff)} diff lines; "
                    f"regenerate with `python tests/golden/golden_export.py {stack}` only for a reason named in the "
                    f"commit):\n" + "\n".join(diff[:60]))
