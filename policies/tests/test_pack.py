"""The pack on its own: it builds every policy, runs each through CrossGuard's own argument classes, and
refuses config that does not fit a policy's schema. Needs only the pack's requirements and `contracts`."""

from __future__ import annotations

import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
from jsonschema import Draft7Validator
from pulumi_policy import (PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs,
                           ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy)

from contracts.instances import INSTANCE_TYPES, PROFILES, ROLE_LABEL, SERVING_ROLE
from policies.rules import ALL_RULES

PACK = Path(__file__).resolve().parents[1]
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


@pytest.fixture(scope="module")
def policies() -> dict[str, pulumi_policy.Policy]:
    """The pack as `pulumi preview --policy-pack policies` builds it: `runpy.run_path` of the pack directory."""
    built: dict[str, Any] = {}
    real = pulumi_policy.PolicyPack
    pulumi_policy.PolicyPack = lambda name, policies, **kw: built.update(name=name, policies=policies)
    try:
        runpy.run_path(str(PACK), run_name="__main__")
    finally:
        pulumi_policy.PolicyPack = real
    assert built["name"] == "aiinfra-guardrails"
    return {p.name: p for p in built["policies"]}


def urn(name: str, type_: str, stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::aiinfra::{type_}::{name}"


def resource(type_: str, name: str, props: Mapping[str, Any], stack: str = "dev") -> PolicyResource:
    return PolicyResource(type_, dict(props), urn(name, type_, stack), name, OPTIONS, None, None, [], {})


def run(policy: pulumi_policy.Policy, resources: list[PolicyResource],
        config: Mapping[str, Any] | None = None) -> list[str]:
    """What one policy reports over the resources, called exactly as the CrossGuard analyzer calls it."""
    reported: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        reported.append(message)

    if isinstance(policy, StackValidationPolicy):
        policy.validate(StackValidationArgs(resources, config=config or {}), report)
    else:
        assert isinstance(policy, ResourceValidationPolicy)
        for r in resources:
            policy.validate(ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, OPTIONS, None,
                                                   config=config or {}), report)
    return reported


def pool(name: str, instance_type: str, stack: str = "dev", **props: Any) -> PolicyResource:
    """A node group as the node pools render one for a catalog profile: AMI type, taint, labels."""
    profile = PROFILES[next(p for p, spec in PROFILES.items() if instance_type.split(".")[0] in spec.families)]
    base: dict[str, Any] = {"instanceTypes": [instance_type], "amiType": profile.ami_type, "capacityType": "ON_DEMAND",
                            "labels": {"aiinfra.io/node-pool": name},
                            "scalingConfig": {"desiredSize": 1, "minSize": 0, "maxSize": 2},
                            "subnetIds": ["subnet-a", "subnet-b"]}
    if profile.taint_key:
        base["taints"] = [{"key": profile.taint_key, "value": "true", "effect": "NO_SCHEDULE"}]
    return resource(NODE_GROUP, name, {**base, **props}, stack)


def test_every_policy_builds_with_a_valid_config_schema(policies: dict[str, pulumi_policy.Policy]) -> None:
    assert sorted(policies) == sorted(rule.name for rule in ALL_RULES)
    for policy in policies.values():
        assert policy.description and policy.remediation_steps, policy.name
        if policy.config_schema is not None:
            Draft7Validator.check_schema({"type": "object", "properties": policy.config_schema.properties})


def test_every_policy_runs_over_every_kind_it_checks(policies: dict[str, pulumi_policy.Policy]) -> None:
    # One bare resource of every kind any resource rule checks, plus a pool of each profile: each policy's
    # check runs (a crash would raise here), and bare resources are reported where a rule needs a setting.
    kinds = sorted({t for rule in ALL_RULES for t in rule.types})
    bare = [resource(kind, f"bare{i}", {}) for i, kind in enumerate(kinds)]
    pools = [pool(f"pool{i}", t) for i, t in enumerate(["m6i.xlarge", "g5.xlarge", "trn1.2xlarge", "inf2.xlarge"])]
    reported = {name: run(policy, bare + pools) for name, policy in policies.items()}
    assert reported["kms-key-rotation"] and reported["log-group-cmk"] and reported["msk-encryption"]
    for name in ("accelerator-pools-tainted", "accelerator-pools-matching-ami", "instance-types-allowed"):
        assert reported[name] == [], name


@pytest.mark.parametrize("instance_type", [f"{family}.xlarge" for family in PROFILES["cpu"].families]
                         + sorted(INSTANCE_TYPES))
def test_every_type_the_settings_accept_passes_the_instance_and_ami_rules(
        policies: dict[str, pulumi_policy.Policy], instance_type: str) -> None:
    group = [pool("pool", instance_type)]
    for name in ("instance-types-allowed", "accelerator-pools-matching-ami", "accelerator-pools-tainted"):
        assert run(policies[name], group) == [], name


def test_types_the_catalog_does_not_know_are_reported_not_guessed(policies: dict[str, pulumi_policy.Policy]) -> None:
    # g4ad carries AMD GPUs: the NVIDIA AMI cannot drive them, so it must not pass as an NVIDIA pool.
    amd = [resource(NODE_GROUP, "amd", {"instanceTypes": ["g4ad.xlarge"], "amiType": "AL2023_x86_64_NVIDIA",
                                        "taints": [{"key": "nvidia.com/gpu", "effect": "NO_SCHEDULE"}]})]
    [ami] = run(policies["accelerator-pools-matching-ami"], amd)
    assert ami.startswith("node group amd: instance type g4ad.xlarge is not in the instance catalog")
    [allowed] = run(policies["instance-types-allowed"], amd)
    assert allowed.startswith("instance type g4ad.xlarge is not in the instance catalog")


def test_prod_serving_pools_are_found_by_their_role_label_not_their_name(
        policies: dict[str, pulumi_policy.Policy]) -> None:
    serving = pool("batch", "inf2.xlarge", "prod", capacityType="SPOT",
                   labels={"aiinfra.io/node-pool": "batch", ROLE_LABEL: SERVING_ROLE})
    named_serve = pool("serve", "inf2.xlarge", "prod", capacityType="SPOT",
                       labels={"aiinfra.io/node-pool": "serve", ROLE_LABEL: "compilation"})
    on_demand = pool("online", "inf2.xlarge", "prod", labels={ROLE_LABEL: SERVING_ROLE})
    dev = pool("dev-serving", "inf2.xlarge", "dev", capacityType="SPOT", labels={ROLE_LABEL: SERVING_ROLE})
    policy = policies["no-spot-for-prod-serving"]
    assert run(policy, [serving]) == ["prod serving node group runs on SPOT capacity"]
    assert run(policy, [named_serve, on_demand, dev]) == []


def test_budget_prices_from_the_packs_own_table(policies: dict[str, pulumi_policy.Policy]) -> None:
    big = [pool("train", "p5.48xlarge", scalingConfig={"desiredSize": 4, "minSize": 0, "maxSize": 4})]
    [message] = run(policies["monthly-budget"], big)
    assert "exceeds the budget $40,000.00 (largest: train $" in message
    assert run(policies["monthly-budget"], big, {"monthlyBudgetUsd": 10_000_000}) == []


@pytest.mark.parametrize(("policy", "config", "message"), [
    ("monthly-budget", {"monthlyBudgetUsd": "abc"},
     "policy config refused: monthly-budget.monthlyBudgetUsd: 'abc' is not of type 'number'"),
    ("monthly-budget", {"monthlyBudgetUsd": -5},
     "policy config refused: monthly-budget.monthlyBudgetUsd: -5 is less than the minimum of 0"),
    ("log-retention-minimum", {"minimumRetentionDays": 2.5},
     "policy config refused: log-retention-minimum.minimumRetentionDays: 2.5 is not of type 'integer'"),
    ("instance-types-allowed", {"allowedInstanceTypes": {"gpu": ["g5.*"]}},
     "policy config refused: instance-types-allowed.allowedInstanceTypes: 'gpu' is not one of"),
    ("required-tags", {"requiredTags": ["owner", 7]},
     "policy config refused: required-tags.requiredTags[1]: 7 is not of type 'string'"),
])
def test_config_that_does_not_fit_the_schema_is_refused_in_one_line(
        policies: dict[str, pulumi_policy.Policy], policy: str, config: dict[str, Any], message: str) -> None:
    checked = resource("aws:cloudwatch/logGroup:LogGroup", "logs", {"retentionInDays": 30}) \
        if policy == "log-retention-minimum" else pool("pool", "m6i.xlarge")
    reported = run(policies[policy], [checked], config)
    assert len(reported) == 1 and reported[0].startswith(message) and "\n" not in reported[0], reported
