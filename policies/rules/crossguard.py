"""The live adapter: each `Rule` as a pulumi_policy policy, feeding the rule the same views the offline runner
builds. Nothing here decides anything; it only translates CrossGuard's arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (EnforcementLevel, Policy, PolicyConfigSchema, PolicyProviderResource, PolicyResource,
                           ReportViolation, ResourceValidationArgs, ResourceValidationPolicy, Severity,
                           StackValidationArgs, StackValidationPolicy)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from .core import PolicyConfigError, Resource, Rule, Stack


def plain(value: Any, unknown: list[str], path: str = "") -> Any:
    """CrossGuard hands props as proxies that raise on values unknown during preview; rules want plain dicts
    and lists. Unknown values are left out and their paths collected, so the caller can defer a verdict that
    may depend on them."""
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key in list(value):
            try:
                item = value[key]
            except UnknownValueError:
                unknown.append(f"{path}.{key}")
                continue
            result[str(key)] = plain(item, unknown, f"{path}.{key}")
        return result
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = []
        for index in range(len(value)):
            try:
                item = value[index]
            except UnknownValueError:
                unknown.append(f"{path}[{index}]")
                continue
            items.append(plain(item, unknown, f"{path}[{index}]"))
        return items
    return value


def _provider_props(provider: PolicyProviderResource | None, unknown: list[str]) -> Mapping[str, Any]:
    return plain(provider.props, unknown, "provider") if provider is not None else {}


def from_validation_args(args: ResourceValidationArgs, unknown: list[str]) -> Resource:
    return Resource(type=args.resource_type, props=plain(args.props, unknown), urn=args.urn, name=args.name,
                    provider_props=_provider_props(args.provider, unknown),
                    parent=(args.opts.parent or "") if args.opts is not None else "")


def from_policy_resource(resource: PolicyResource, unknown: list[str]) -> Resource:
    deps = {k: tuple(r.urn for r in v) for k, v in (resource.property_dependencies or {}).items()}
    return Resource(type=resource.resource_type, props=plain(resource.props, unknown), urn=resource.urn,
                    name=resource.name, provider_props=_provider_props(resource.provider, unknown),
                    property_dependencies=deps, dependencies=tuple(r.urn for r in resource.dependencies or []),
                    parent=resource.parent.urn if resource.parent is not None else "")


def _defer(unknown: list[str]) -> UnknownValueError:
    """What CrossGuard expects when a verdict needs values only the update will know: it reports that the
    policy cannot run during preview and runs it again during the update."""
    return UnknownValueError(UNKNOWN_STRING_VALUE, [unknown[0].lstrip(".")])


def _config(rule: Rule, given: Mapping[str, Any] | None, report: ReportViolation) -> dict[str, Any] | None:
    """The rule's config, or None after reporting (one line, naming policy and key) why it does not fit the
    policy's schema: a bad value blocks the policy rather than silently becoming the default."""
    try:
        return rule.config(given)
    except PolicyConfigError as exc:
        report(f"policy config refused: {exc}", None)
        return None


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
            config = _config(rule, args.get_config(), report)
            if config is None:
                return
            unknown: list[str] = []
            resource = from_validation_args(args, unknown)
            messages = rule.evaluate_resource(resource, config)
            if messages and unknown:
                raise _defer(unknown)
            for message in messages:
                report(message, None)

        return ResourceValidationPolicy(validate=validate_resource, **common)

    def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
        config = _config(rule, args.get_config(), report)
        if config is None:
            return
        unknown_by_urn: dict[str, list[str]] = {}
        views = []
        for policy_resource in args.resources:
            unknown: list[str] = []
            views.append(from_policy_resource(policy_resource, unknown))
            if unknown:
                unknown_by_urn[policy_resource.urn] = unknown
        deferred: list[str] = []
        for violation in rule.evaluate_stack(Stack(views), config):
            if unknown_by_urn and (violation.urn is None or violation.urn in unknown_by_urn):
                deferred.extend(unknown_by_urn.get(violation.urn or "", []) or next(iter(unknown_by_urn.values())))
                continue
            report(violation.message, violation.urn)
        if deferred:
            raise _defer(deferred)

    return StackValidationPolicy(validate=validate_stack, **common)
