"""The offline engine: it runs the real program, records what the engine would, and exports Pulumi's format."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from aiinfra.engine import SECRET_MARK, SECRET_SIG, SIG_KEY, run_program
from aiinfra.export import REDACTED_CIPHERTEXT, export_document
from aiinfra.stackfile import ROOT, StackConfig

CONFIG = StackConfig("aiinfra", "unit", "inline", {"aws:region": "us-east-1"}, ())


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiinfra", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_records_parent_provider_dependencies_and_secrets() -> None:
    def program() -> None:
        provider = aws.Provider("p", region="us-east-1", default_tags={"tags": {"owner": "team"}})
        key = aws.kms.Key("k", enable_key_rotation=True, opts=pulumi.ResourceOptions(provider=provider))
        aws.secretsmanager.SecretVersion(
            "s", secret_id="secret", secret_string=pulumi.Output.secret("hunter2"),
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[key]))
        pulumi.export("keyArn", key.arn)

    graph = run_program(program, CONFIG)
    key = graph.of_type("aws:kms/key:Key")[0]
    secret = graph.of_type("aws:secretsmanager/secretVersion:SecretVersion")[0]
    assert key.provider.startswith("urn:pulumi:unit::aiinfra::pulumi:providers:aws::p::")
    assert key.outputs["arn"] == f"arn:aws:kms:us-east-1:123456789012:key/{key.id}"
    assert key.outputs["tagsAll"] == {"owner": "team"}
    assert key.urn in secret.dependencies
    assert secret.inputs["secretString"] == SECRET_MARK and secret.outputs["secretString"] == SECRET_MARK
    assert graph.stack_outputs == {"keyArn": key.outputs["arn"]}
    exported = export_document(graph)["deployment"]["resources"]
    entry = next(r for r in exported if r["type"] == "aws:secretsmanager/secretVersion:SecretVersion")
    assert entry["inputs"]["secretString"] == {SIG_KEY: SECRET_SIG, "ciphertext": REDACTED_CIPHERTEXT}
    assert "hunter2" not in json.dumps(exported)


def test_provider_calls_answer_what_was_asked() -> None:
    """The mock's answers follow the request (region, Kubernetes version, AMI variant), not a fixed value."""
    seen: dict[str, object] = {}
    base = "/aws/service/eks/optimized-ami/{}/amazon-linux-2023/x86_64/{}/recommended/{}"

    def program() -> None:
        zones = aws.get_availability_zones_output(state="available")
        asked = {(version, variant, what): aws.ssm.get_parameter_output(name=base.format(version, variant, what)).value
                 for version in ("1.31", "1.33") for variant in ("standard", "neuron")
                 for what in ("release_version", "image_id")}
        identity = aws.get_caller_identity_output()
        pulumi.Output.all(zones.names, zones.zone_ids, identity.account_id, pulumi.Output.all(*asked.values())).apply(
            lambda values: seen.update(names=values[0], ids=values[1], account=values[2],
                                       ssm=dict(zip(asked, values[3]))))

    run_program(program, StackConfig("aiinfra", "unit", "inline", {"aws:region": "eu-west-1"}, ()))
    assert seen["names"][:3] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert seen["ids"][0] == "euw1-az1"
    assert seen["account"] == "123456789012"
    ssm = seen["ssm"]
    for (version, variant, what), value in ssm.items():
        if what == "release_version":
            assert value.startswith(f"{version}."), (version, variant, value)
        else:
            assert value.startswith("ami-"), value
    images = [v for (_, _, what), v in ssm.items() if what == "image_id"]
    assert len(set(images)) == len(images), "each version and variant has its own AMI"


def test_node_groups_pin_the_release_of_their_clusters_version(stack_graph: Callable) -> None:
    """The program asks for the AMI release of its own cluster's Kubernetes version and pool's AMI type."""
    for stack in ("dev", "prod"):
        graph = stack_graph(stack)
        (cluster,) = graph.of_type("aws:eks/cluster:Cluster")
        groups = graph.of_type("aws:eks/nodeGroup:NodeGroup")
        assert groups
        for group in groups:
            assert group.inputs["version"] == cluster.inputs["version"]
            assert group.inputs["releaseVersion"].startswith(cluster.inputs["version"] + "."), group.name


def test_unknown_provider_call_fails_loudly() -> None:
    def program() -> None:
        aws.ec2.get_vpc_output(default=True).id.apply(lambda _: None)

    with pytest.raises(Exception, match="do not answer aws:ec2/getVpc:getVpc"):
        run_program(program, CONFIG)


def test_synth_is_deterministic_and_isolated_between_stacks(stack_graph: Callable) -> None:
    from aiinfra.engine import synthesize

    again = synthesize("dev")
    first = stack_graph("dev")
    assert [(r.urn, r.id, r.dependencies) for r in again] == [(r.urn, r.id, r.dependencies) for r in first]
    prod_urns = {r.urn for r in stack_graph("prod")}
    assert all(urn.startswith("urn:pulumi:prod::aiinfra::") for urn in prod_urns)


def test_export_document_has_pulumis_shape(stack_graph: Callable) -> None:
    document = export_document(stack_graph("prod"))
    assert document["version"] == 3
    resources = document["deployment"]["resources"]
    assert resources[0]["type"] == "pulumi:pulumi:Stack" and resources[0]["custom"] is False
    assert resources[0]["outputs"]["vpcId"].startswith("vpc-")
    urns = {r["urn"] for r in resources}
    for resource in resources:
        assert {"urn", "type", "custom", "inputs", "outputs"} <= set(resource)
        if "parent" in resource:
            assert resource["parent"] in urns
        if resource["custom"] and not resource["type"].startswith("pulumi:providers:"):
            assert resource["provider"].rsplit("::", 1)[0] in urns and resource["id"]
    json.dumps(document)


# --- the command line ------------------------------------------------------------------------------------------
def test_cli_preview_lists_the_foundation() -> None:
    result = run_cli("preview", "--stack", "dev")
    assert result.returncode == 0, result.stderr
    for expected in ("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/vpcEndpoint:VpcEndpoint",
                     "aws:kms/key:Key", "aws:s3/bucket:Bucket", "vpcId"):
        assert expected in result.stdout


def test_cli_export_writes_a_readable_document(tmp_path: Path) -> None:
    out = tmp_path / "prod.json"
    result = run_cli("export", "--stack", "prod", "--out", str(out))
    assert result.returncode == 0, result.stderr
    resources = json.loads(out.read_text())["deployment"]["resources"]
    keys = [r for r in resources if r["type"] == "aws:kms/key:Key"]
    endpoints = [r for r in resources if r["type"] == "aws:ec2/vpcEndpoint:VpcEndpoint"
                 and r["inputs"]["vpcEndpointType"] == "Interface"]
    assert keys and all(k["inputs"]["enableKeyRotation"] is True for k in keys)
    assert endpoints and all(e["inputs"]["privateDnsEnabled"] is True for e in endpoints)


def test_cli_unknown_stack_is_one_line_exit_2() -> None:
    result = run_cli("preview", "--stack", "nosuch")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: no stack named 'nosuch': stacks/Pulumi.nosuch.yaml does not exist; "
                                     "stacks: dev, prod, staging")
    assert "Traceback" not in result.stderr


def test_cli_misspelled_key_is_one_line_exit_2(write_stack: Callable) -> None:
    path = write_stack({"aiinfra:network": {"azCuont": 2}}, base="dev")
    result = run_cli("preview", "--stack", "dev", "--stack-file", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"error: {path}: aiinfra:network.azCuont: unknown key; did you mean 'azCount'?"


def test_cli_invalid_yaml_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("config:\n  aiinfra:environment: [dev\n")
    result = run_cli("export", "--stack", "dev", "--stack-file", str(path), "--out", "-")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {path}: not valid YAML at line")
