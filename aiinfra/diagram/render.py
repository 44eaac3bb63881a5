"""Graphviz `dot` turns DOT text into SVG or PNG; without it, one line says what to install."""

from __future__ import annotations

import shutil
import subprocess

from aiinfra.errors import UsageError

FORMATS = ("svg", "png")


def require_dot(fmt: str) -> str:
    """The `dot` executable, or the one-line error that names it (checked before the synth, to fail fast)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: Graphviz renders only {', '.join(FORMATS)}")
    executable = shutil.which("dot")
    if executable is None:
        raise UsageError(f"--format {fmt} needs Graphviz `dot` on PATH (Debian/Ubuntu: apt-get install graphviz); "
                         "--format dot or mermaid print text without it")
    return executable


def render(dot_source: str, fmt: str) -> bytes:
    """The picture `dot -T<fmt>` draws from the source."""
    executable = require_dot(fmt)
    result = subprocess.run([executable, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"dot -T{fmt} failed: {message[-1] if message else result.returncode}")
    return result.stdout
