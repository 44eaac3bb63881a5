"""The pack as a whole: its `__main__`, the live adapter, the offline runner and its CLI, the stack-export
reader, cost and diagram - and the shipped stacks against every mandatory rule."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi_aws as aws
import pulumi_policy
import pytest
from pulumi_policy import (PolicyCustomTimeouts, PolicyProviderResource, PolicyResource, PolicyResourceOptions,
                           ResourceValidationArgs, StackValidationArgs)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from aiinfra.cli import main
from aiinfra.diagram import build, to_dot, to_mermaid
from aiinfra.engine import SECRET_SIG, SIG_KEY
from aiinfra.export import export_document
from aiinfra.policy_runner import evaluate, mandatory, resource_views
from aiinfra.state import graph_from_export
from policies.rules import ALL_RULES, Stack
from policies.rules.cost_model import estimate
from policies.rules.crossguard import to_policy
from policies.rules.tagging import taggable_types
from policy_programs import KEY_ARN, synth
from taggable_types import scan_taggable_types

ROOT = Path(__file__).resolve().parents[2]


def test_pack_main_builds_every_rule_with_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    built: dict[str, Any] = {}

    def fake_pack(name: str, policies: list[pulumi_policy.Policy], **kwargs: Any) -> None:
        built.update(name=name, policies=policies)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    runpy.run_path(str(ROOT / "policies" / "__main__.py"), run_name="__main__")
    policies = built["policies"]
    names = [p.name for p in policies]
    assert built["name"] == "aiinfra-guardrails"
    assert len(policies) >= 35 and len(names) == len(set(names))
    for p in policies:
        assert p.description and p.remediation_steps and p.severity is not None, p.name
        assert p.enforcement_level in (pulumi_policy.EnforcementLevel.MANDATORY, pulumi_policy.EnforcementLevel.ADVISORY)
    budget = next(p for p in policies if p.name == "monthly-budget")
    assert budget.config_schema.properties["monthlyBudgetUsd"]["default"] == 40000


def test_live_adapter_reports_through_crossguard_arguments() -> None:
    rule = next(r for r in ALL_RULES if r.name == "required-tags")
    reported: list[str] = []
    provider = PolicyProviderResource("pulumi:providers:aws", {"defaultTags": {"tags": {"environment": "dev"}}},
                                      "urn:pulumi:dev::aiinfra::pulumi:providers:aws::aws", "aws")
    args = ResourceValidationArgs("aws:sns/topic:Topic", {"tags": {"owner": "ml"}}, "urn:x", "alerts", None,
                                  provider, config={"requiredTags": ["environment", "owner", "cost-center"]})
    to_policy(rule).validate(args, lambda message, urn=None: reported.append(message))
    assert reported == ["missing required tag(s) cost-center"]


def _live_resource_policy(name: str, props: dict[str, Any]) -> list[str]:
    reported: list[str] = []
    rule = next(r for r in ALL_RULES if r.name == name)
    args = ResourceValidationArgs("aws:cloudwatch/logGroup:LogGroup", unknown_checking_proxy(props), "urn:x",
                                  "logs", None, None, config=rule.config())
    to_policy(rule).validate(args, lambda message, urn=None: reported.append(message))
    return reported


def test_live_adapter_defers_verdicts_that_depend_on_preview_unknowns() -> None:
    # The key ARN is unknown until the key exists: CrossGuard must say "can't run during preview", not fail.
    with pytest.raises(UnknownValueError) as caught:
        _live_resource_policy("log-group-cmk", {"kmsKeyId": UNKNOWN_STRING_VALUE, "retentionInDays": 30})
    assert ".kmsKeyId can't be known during preview" in caught.value.message
    assert _live_resource_policy("log-retention-minimum", {"kmsKeyId": UNKNOWN_STRING_VALUE, "retentionInDays": 30}) == []
    assert _live_resource_policy("log-group-cmk", {"retentionInDays": 30}) == [
        "log group is not encrypted with a customer-managed key (kmsKeyId)"]


def test_live_stack_policy_sees_property_dependencies() -> None:
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    vpc = PolicyResource("aws:ec2/vpc:Vpc", unknown_checking_proxy({"cidrBlock": "10.0.0.0/16"}), "urn:vpc", "vpc",
                         options, None, None, [], {})
    logged = PolicyResource("aws:ec2/vpc:Vpc", unknown_checking_proxy({"id": UNKNOWN_STRING_VALUE}), "urn:vpc2",
                            "vpc2", options, None, None, [], {})
    flow = PolicyResource("aws:ec2/flowLog:FlowLog", unknown_checking_proxy({"vpcId": UNKNOWN_STRING_VALUE}),
                          "urn:fl", "fl", options, None, None, [logged], {"vpcId": [logged]})
    reported: list[tuple[str, str | None]] = []
    rule = next(r for r in ALL_RULES if r.name == "vpc-flow-logs")
    to_policy(rule).validate(StackValidationArgs([vpc, logged, flow], config=rule.config()),
                             lambda message, urn=None: reported.append((message, urn)))
    assert reported == [("VPC vpc has no flow log", "urn:vpc")]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_pass_every_mandatory_rule(stack: str, stack_graph: Any) -> None:
    failures = [f"{f.policy}: {f.type} {f.name}: {f.message}" for f in mandatory(evaluate(stack_graph(stack)))]
    assert failures == []


def test_shipped_stacks_stay_within_the_default_budget(stack_graph: Any) -> None:
    result = estimate(Stack(resource_views(stack_graph("prod"))))
    assert 0 < result.total <= 40000
    assert {u.resource.type for u in result.unpriced} >= {"aws:s3/bucket:Bucket", "aws:cloudwatch/logGroup:LogGroup"}


def _bad_program() -> None:
    aws.elasticache.ReplicationGroup("features", replication_group_id="aiinfra-dev-features", description="f",
                                     node_type="cache.t4g.small", num_cache_clusters=1,
                                     security_group_ids=["sg-1"], subnet_group_name="cache")
    aws.ec2.SecurityGroup("web", vpc_id="vpc-1", ingress=[{"protocol": "tcp", "from_port": 22, "to_port": 22,
                                                           "cidr_blocks": ["0.0.0.0/0"]}])
    aws.kms.Key("key", description="no rotation")


def test_state_file_with_three_problems_fails_and_names_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(export_document(synth(_bad_program))))
    assert main(["policy", "--state", str(path), "--json"]) == 1
    found = {(f["policy"], f["name"]) for f in json.loads(capsys.readouterr().out) if f["enforcement"] == "mandatory"}
    assert {("elasticache-encryption", "features"), ("security-group-no-world-ingress", "web"),
            ("kms-key-rotation", "key")} <= found


def test_text_report_groups_by_severity_and_says_how_to_fix(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(export_document(synth(_bad_program))))
    assert main(["policy", "--state", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.index("CRITICAL (1)") < out.index("HIGH (") < out.index("How to fix")
    assert "  kms-key-rotation: Set enableKeyRotation=true." in out
    assert out.rstrip().endswith("Policy check FAILED: 5 mandatory violation(s), 4 advisory")


def test_reads_what_pulumi_stack_export_writes() -> None:
    """Secrets as ciphertext, provider references as urn::id, no propertyDependencies, outputs only."""
    provider = "urn:pulumi:prod::aiinfra::pulumi:providers:aws::default_7_0_0"
    document = {"version": 3, "deployment": {"manifest": {"version": "v3.200.0"}, "resources": [
        {"urn": "urn:pulumi:prod::aiinfra::pulumi:pulumi:Stack::aiinfra-prod", "type": "pulumi:pulumi:Stack",
         "custom": False, "outputs": {"region": "us-east-1"}},
        {"urn": provider, "type": "pulumi:providers:aws", "custom": True, "id": "04da-prov",
         "inputs": {"defaultTags": '{"tags":{"environment":"prod"}}'}},
        {"urn": "urn:pulumi:prod::aiinfra::aws:elasticache/replicationGroup:ReplicationGroup::features",
         "type": "aws:elasticache/replicationGroup:ReplicationGroup", "custom": True, "id": "features",
         "provider": f"{provider}::04da-prov",
         "outputs": {"atRestEncryptionEnabled": True, "kmsKeyId": KEY_ARN, "transitEncryptionEnabled": True,
                     "transitEncryptionMode": "required", "securityGroupIds": ["sg-1"], "subnetGroupName": "c",
                     "authToken": {SIG_KEY: SECRET_SIG, "ciphertext": "AAAA"}, "automaticFailoverEnabled": False}},
    ]}}
    graph = graph_from_export(document)
    assert (graph.project, graph.stack, graph.stack_outputs) == ("aiinfra", "prod", {"region": "us-east-1"})
    by_policy = {f.policy: f for f in evaluate(graph)}
    assert "elasticache-encryption" not in by_policy and "elasticache-auth" not in by_policy
    # The prod environment comes from the provider's default tags, found through the `urn::id` reference.
    assert by_policy["prod-data-services-multi-az"].name == "features"


@pytest.mark.parametrize("argv, message", [
    (["policy", "--state", "/nonexistent/state.json"], "no such file"),
    (["policy", "--state", "{state}", "--stack-file", "x.yaml"], "--stack-file goes with --stack"),
    (["policy", "--stack", "dev", "--config", "{config}"], "unknown policy 'no-such-policy'"),
    (["policy", "--stack", "dev", "--config", "{typo}"],
     "monthly-budget.monthlyBudget: not a setting of this policy; allowed: basis, monthlyBudgetUsd"),
    (["policy", "--stack", "dev", "--config", "{level}"], "kms-key-rotation: enforcement level 'blocking'"),
    # Values are checked against each policy's schema, never silently replaced by the default.
    (["policy", "--stack", "dev", "--config", "{abc}"],
     "abc.json: monthly-budget.monthlyBudgetUsd: 'abc' is not of type 'number'"),
    (["policy", "--stack", "dev", "--config", "{profile}"],
     "profile.json: instance-types-allowed.allowedInstanceTypes: 'gpu' is not one of ['cpu', 'nvidia-gpu', "),
    (["policy", "--stack", "dev", "--config", "{days}"],
     "days.json: log-retention-minimum.minimumRetentionDays: 0 is less than the minimum of 1"),
])
def test_bad_usage_exits_2_with_one_line(argv: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state.json").write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"no-such-policy": "advisory"}))
    (tmp_path / "typo.json").write_text(json.dumps({"monthly-budget": {"monthlyBudget": 5}}))
    (tmp_path / "level.json").write_text(json.dumps({"kms-key-rotation": "blocking"}))
    (tmp_path / "abc.json").write_text(json.dumps({"monthly-budget": {"monthlyBudgetUsd": "abc"}}))
    (tmp_path / "profile.json").write_text(json.dumps({"instance-types-allowed": {"allowedInstanceTypes": {"gpu": []}}}))
    (tmp_path / "days.json").write_text(json.dumps({"log-retention-minimum": {"minimumRetentionDays": 0}}))
    files = {name: tmp_path / f"{name}.json" for name in ("config", "typo", "level", "abc", "profile", "days")}
    argv = [a.format(state=tmp_path / "state.json", **files) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_policy_config_overrides_defaults_and_levels(tmp_path: Path, stack_graph: Any) -> None:
    graph = stack_graph("dev")
    tight = evaluate(graph, config={"monthly-budget": {"monthlyBudgetUsd": 10}})
    assert any(f.policy == "monthly-budget" and "exceeds the budget $10.00" in f.message for f in mandatory(tight))
    relaxed = evaluate(graph, config={"all": "advisory", "monthly-budget": {"monthlyBudgetUsd": 10}})
    assert mandatory(relaxed) == [] and any(f.policy == "monthly-budget" for f in relaxed)
    assert not any(f.policy == "log-retention-minimum" for f in evaluate(graph, config={"log-retention-minimum": "disabled"}))


def test_policy_command_on_prod_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--stack", "prod"]) == 0
    assert "Policy check passed: 0 mandatory violation(s)" in capsys.readouterr().out


def test_cost_prices_spot_separately_and_lists_unknown_types() -> None:
    def program() -> None:
        for name, capacity, kind in (("batch", "SPOT", "m6i.xlarge"), ("web", "ON_DEMAND", "m6i.xlarge"),
                                     ("odd", "ON_DEMAND", "x9.huge")):
            aws.eks.NodeGroup(name, cluster_name="c", node_role_arn="arn:aws:iam::123456789012:role/n",
                              subnet_ids=["s"], instance_types=[kind], capacity_type=capacity,
                              scaling_config={"desired_size": 2, "min_size": 1, "max_size": 3})
        aws.s3.Bucket("data")
    result = estimate(Stack(resource_views(synth(program))))
    lines = {line.resource.name: line for line in result.lines}
    # Floor at minSize, ceiling at maxSize: the desired size is only where the group starts.
    assert (lines["web"].monthly, lines["web"].ceiling) == (round(0.192 * 730, 2), round(3 * 0.192 * 730, 2))
    assert lines["web"].pricing == "on-demand"
    assert lines["batch"].monthly == round(0.0792 * 730, 2) and lines["batch"].pricing == "spot"
    unpriced = {u.resource.name: u.reason for u in result.unpriced}
    assert "no on-demand price for x9.huge" in unpriced["odd"] and unpriced["data"].startswith("usage-based")


def test_prod_cost_prices_the_training_pool_and_root_volumes_and_lists_the_rest(stack_graph: Any) -> None:
    result = estimate(Stack(resource_views(stack_graph("prod"))))
    lines = {(line.resource.type, line.resource.name): line for line in result.lines}
    train = lines[("aws:eks/nodeGroup:NodeGroup", "node-pools-train")]
    assert train.monthly == 0 and train.ceiling == round(4 * 21.5 * 730, 2)
    assert train.detail == "min 0 .. max 4 x trn1.32xlarge at $21.5/h"
    volumes = lines[("aws:ec2/launchTemplate:LaunchTemplate", "node-pools-train")]
    # 1000 GiB gp3 at $0.08 plus 125 MB/s above the included 125 at $0.04, on each of up to 4 nodes.
    assert volumes.ceiling == 4 * (1000 * 0.08 + 125 * 0.04) and volumes.monthly == 0
    serve_volumes = lines[("aws:ec2/launchTemplate:LaunchTemplate", "node-pools-serve")]
    assert (serve_volumes.monthly, serve_volumes.ceiling) == (3 * 200 * 0.08, 12 * 200 * 0.08)
    assert result.ceiling > result.total > 0
    assert {u.resource.type for u in result.unpriced} >= {"aws:s3/bucket:Bucket", "aws:cloudwatch/logGroup:LogGroup"}


def test_cost_command_prints_total_and_breakdown(capsys: pytest.CaptureFixture[str], stack_graph: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import aiinfra.cost

    monkeypatch.setattr(aiinfra.cost, "synthesize_from_args", lambda args: stack_graph(args.stack))
    assert main(["cost", "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Estimated monthly cost of aiinfra/prod: $") and "node_pools:NodePools" in out
    assert "at the floor (scaled pools at their minimum), up to $" in out
    assert "min 0 .. max 4 x trn1.32xlarge at $21.5/h" in out and "EBS 1000 GiB gp3 per node" in out
    assert "Unpriced (" in out and "Prices: us-east-1, " in out and "EBS prices: 2025-11-01" in out


def test_diagram_groups_components_and_draws_data_paths(stack_graph: Any) -> None:
    diagram = build(stack_graph("prod"))
    labels = {n.id: n.label for nodes in diagram.components.values() for n in nodes}
    assert {"network", "storage", "encryption", "inference"} <= set(diagram.components)
    edges = {(labels[s], labels[t]) for s, t in diagram.edges}
    assert any(s.startswith("Model<br/>") and t == "Bucket<br/>storage-models" for s, t in edges)
    assert any(s.startswith("Endpoint<br/>") and t.startswith("EndpointConfiguration<br/>") for s, t in edges)
    mermaid = to_mermaid(diagram)
    assert mermaid.startswith("flowchart LR") and mermaid.count("subgraph") == mermaid.count("  end")
    dot = to_dot(diagram)
    assert dot.count("{") == dot.count("}") and "->" in dot


def test_taggable_types_file_matches_installed_provider() -> None:
    assert sorted(taggable_types()) == scan_taggable_types()


def test_export_round_trip_gives_the_same_verdicts(stack_graph: Any) -> None:
    graph = stack_graph("prod")
    reread = graph_from_export(json.loads(json.dumps(export_document(graph))))
    assert len(reread) == len(graph) and reread.stack_outputs == graph.stack_outputs
    assert evaluate(reread) == evaluate(graph)


def test_diagram_from_an_export_without_dependencies_uses_values(stack_graph: Any) -> None:
    document = export_document(stack_graph("prod"))
    for entry in document["deployment"]["resources"]:
        entry.pop("propertyDependencies", None)
    diagram = build(graph_from_export(document))
    labels = {n.id: n.label for nodes in diagram.components.values() for n in nodes}
    edges = {(labels[s], labels[t]) for s, t in diagram.edges}
    assert ("Endpoint<br/>inference-text-classifier", "EndpointConfiguration<br/>inference-text-classifier-config") in edges
    assert any(s.startswith("Model<br/>") and t == "Bucket<br/>storage-models" for s, t in edges)


@pytest.mark.parametrize("document, message", [
    ([], "expected a JSON object with a 'deployment'"),
    ({"deployment": {"resources": {}}}, "'deployment.resources' must be a list"),
    ({"deployment": {"resources": [{"type": "aws:kms/key:Key"}]}}, "resources[0] needs 'urn' and 'type'"),
    ({"deployment": {"resources": [{"urn": "not-a-urn", "type": "aws:kms/key:Key"}]}}, "'not-a-urn' is not a Pulumi URN"),
])
def test_unreadable_state_documents_are_named(document: Any, message: str) -> None:
    from aiinfra.state import StateError

    with pytest.raises(StateError) as caught:
        graph_from_export(document, source="state.json")
    assert str(caught.value).startswith("state.json: ") and message in str(caught.value)
