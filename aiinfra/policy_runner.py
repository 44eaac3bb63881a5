"""The offline runner: evaluates a `ResourceGraph` (a synth or a stack export) through the pack's own rules.

It builds the same `Resource` / `Stack` views the live CrossGuard adapter builds and applies each rule's config
the way the Pulumi CLI does: schema defaults, overlaid with a policy-config file in `--policy-pack-config`
format (`{"<policy>": {"key": value, "enforcementLevel": ...} | "<level>", "all": "<level>"}`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiinfra.graph import ResourceGraph, ResourceRecord
from policies.rules import ALL_RULES, Resource, Rule, Stack
from policies.rules.core import SEVERITIES, PolicyConfigError

LEVELS = ("advisory", "mandatory", "disabled")


@dataclass(frozen=True)
class Finding:
    policy: str
    urn: str
    type: str
    name: str
    enforcement: str
    severity: str
    message: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def _provider_urn(reference: str) -> str:
    """Provider references are `urn::id`; the URN itself contains `::`, the id does not."""
    return reference.rsplit("::", 1)[0] if reference.count("::") > 3 else reference


def resource_views(graph: ResourceGraph) -> list[Resource]:
    """Every record as the rules see it: props = outputs completed by inputs, provider props attached."""
    index = graph.by_urn
    views = []
    for record in graph:
        provider = index.get(_provider_urn(record.provider)) if record.provider else None
        views.append(_view(record, provider))
    return views


def _view(record: ResourceRecord, provider: ResourceRecord | None) -> Resource:
    return Resource(type=record.type, props=dict(record.props), urn=record.urn, name=record.name,
                    provider_props=dict(provider.props) if provider else {},
                    property_dependencies=dict(record.property_dependencies), dependencies=record.dependencies,
                    parent=record.parent, id=record.id)


def load_policy_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyConfigError(f"{path}: no such file") from None
    except ValueError as exc:
        raise PolicyConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PolicyConfigError(f"{path}: expected an object keyed by policy name")
    rules = {rule.name: rule for rule in ALL_RULES}
    for key, value in data.items():
        if key != "all" and key not in rules:
            raise PolicyConfigError(f"{path}: unknown policy {key!r}")
        level = value if isinstance(value, str) else value.get("enforcementLevel") if isinstance(value, dict) else None
        if not isinstance(value, (str, dict)) or (level is not None and level not in LEVELS):
            raise PolicyConfigError(f"{path}: {key}: enforcement level {level!r}; allowed: {', '.join(LEVELS)}")
        allowed = set(rules[key].config_schema) if key in rules else set()
        extra = sorted(set(value) - allowed - {"enforcementLevel"}) if isinstance(value, dict) else []
        if extra:
            raise PolicyConfigError(f"{path}: {key}.{extra[0]}: not a setting of this policy; allowed: "
                                    f"{', '.join(sorted(allowed)) or 'enforcementLevel only'}")
        if isinstance(value, dict) and key in rules:
            try:
                rules[key].config(value)  # the policy's own schema: types, ranges, enums
            except PolicyConfigError as exc:
                raise PolicyConfigError(f"{path}: {exc}") from None
    return data


def effective(rule: Rule, config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(enforcement level, config values) for one rule: defaults, then `all`, then the policy's own entry."""
    level: str = rule.enforcement
    values: Mapping[str, Any] = {}
    for entry in (config.get("all"), config.get(rule.name)):
        if isinstance(entry, str):
            level = entry
        elif isinstance(entry, Mapping):
            level = str(entry.get("enforcementLevel", level))
            values = {**values, **entry}
    return level, rule.config(values)


def evaluate(graph: ResourceGraph, *, rules: Sequence[Rule] = ALL_RULES,
             config: Mapping[str, Any] | None = None) -> list[Finding]:
    """Run every rule over the graph; findings come back in rule order, then resource order."""
    return evaluate_views(resource_views(graph), rules=rules, config=config)


def evaluate_views(views: Sequence[Resource], *, rules: Sequence[Rule] = ALL_RULES,
                   config: Mapping[str, Any] | None = None) -> list[Finding]:
    by_urn = {v.urn: v for v in views}
    stack = Stack(views)
    findings: list[Finding] = []
    for rule in rules:
        level, values = effective(rule, config or {})
        if level == "disabled":
            continue
        if rule.kind == "resource":
            for view in views:
                for message in rule.evaluate_resource(view, values):
                    findings.append(Finding(rule.name, view.urn, view.type, view.name, level, rule.severity, message))
        else:
            for violation in rule.evaluate_stack(stack, values):
                target = by_urn.get(violation.urn or "")
                findings.append(Finding(rule.name, violation.urn or "", target.type if target else "",
                                        target.name if target else "", level, rule.severity, violation.message))
    return findings


def mandatory(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.enforcement == "mandatory"]


def render_report(findings: Sequence[Finding], *, title: str, rule_count: int, resource_count: int) -> str:
    """A readable report grouped by severity, with the verdict last (what CI shows)."""
    lines = [f"{title}: {rule_count} policies over {resource_count} resources", ""]
    for severity in SEVERITIES:
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        lines.append(f"{severity.upper()} ({len(group)})")
        for f in sorted(group, key=lambda f: (f.enforcement != "mandatory", f.policy, f.name)):
            where = f"{f.type} {f.name}" if f.type else "stack"
            lines.append(f"  [{f.enforcement}] {f.policy}: {where}")
            lines.append(f"      {f.message}")
        lines.append("")
    violated = sorted({f.policy for f in findings})
    if violated:
        remediation = {rule.name: rule.remediation for rule in ALL_RULES}
        lines.append("How to fix")
        lines.extend(f"  {name}: {remediation.get(name, '')}" for name in violated)
        lines.append("")
    blocking = len(mandatory(findings))
    advisory = len(findings) - blocking
    verdict = "FAILED" if blocking else "passed"
    lines.append(f"Policy check {verdict}: {blocking} mandatory violation(s), {advisory} advisory")
    return "\n".join(lines)
