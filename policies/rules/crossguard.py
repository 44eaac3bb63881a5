"""The live adapter: each `Rule` as a pulumi_policy policy, feeding the rule the same views the offline runner
builds. Nothing here decides anything; it only translates CrossGuard's arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (EnforcementLevel, Policy, PolicyConfigSchema, PolicyProviderResource, PolicyResource,
                           ReportViolation, ResourceValidationArgs, ResourceValidationPolicy, Severity,
                           StackValidationArgs, StackValidationPolicy)

from .core import Resource, Rule, Stack


def plain(value: Any) -> Any:
    """CrossGuard hands props as secret-preserving proxies; rules want plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    return value


def _provider_props(provider: PolicyProviderResource | None) -> Mapping[str, Any]:
    return plain(provider.props) if provider is not None else {}


def from_validation_args(args: ResourceValidationArgs) -> Resource:
    return Resource(type=args.resource_type, props=plain(args.props), urn=args.urn, name=args.name,
                    provider_props=_provider_props(args.provider),
                    parent=(args.opts.parent or "") if args.opts is not None else "")


def from_policy_resource(resource: PolicyResource) -> Resource:
    deps = {k: tuple(r.urn for r in v) for k, v in (resource.property_dependencies or {}).items()}
    return Resource(type=resource.resource_type, props=plain(resource.props), urn=resource.urn, name=resource.name,
                    provider_props=_provider_props(resource.provider), property_dependencies=deps,
                    dependencies=tuple(r.urn for r in resource.dependencies or []),
                    parent=resource.parent.urn if resource.parent is not None else "")


def to_policy(rule: Rule) -> Policy:
    """A ResourceValidationPolicy or StackValidationPolicy that runs `rule` on CrossGuard's arguments."""
    common: dict[str, Any] = {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": EnforcementLevel(rule.enforcement),
        "severity": Severity(rule.severity),
        "remediation_steps": rule.remediation,
        "tags": [rule.concern],
        "config_schema": PolicyConfigSchema(properties={k: dict(v) for k, v in rule.config_schema.items()})
        if rule.config_schema else None,
    }
    if rule.kind == "resource":
        def validate_resource(args: ResourceValidationArgs, report: ReportViolation) -> None:
            if not rule.applies_to(args.resource_type):
                return
            for message in rule.evaluate_resource(from_validation_args(args), rule.config(args.get_config())):
                report(message, None)

        return ResourceValidationPolicy(validate=validate_resource, **common)

    def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
        stack = Stack([from_policy_resource(r) for r in args.resources])
        for violation in rule.evaluate_stack(stack, rule.config(args.get_config())):
            report(violation.message, violation.urn)

    return StackValidationPolicy(validate=validate_stack, **common)
