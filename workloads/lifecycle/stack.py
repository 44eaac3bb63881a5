"""The stack outputs the lifecycle commands read (`pulumi stack output --json > outputs.json`).

Each value is checked where it is read, and a missing or malformed one is one line naming the file and the
output, so a command never runs half-configured. Flags override individual outputs where a person may want
to (a bucket, a gate), never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts import outputs as names
from workloads.common.cli import UsageError, read_json_object


@dataclass(frozen=True)
class StackOutputs:
    """The parsed outputs file; `path` names it in errors (None: no file was given)."""

    path: Path | None
    values: dict[str, Any]

    def text(self, name: str, *, why: str) -> str:
        value = self.values.get(name)
        if value is None or value == "":
            raise UsageError(f"{self._where()}: missing stack output '{name}' ({why})")
        if not isinstance(value, str):
            raise UsageError(f"{self._where()}: stack output '{name}' must be a string, got {type(value).__name__}")
        return value

    def numbers(self, name: str, *, why: str) -> dict[str, float]:
        """A {name: number} output such as approvalGate or promotionThresholds."""
        value = self.values.get(name)
        if value is None:
            raise UsageError(f"{self._where()}: missing stack output '{name}' ({why})")
        if not isinstance(value, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
            raise UsageError(f"{self._where()}: stack output '{name}' must be an object of numbers, got {value!r}")
        return {str(k): float(v) for k, v in value.items()}

    def entry(self, name: str, key: str, *, why: str) -> str:
        """One entry of a {key: string} output such as modelPackageGroupNames."""
        value = self.values.get(name)
        if value is None:
            raise UsageError(f"{self._where()}: missing stack output '{name}' ({why})")
        if not isinstance(value, dict):
            raise UsageError(f"{self._where()}: stack output '{name}' must be an object, got {type(value).__name__}")
        if key not in value:
            raise UsageError(f"{self._where()}: stack output '{name}' has no entry {key!r} (has: "
                             f"{', '.join(sorted(value)) or 'none'})")
        return str(value[key])

    def _where(self) -> str:
        return str(self.path) if self.path else "no --stack-outputs given"


def load(path: Path | None) -> StackOutputs:
    """Read the outputs file; None gives an empty set whose every lookup names the missing flag or output."""
    if path is None:
        return StackOutputs(None, {})
    return StackOutputs(path, read_json_object(path, "stack outputs (write them with `pulumi stack output --json`)"))


MODELS_BUCKET = names.bucket_name("models")
MODELS_KEY = names.key_arn("models")
SERVING_REPOSITORY = names.repository_url("serving")
