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
        # The pools pass; only the bare NodePool, which restricts no instance type, is reported.
        assert all(m.startswith(("NodePool bare", "NodePool restricts no instance type")) for m in reported[name]), name


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
    assert run(policy, [serving]) == ["prod serving node group batch runs on SPOT capacity"]
    assert run(policy, [named_serve, on_demand, dev]) == []


def test_budget_prices_from_the_packs_own_table(policies: dict[str, pulumi_policy.Policy]) -> None:
    # Scaled from zero: nothing at the floor (the default basis), four p5.48xlarge at the ceiling.
    big = [pool("train", "p5.48xlarge", scalingConfig={"desiredSize": 0, "minSize": 0, "maxSize": 4})]
    assert run(policies["monthly-budget"], big) == []
    [message] = run(policies["monthly-budget"], big, {"basis": "ceiling"})
    assert message == ("estimated monthly cost $160,716.80 (ceiling: scaled pools at their limits) exceeds the budget "
                       "$40,000.00 (largest: train $160,717)")
    assert run(policies["monthly-budget"], big, {"monthlyBudgetUsd": 10_000_000, "basis": "ceiling"}) == []


@pytest.mark.parametrize(("policy", "config", "message"), [
    ("monthly-budget", {"monthlyBudgetUsd": "abc"},
     "policy config refused: monthly-budget.monthlyBudgetUsd: 'abc' is not of type 'number'"),
    ("monthly-budget", {"basis": "desired"},
     "policy config refused: monthly-budget.basis: 'desired' is not one of ['floor', 'ceiling']"),
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


# --- Karpenter, capacity and priorities ----------------------------------------------------------------------

NODE_CLASS, NODE_POOL = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "kubernetes:karpenter.sh/v1:NodePool"
KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


def node_class(name: str, stack: str = "dev", **spec: Any) -> PolicyResource:
    base: dict[str, Any] = {
        "amiSelectorTerms": [{"alias": "al2023@v20251101"}],
        "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {
            "volumeSize": "1000Gi", "volumeType": "gp3", "encrypted": True, "kmsKeyID": KEY}}]}
    return resource(NODE_CLASS, f"{name}-class", {"metadata": {"name": name}, "spec": {**base, **spec}}, stack)


def node_pool(name: str, types: list[str], stack: str = "dev", *, capacity: list[str] | None = None,
              limits: Mapping[str, str] | None = None, taint: bool = True, role: str = "training",
              requirements: list[dict[str, Any]] | None = None) -> PolicyResource:
    profile = PROFILES[next(p for p, spec in PROFILES.items() if types[0].split(".")[0] in spec.families)]
    reqs = requirements if requirements is not None else [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": types}]
    if capacity:
        reqs = [*reqs, {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity}]
    spec: dict[str, Any] = {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name},
                            "requirements": reqs,
                            "taints": [{"key": profile.taint_key, "value": "true", "effect": "NoSchedule"}]
                            if taint and profile.taint_key else []}
    return resource(NODE_POOL, f"{name}-pool", {"metadata": {"name": name}, "spec": {
        "template": {"metadata": {"labels": {"aiinfra.io/node-pool": name, ROLE_LABEL: role}}, "spec": spec},
        "limits": dict(limits if limits is not None else {"cpu": "512", "aws.amazon.com/neuron": "64"})}}, stack)


def job(name: str, pool_name: str, parallelism: int, devices: int, namespace: str = "training",
        **pod: Any) -> PolicyResource:
    container = {"name": "train", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/training:1.0.0",
                 "resources": {"limits": {"aws.amazon.com/neuron": str(devices)}}}
    return resource("kubernetes:batch/v1:Job", name, {"metadata": {"name": name, "namespace": namespace}, "spec": {
        "parallelism": parallelism, "template": {"spec": {
            "nodeSelector": {"aiinfra.io/node-pool": pool_name}, "containers": [container], **pod}}}})


def test_karpenter_node_classes_get_the_managed_groups_encryption_and_imds_guarantees(
        policies: dict[str, pulumi_policy.Policy]) -> None:
    good = node_class("train")
    unencrypted = node_class("a", blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {"volumeSize": "100Gi"}}])
    aws_key = node_class("b", blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {"encrypted": True}}])
    ami_default = node_class("c", blockDeviceMappings=[])
    ebs = policies["launch-template-ebs-encrypted"]
    assert run(ebs, [good]) == []
    assert run(ebs, [unencrypted]) == ["EBS volume /dev/xvda is not encrypted (ebs.encrypted must be true)"]
    assert run(ebs, [aws_key]) == ["EBS volume /dev/xvda is encrypted with the AWS-managed key; set ebs.kmsKeyID"]
    assert run(ebs, [ami_default]) == [
        "declares no block device mappings, so the root volume is not encrypted with a customer key"]
    imds = policies["imdsv2-hop-limit-1"]
    assert run(imds, [good]) == []
    assert run(imds, [node_class("d", metadataOptions={"httpTokens": "optional", "httpPutResponseHopLimit": 2})]) == [
        "IMDSv1 is allowed (metadataOptions.httpTokens = 'optional'; allowed: 'required')",
        "metadata hop limit is 2; containers can reach the node's credentials (allowed: 1)"]


def test_karpenter_node_pools_are_tainted_on_the_alias_ami_and_on_the_allow_list(
        policies: dict[str, pulumi_policy.Policy]) -> None:
    good = [node_class("train"), node_pool("train", ["trn1.32xlarge"])]
    for name in ("accelerator-pools-tainted", "accelerator-pools-matching-ami", "instance-types-allowed",
                 "karpenter-nodepool-limits"):
        assert run(policies[name], good) == [], name
    untainted = [node_class("train"), node_pool("train", ["trn1.32xlarge"], taint=False)]
    assert run(policies["accelerator-pools-tainted"], untainted) == [
        "trn1.32xlarge NodePool train has no NoSchedule taint aws.amazon.com/neuron or aws.amazon.com/neuroncore"]
    by_id = [node_class("train", amiSelectorTerms=[{"id": "ami-0123456789abcdef0"}]), node_pool("train", ["trn1.32xlarge"])]
    assert run(policies["accelerator-pools-matching-ami"], by_id) == [
        "NodePool train's EC2NodeClass train selects AMI (id/name/tags); allowed: alias al2023@<release>"]
    assert run(policies["accelerator-pools-matching-ami"], [node_pool("train", ["trn1.32xlarge"])]) == [
        "NodePool train names EC2NodeClass train, which the stack does not declare (spec.template.spec.nodeClassRef)"]
    allowed = policies["instance-types-allowed"]
    assert run(allowed, [node_pool("gpu", ["p4de.24xlarge"])]) == [
        "instance type p4de.24xlarge is not allowed for profile nvidia-gpu; allowed: " + ", ".join(
            t for t in sorted(INSTANCE_TYPES, key=list(INSTANCE_TYPES).index) if PROFILES["nvidia-gpu"].families.count(
                t.split(".")[0]))]
    family = [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5"]}]
    [message] = run(allowed, [node_pool("gpu", ["g5.xlarge"], requirements=family)])
    assert message.startswith("NodePool allows every g5 type (karpenter.k8s.aws/instance-family) but only g5.xlarge")
    assert run(allowed, [node_pool("web", ["m6i.xlarge"], requirements=[
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m6i", "c7a"]}])]) == []
    assert run(allowed, [node_pool("any", ["m6i.xlarge"], requirements=[])]) == [
        "NodePool restricts no instance type (node.kubernetes.io/instance-type or karpenter.k8s.aws/instance-family "
        "In requirement), so Karpenter may launch any type"]


def test_karpenter_serving_pools_stay_on_demand_in_prod_and_node_pools_are_bounded(
        policies: dict[str, pulumi_policy.Policy]) -> None:
    spot = policies["no-spot-for-prod-serving"]
    serving = node_pool("serve", ["inf2.8xlarge"], "prod", capacity=["spot", "on-demand"], role=SERVING_ROLE)
    assert run(spot, [serving]) == ["prod serving NodePool serve runs on SPOT capacity"]
    assert run(spot, [node_pool("serve", ["inf2.8xlarge"], "prod", role=SERVING_ROLE),
                      node_pool("train", ["trn1.32xlarge"], "prod", capacity=["spot"]),
                      node_pool("serve", ["inf2.8xlarge"], "dev", capacity=["spot"], role=SERVING_ROLE)]) == []
    limits = policies["karpenter-nodepool-limits"]
    assert run(limits, [node_pool("train", ["trn1.32xlarge"], limits={})]) == [
        "NodePool train sets no spec.limits on cpu, aws.amazon.com/neuron"]
    assert run(limits, [node_pool("web", ["m6i.xlarge"], limits={"cpu": "64"})]) == []


def test_a_training_job_fits_its_karpenter_pool_within_its_limits_or_fails_in_one_line(
        policies: dict[str, pulumi_policy.Policy]) -> None:
    fit = policies["workloads-fit-their-pool"]
    # 64 Neuron devices / 16 per trn1.32xlarge = 4 nodes; cpu 512 / 128 = 4 nodes: 4 ranks of 16 devices fit.
    pool_ = [node_class("train"), node_pool("train", ["trn1.32xlarge"])]
    assert run(fit, [*pool_, job("trainer", "train", 4, 16)]) == []
    [message] = run(fit, [*pool_, job("trainer", "train", 5, 16)])
    assert message == ("Job training/trainer: up to 5 pods (parallelism) x 16 aws.amazon.com/neuron, but node pool "
                       "train (NodePool train) holds 4 such pods at its limit (limits aws.amazon.com/neuron=64, "
                       "cpu=512: 4 x trn1.32xlarge x 1 pod(s) per node)")
    # The cpu limit binds before the device limit: 256 vCPUs are 2 trn1.32xlarge nodes.
    tight = [node_class("train"), node_pool("train", ["trn1.32xlarge"], limits={"cpu": "256", "aws.amazon.com/neuron": "64"})]
    [message] = run(fit, [*tight, job("trainer", "train", 4, 16)])
    assert "holds 2 such pods at its limit" in message and "\n" not in message
    [message] = run(fit, [*pool_, job("trainer", "train", 1, 32)])
    assert message == ("Job training/trainer cannot run on node pool train (NodePool train): a pod needs 32 "
                       "aws.amazon.com/neuron, more than any of trn1.32xlarge offers")
    [message] = run(fit, [job("trainer", "elsewhere", 1, 1)])
    assert "selects node pool elsewhere (aiinfra.io/node-pool), which no node group or NodePool" in message


def test_a_serving_maximum_is_checked_against_a_managed_group_at_max_size(
        policies: dict[str, pulumi_policy.Policy]) -> None:
    fit = policies["workloads-fit-their-pool"]
    serve = pool("serve", "inf2.8xlarge", "prod", scalingConfig={"desiredSize": 3, "minSize": 3, "maxSize": 3})
    server = resource("kubernetes:apps/v1:Deployment", "server", {
        "metadata": {"name": "model-server", "namespace": "serving"}, "spec": {"replicas": 3, "template": {"spec": {
            "nodeSelector": {"aiinfra.io/node-pool": "serve"},
            "containers": [{"name": "s", "resources": {"requests": {"aws.amazon.com/neuroncore": "1"}}}]}}}})
    hpa = resource("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "hpa", {
        "metadata": {"name": "model-server", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "model-server"}, "maxReplicas": 12}})
    assert run(fit, [serve, server]) == []
    assert run(fit, [serve, server, hpa]) == [
        "Deployment serving/model-server: up to 12 pods (HorizontalPodAutoscaler serving/model-server maxReplicas) x "
        "1 aws.amazon.com/neuroncore, but node pool serve (node group serve) holds 6 such pods at its limit "
        "(maxSize 3: 3 x inf2.8xlarge x 2 pod(s) per node)"]
    # Two workloads that each fit alone but not together on one pool.
    compile_job = job("compiler", "serve", 1, 1)
    small = pool("serve", "inf2.8xlarge", "prod", scalingConfig={"desiredSize": 1, "minSize": 1, "maxSize": 1})
    [message] = run(fit, [small, compile_job, job("trainer", "serve", 1, 1)])
    assert message.startswith("node pool serve (node group serve) holds 1 aws.amazon.com/neuron at its limit")


def test_workload_pods_name_a_declared_priority_class(policies: dict[str, pulumi_policy.Policy]) -> None:
    rule = policies["workload-pods-priority-class"]
    declared = resource("kubernetes:scheduling.k8s.io/v1:PriorityClass", "pc",
                        {"metadata": {"name": "aiinfra-training"}, "value": 100})
    assert rule.enforcement_level == pulumi_policy.EnforcementLevel.ADVISORY
    assert run(rule, [declared, job("trainer", "train", 1, 1, priorityClassName="aiinfra-training"),
                      job("tool", "train", 1, 1, namespace="tools")]) == []
    assert run(rule, [declared, job("trainer", "train", 1, 1)]) == ["Job training/trainer names no priorityClassName"]
    assert run(rule, [job("trainer", "train", 1, 1, priorityClassName="aiinfra-training")]) == [
        "Job training/trainer names priorityClassName 'aiinfra-training', which no PriorityClass in the stack "
        "declares (declared: none)"]


def test_karpenter_pools_are_priced_from_their_limits_with_their_root_volumes() -> None:
    from policies.rules.core import Resource, Stack
    from policies.rules.cost_model import estimate

    def view(r: PolicyResource) -> Resource:
        return Resource(r.resource_type, r.props, r.urn, r.name)

    train = node_pool("train", ["trn1.32xlarge"], capacity=["on-demand"])
    unbounded = node_pool("open", ["trn1.32xlarge"], limits={})
    result = estimate(Stack([view(node_class("train")), view(train), view(unbounded)]))
    lines = {line.resource.type: line for line in result.lines}
    pool_line, volumes = lines[NODE_POOL], lines[NODE_CLASS]
    # limits cpu 512 / 128 and neuron 64 / 16: 4 nodes at $21.5/h; 1000 GiB gp3 at $0.08 per node.
    assert (pool_line.monthly, pool_line.ceiling) == (0.0, round(4 * 21.5 * 730, 2))
    assert pool_line.detail == "0 nodes at rest .. up to 4 x trn1.32xlarge at limit at $21.5/h"
    assert (volumes.monthly, volumes.ceiling) == (0.0, 4 * 1000 * 0.08)
    assert [u.reason for u in result.unpriced] == ["Karpenter NodePool open: no spec.limits bound it"]
