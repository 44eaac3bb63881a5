"""Settings and policies agree: whatever the settings accept renders a stack the pack's mandatory rules pass,
and what the pack would refuse the settings refuse first, with their own clear message."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from aiinfra.policy_runner import evaluate, mandatory
from contracts.instances import CPU_FAMILIES, INSTANCE_TYPES, profile_of

INSTANCE_RULES = {"instance-types-allowed", "accelerator-pools-matching-ami"}


def accepted_instance_types() -> list[str]:
    """Every instance type a pool may name: each general-purpose family (one size), every accelerated type."""
    return [f"{family}.large" for family in CPU_FAMILIES] + sorted(INSTANCE_TYPES)


def pool_for(instance_type: str) -> dict[str, Any]:
    return {"name": "t-" + instance_type.replace(".", "-"), "profile": profile_of(instance_type),
            "instanceTypes": [instance_type], "minSize": 0, "maxSize": 1}


def test_every_accepted_instance_type_renders_a_pool_the_instance_and_ami_rules_pass(
        synth_with: Callable, stack_pools_dev: list[dict[str, Any]]) -> None:
    extra = [pool_for(t) for t in accepted_instance_types()]
    assert len(extra) == len(CPU_FAMILIES) + len(INSTANCE_TYPES)
    graph = synth_with({"aiinfra:nodePools": stack_pools_dev + extra})
    groups = {r.inputs["nodeGroupName"] for r in graph.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert {f"aiinfra-dev-{p['name']}" for p in extra} <= groups
    failures = [f"{f.policy}: {f.name}: {f.message}" for f in mandatory(evaluate(graph))
                if f.policy in INSTANCE_RULES]
    assert failures == []


# The documented choices of the stack settings (README's settings tables), each tried in a dev variant.
DOCUMENTED = {
    "aiinfra:cluster.version": ["1.31", "1.32", "1.33", "1.34"],
    "aiinfra:network.natGateways": ["single", "per-az"],
    "aiinfra:streaming.enhancedMonitoring": ["PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"],
    "aiinfra:featureStore.engine+engineVersion": [("valkey", "7.2"), ("valkey", "8.0"), ("valkey", "8.1"),
                                                  ("redis", "6.2"), ("redis", "7.0"), ("redis", "7.1")],
    "aiinfra:featureStore.maxmemoryPolicy": ["volatile-lru", "allkeys-lru", "volatile-ttl", "noeviction"],
    "aiinfra:nodePools[].capacityType": ["on-demand", "spot"],
}


def variant(index: int, pools: list[dict[str, Any]]) -> dict[str, Any]:
    """The index-th documented value of every setting at once (cycling through shorter lists)."""
    pick = {key: values[index % len(values)] for key, values in DOCUMENTED.items()}
    engine, version = pick["aiinfra:featureStore.engine+engineVersion"]
    return {
        "aiinfra:cluster": {"version": pick["aiinfra:cluster.version"]},
        "aiinfra:network": {"natGateways": pick["aiinfra:network.natGateways"]},
        "aiinfra:streaming": {"enhancedMonitoring": pick["aiinfra:streaming.enhancedMonitoring"]},
        "aiinfra:featureStore": {"engine": engine, "engineVersion": version,
                                 "maxmemoryPolicy": pick["aiinfra:featureStore.maxmemoryPolicy"]},
        "aiinfra:nodePools": [{**p, "capacityType": pick["aiinfra:nodePools[].capacityType"]} for p in pools],
    }


@pytest.mark.slow
@pytest.mark.parametrize("index", range(max(len(v) for v in DOCUMENTED.values())))
def test_every_documented_setting_value_renders_a_stack_the_pack_passes(
        synth_with: Callable, stack_pools_dev: list[dict[str, Any]], index: int) -> None:
    graph = synth_with(variant(index, stack_pools_dev))
    assert [f"{f.policy}: {f.name}: {f.message}" for f in mandatory(evaluate(graph))] == []


REFUSED = [
    pytest.param({"aiinfra:nodePools": [{"podInstanceMetadata": True}]}, "imdsv2-hop-limit-1",
                 id="pod-instance-metadata"),
    pytest.param({"aiinfra:cluster": {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}},
                 "too wide for an API allow-list", id="public-api-to-the-world"),
]


@pytest.mark.parametrize(("change", "expected"), REFUSED)
def test_values_the_pack_would_fail_are_refused_by_the_settings(
        settings_error: Callable, stack_pools_dev: list[dict[str, Any]], change: dict[str, Any],
        expected: str) -> None:
    if "aiinfra:nodePools" in change:
        change = {"aiinfra:nodePools": [{**p, **change["aiinfra:nodePools"][0]} for p in stack_pools_dev]}
    assert expected in settings_error(change)


@pytest.fixture
def stack_pools_dev() -> list[dict[str, Any]]:
    import yaml

    from aiinfra.stackfile import ROOT

    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    return list(document["config"]["aiinfra:nodePools"])


def test_the_instance_list_covers_every_family_the_settings_take() -> None:
    families = {t.split(".")[0] for t in accepted_instance_types()}
    catalog = {t.family for t in INSTANCE_TYPES.values()}
    assert families == set(CPU_FAMILIES) | catalog
    assert list(itertools.chain(accepted_instance_types())) == accepted_instance_types()
