"""The rule model both runners share: rules are pure functions over plain views of resources.

A resource rule sees one `Resource` (type, props, URN, name, the provider's props); a stack rule sees the
whole `Stack`. Neither knows whether it runs under `pulumi preview --policy-pack` (see `crossguard.py`) or
offline over a synthesized graph or a stack export (see `aiinfra/policy_runner.py`): both build these views
and call the very same functions, so the live and the offline verdicts cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

Enforcement = Literal["mandatory", "advisory"]
Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class Resource:
    """What a rule may look at: the engine's view of one resource, props in camelCase as the engine passes them."""

    type: str
    props: Mapping[str, Any]
    urn: str
    name: str
    provider_props: Mapping[str, Any] = field(default_factory=dict)
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    parent: str = ""
    id: str = ""

    def get(self, path: str, default: Any = None) -> Any:
        """`a.b.c` through nested mappings; a list on the way yields its first element (single-item blocks)."""
        return dig(self.props, path, default)

    @property
    def tags(self) -> dict[str, str]:
        """Effective tags: the provider's default tags, then `tagsAll` (state), then the resource's own tags."""
        defaults = self.provider_props.get("defaultTags") or {}
        if isinstance(defaults, str):
            try:
                defaults = json.loads(defaults)
            except ValueError:
                defaults = {}
        merged: dict[str, str] = {}
        for source in (_mapping(defaults).get("tags"), self.props.get("tagsAll"), self.props.get("tags")):
            merged.update({str(k): str(v) for k, v in _mapping(source).items()})
        return merged

    @property
    def stack_name(self) -> str:
        """The stack from the URN (`urn:pulumi:<stack>::<project>::...`)."""
        parts = self.urn.split("::")
        return parts[0].rsplit(":", 1)[-1] if parts and parts[0].startswith("urn:pulumi:") else ""

    @property
    def environment(self) -> str:
        """The `environment` tag when present, else the stack name: what prod-only rules key on."""
        return self.tags.get("environment") or self.stack_name

    @property
    def identifiers(self) -> set[str]:
        """Values other resources use to refer to this one (id, ARN, physical names)."""
        keys = ("arn", "id", "name", "bucket", "replicationGroupId", "clusterName", "nodeGroupName", "keyId",
                "endpointName", "alarmName")
        values = {self.id} | {self.props.get(k) for k in keys}
        return {v for v in values if isinstance(v, str) and len(v) >= 3}


@dataclass
class Stack:
    """Every resource of one stack, with lookups that stack rules need to relate resources to each other."""

    resources: Sequence[Resource]

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.resources}

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources if r.type in types]

    def references(self, source: Resource, target: Resource, prop: str | None = None) -> bool:
        """Whether `source` refers to `target`: by a property dependency, else by a value naming it.

        Property dependencies are what the engine knows during preview (ids are still unknown); value
        matching covers stack exports and documents that carry no dependencies.
        """
        deps = source.property_dependencies
        urns = deps.get(prop, ()) if prop else [u for v in deps.values() for u in v]
        if target.urn in urns:
            return True
        values = strings(source.props.get(prop) if prop else source.props)
        names = target.identifiers
        return any(v in names or any(v.startswith(n + "/") or n in v.split(",") for n in names if ":" in n)
                   for v in values)

    def referrers(self, target: Resource, types: Iterable[str], prop: str | None = None) -> list[Resource]:
        return [r for r in self.of_type(*types) if self.references(r, target, prop)]

    def referenced(self, source: Resource, types: Iterable[str], prop: str | None = None) -> list[Resource]:
        return [r for r in self.of_type(*types) if self.references(source, r, prop)]


class PolicyConfigError(ValueError):
    """Policy config that does not fit a policy's schema; the message is one line naming policy and key."""


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str | None = None


ResourceCheck = Callable[[Resource, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Stack, Mapping[str, Any]], Iterable[Violation]]


@dataclass(frozen=True)
class Rule:
    """One guardrail: identity, how much it matters, how to fix it, and the pure check itself."""

    name: str
    description: str
    enforcement: Enforcement
    severity: Severity
    remediation: str
    concern: str
    types: tuple[str, ...] = ()
    check_resource: ResourceCheck | None = None
    check_stack: StackCheck | None = None
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def kind(self) -> Literal["resource", "stack"]:
        return "resource" if self.check_resource is not None else "stack"

    def config(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The schema's defaults overlaid with what was configured: what the Pulumi CLI hands a policy.

        Checked with jsonschema against the policy's config schema (types, ranges, enums), the schema the
        Pulumi CLI also checks `--policy-pack-config` against: a wrong value is refused with one line naming
        the policy and the key, never replaced by the default."""
        values = {k: spec["default"] for k, spec in self.config_schema.items() if "default" in spec}
        values.update({k: v for k, v in (given or {}).items() if k != "enforcementLevel"})
        error = best_match(self._validator.iter_errors(values))
        if error is not None:
            where = ".".join([self.name, *(f"[{p}]" if isinstance(p, int) else str(p) for p in error.absolute_path)])
            raise PolicyConfigError(f"{where.replace('.[', '[')}: {error.message}")
        return values

    @cached_property
    def _validator(self) -> Draft7Validator:
        return Draft7Validator({"type": "object", "properties": dict(self.config_schema),
                                "additionalProperties": False})

    def applies_to(self, resource_type: str) -> bool:
        return not self.types or resource_type in self.types

    def evaluate_resource(self, resource: Resource, config: Mapping[str, Any]) -> list[str]:
        if self.check_resource is None or not self.applies_to(resource.type):
            return []
        return list(self.check_resource(resource, config))

    def evaluate_stack(self, stack: Stack, config: Mapping[str, Any]) -> list[Violation]:
        return [] if self.check_stack is None else list(self.check_stack(stack, config))


class RuleSet:
    """The rules of one concern module, registered by decorators in the order they are written."""

    def __init__(self, concern: str) -> None:
        self.concern = concern
        self.rules: list[Rule] = []

    def resource(self, name: str, *, types: Sequence[str], description: str, severity: Severity,
                 remediation: str, enforcement: Enforcement = "mandatory",
                 config: Mapping[str, Mapping[str, Any]] | None = None) -> Callable[[ResourceCheck], ResourceCheck]:
        def register(check: ResourceCheck) -> ResourceCheck:
            self.rules.append(Rule(name, description, enforcement, severity, remediation, self.concern,
                                   tuple(types), check_resource=check, config_schema=dict(config or {})))
            return check
        return register

    def stack(self, name: str, *, description: str, severity: Severity, remediation: str,
              enforcement: Enforcement = "mandatory",
              config: Mapping[str, Mapping[str, Any]] | None = None) -> Callable[[StackCheck], StackCheck]:
        def register(check: StackCheck) -> StackCheck:
            self.rules.append(Rule(name, description, enforcement, severity, remediation, self.concern,
                                   check_stack=check, config_schema=dict(config or {})))
            return check
        return register

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)


# --- helpers over engine-shaped values ---------------------------------------------------------------------

def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def dig(value: Any, path: str, default: Any = None) -> Any:
    for part in path.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, Mapping):
            return default
        value = value.get(part)
    return default if value is None else value


def items(value: Any) -> list[Mapping[str, Any]]:
    """A block that may be a single object or a list of objects (provider versions differ), as a list."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def block(value: Any) -> Mapping[str, Any]:
    """A nested block that may arrive as one object or a one-item list (provider versions differ)."""
    found = items(value)
    return found[0] if found else {}


def find_all(value: Any, key: str) -> list[Any]:
    """Every value stored under `key` anywhere in a nested structure (shape-independent lookups)."""
    found: list[Any] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == key:
                found.append(v)
            found.extend(find_all(v, key))
    elif isinstance(value, list):
        for v in value:
            found.extend(find_all(v, key))
    return found


def strings(value: Any) -> list[str]:
    """Every string in a nested structure."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def truthy(value: Any) -> bool:
    """Booleans as the engine may pass them: `True`, or the strings "true" (launch-template fields are strings)."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def number(value: Any, default: float | None = None) -> float | None:
    """Numbers arrive as floats (or numeric strings from state files)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return default
    return default


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def policy_json(value: Any) -> Mapping[str, Any] | None:
    """An IAM/key/bucket policy document, whether passed as JSON text or as an object."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def statements(document: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return items((document or {}).get("Statement"))
