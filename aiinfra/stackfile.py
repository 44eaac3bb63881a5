"""Reads `Pulumi.yaml` and `stacks/Pulumi.<stack>.yaml` the way the Pulumi CLI does, without the CLI."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contracts.config import SettingsError

ROOT = Path(__file__).resolve().parent.parent
SECRET_PLACEHOLDER = "[secret:{key} - encrypted in the stack file; not decrypted offline]"


@dataclass(frozen=True)
class StackConfig:
    """A stack's flat config as the CLI hands it to programs: `ns:key` -> string or JSON text."""

    project: str
    stack: str
    source: str
    values: dict[str, str]
    secret_keys: tuple[str, ...]


def project_name(root: Path = ROOT) -> str:
    data = yaml.safe_load((root / "Pulumi.yaml").read_text())
    return str(data["name"])


def stack_config_dir(root: Path = ROOT) -> Path:
    data = yaml.safe_load((root / "Pulumi.yaml").read_text())
    return root / str(data.get("stackConfigDir", "."))


def available_stacks(root: Path = ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stack_config_dir(root).glob("Pulumi.*.yaml"))


def load_stack_config(stack: str, root: Path = ROOT, path: Path | None = None) -> StackConfig:
    """Load a stack file; `path` overrides the location (tests and ad-hoc files)."""
    project = project_name(root)
    if path is None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", stack):
            raise SettingsError(f"stack name {stack!r} may only contain letters, digits, '-', '_' and '.'")
        path = stack_config_dir(root) / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            known = ", ".join(available_stacks(root)) or "none"
            raise SettingsError(f"no stack named {stack!r}: {_relative(path, root)} does not exist; stacks: {known}")
    source = _relative(path, root)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"{source}: not valid YAML{where}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"{source}: expected a mapping with a 'config' key")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise SettingsError(f"{source}: config: expected a mapping of keys")
    values: dict[str, str] = {}
    secrets: list[str] = []
    for raw_key, value in config.items():
        key = str(raw_key) if ":" in str(raw_key) else f"{project}:{raw_key}"
        if _is_secret(value):
            values[key] = SECRET_PLACEHOLDER.format(key=key)
            secrets.append(key)
        else:
            values[key] = _as_config_text(value)
    return StackConfig(project, stack, source, values, tuple(secrets))


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _as_config_text(value: Any) -> str:
    """The CLI passes strings through and structured values as JSON; secrets nested in objects stay marked."""
    if isinstance(value, str):
        return value
    return json.dumps(_mark_nested_secrets(value))


def _mark_nested_secrets(value: Any) -> Any:
    if _is_secret(value):
        return SECRET_PLACEHOLDER.format(key="(nested)")
    if isinstance(value, dict):
        return {k: _mark_nested_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_nested_secrets(v) for v in value]
    return value


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)
