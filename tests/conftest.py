"""Shared fixtures: the offline synth of the shipped stacks and of stack files with changed config.

Every infrastructure test goes through `aiinfra.engine`, the same path `python -m aiinfra` takes, so tests
see exactly what the CLI and the policy pack see. Imports are local so workload tests don't pay for Pulumi.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def merged_stack_document(base: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The shipped stack file `base` with `overrides` applied: mappings merge key by key, `None` deletes."""
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{base}.yaml").read_text())
    config = document["config"]

    def merge(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
                merge(target[key], value)
            else:
                target[key] = copy.deepcopy(value)

    merge(config, overrides)
    return document


@pytest.fixture
def write_stack(tmp_path: Path) -> Callable[..., Path]:
    """Write a variant of a shipped stack file into a temp dir; returns its path (named like the real one)."""

    def write(overrides: Mapping[str, Any], base: str = "dev") -> Path:
        path = tmp_path / f"Pulumi.{base}.yaml"
        path.write_text(yaml.safe_dump(merged_stack_document(base, overrides), sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def stack_graph() -> Callable[[str], Any]:
    """The offline synth of a shipped stack (`dev`, `staging`, `prod`), computed once per test session."""
    from aiinfra.engine import synthesize

    cache: dict[str, Any] = {}

    def get(stack: str) -> Any:
        if stack not in cache:
            cache[stack] = synthesize(stack)
        return cache[stack]

    return get


@pytest.fixture
def synth_with(write_stack: Callable[..., Path]) -> Callable[..., Any]:
    """Synthesize a shipped stack with config overrides: `synth_with({"aiinfra:network": {...}}, base="prod")`."""
    from aiinfra.engine import synthesize

    def run(overrides: Mapping[str, Any], base: str = "dev") -> Any:
        return synthesize(base, stack_file=write_stack(overrides, base))

    return run


@pytest.fixture
def settings_error(write_stack: Callable[..., Path]) -> Callable[..., str]:
    """The one-line message a bad stack file produces (fails the test if the config is accepted)."""
    from aiinfra.stackfile import load_stack_config
    from contracts.config import SettingsError
    from components.settings import parse_settings

    def message(overrides: Mapping[str, Any], base: str = "dev") -> str:
        config = load_stack_config(base, ROOT, write_stack(overrides, base))
        with pytest.raises(SettingsError) as caught:
            parse_settings(config.values, project=config.project, stack=config.stack, source=config.source)
        text = str(caught.value)
        assert "\n" not in text, f"error is not one line: {text!r}"
        return text

    return message
