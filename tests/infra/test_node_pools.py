"""Node pools: the profile decides AMI, taint and labels; launch templates enforce IMDSv2 and encrypted gp3;
EFA pools get one interface per network card, a cluster placement group and a single AZ."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.accelerators import ami_parameter
from compute_graph import (
    INGRESS,
    EGRESS,
    PLACEMENT_GROUP,
    SECURITY_GROUP,
    launch_template,
    node_groups,
    one,
    stack_document,
    stack_pools,
    subnet_zones,
)

STACKS = ("dev", "staging", "prod")
AMI = {"cpu": "AL2023_x86_64_STANDARD", "nvidia-gpu": "AL2023_x86_64_NVIDIA", "trainium": "AL2023_x86_64_NEURON",
       "inferentia": "AL2023_x86_64_NEURON"}
TAINT = {"nvidia-gpu": {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"},
         "trainium": {"key": "aws.amazon.com/neuron", "value": "true", "effect": "NO_SCHEDULE"},
         "inferentia": {"key": "aws.amazon.com/neuron", "value": "true", "effect": "NO_SCHEDULE"}}
ACCELERATOR = {"nvidia-gpu": "nvidia", "trainium": "neuron", "inferentia": "neuron"}

# Extra pools on prod: a Capacity Block of p5s (32 network cards), a trn1n pool pinned to the third AZ, and a
# GPU pool with its own label and taint.
EXTRA_POOLS = [
    {"name": "p5-block", "profile": "nvidia-gpu", "instanceTypes": ["p5.48xlarge"], "minSize": 0, "maxSize": 2,
     "capacityType": "capacity-block", "capacityReservationId": "cr-0123456789abcdef0", "diskSizeGib": 500},
    {"name": "train-n", "profile": "trainium", "instanceTypes": ["trn1n.32xlarge"], "minSize": 0, "maxSize": 2,
     "efaAvailabilityZone": 2},
    {"name": "gpu-agents", "profile": "nvidia-gpu", "instanceTypes": ["g5.xlarge"], "minSize": 0, "maxSize": 1,
     "labels": {"team": "vision"},
     "taints": [{"key": "dedicated", "value": "vision", "effect": "NoSchedule"}]},
]


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """prod with the extra pools: one synth shared by this module's variant tests."""
    from aiinfra.engine import synthesize

    document = stack_document("prod")
    document["config"]["aiinfra:nodePools"] += EXTRA_POOLS
    path = tmp_path_factory.mktemp("extended") / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return synthesize("prod", stack_file=path)


@pytest.mark.parametrize("stack", STACKS)
def test_every_configured_pool_becomes_one_node_group(stack_graph, stack):
    groups = node_groups(stack_graph(stack))
    assert set(groups) == set(stack_pools(stack))
    for name, group in groups.items():
        assert group.inputs["nodeGroupName"] == f"aiinfra-{stack}-{name}"


@pytest.mark.parametrize("stack", STACKS)
def test_profile_decides_ami_type_taint_and_labels(stack_graph, stack):
    pools = stack_pools(stack)
    for name, group in node_groups(stack_graph(stack)).items():
        profile = pools[name]["profile"]
        assert group.inputs["amiType"] == AMI[profile], name
        taints = group.inputs.get("taints") or []
        assert taints == ([TAINT[profile]] if profile in TAINT else []), name
        labels = group.inputs["labels"]
        assert labels.get("accelerator") == ACCELERATOR.get(profile), name
        assert labels["aiinfra.io/node-pool"] == name


def test_no_pool_carries_a_second_neuroncore_taint(stack_graph):
    for stack in STACKS:
        for group in node_groups(stack_graph(stack)).values():
            keys = [t["key"] for t in group.inputs.get("taints") or []]
            assert "aws.amazon.com/neuroncore" not in keys
            assert len(keys) == len(set(keys))


@pytest.mark.parametrize("stack", STACKS)
def test_node_groups_run_the_clusters_version_and_pin_an_ami_release(stack_graph, stack):
    # Which SSM parameter each pool reads is checked on NodePools alone (test_components_alone), where the
    # provider calls are recorded; here: every group follows the cluster's version and names a release.
    for group in node_groups(stack_graph(stack)).values():
        assert group.inputs["version"] == "1.33"
        assert group.inputs["releaseVersion"], group.name


def test_ami_parameter_paths_name_the_accelerated_variant():
    assert ami_parameter("1.33", "trainium", "release_version") == \
        "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/neuron/recommended/release_version"
    assert "/x86_64/neuron/" in ami_parameter("1.33", "inferentia", "image_id")
    assert "/x86_64/nvidia/" in ami_parameter("1.33", "nvidia-gpu", "image_id")
    assert "/x86_64/standard/" in ami_parameter("1.32", "cpu", "image_id")


@pytest.mark.parametrize("stack", STACKS)
def test_every_launch_template_requires_imdsv2_and_encrypted_gp3(stack_graph, stack):
    graph = stack_graph(stack)
    pools = stack_pools(stack)
    for name, group in node_groups(graph).items():
        template = launch_template(graph, group).inputs
        assert template["metadataOptions"]["httpTokens"] == "required"
        assert template["metadataOptions"]["httpEndpoint"] == "enabled"
        assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
        [volume] = template["blockDeviceMappings"]
        assert volume["deviceName"] == "/dev/xvda"
        assert volume["ebs"]["volumeType"] == "gp3"
        assert volume["ebs"]["encrypted"] == "true"
        assert volume["ebs"]["kmsKeyId"] == graph.stack_outputs["dataKeyArn"]
        assert volume["ebs"]["volumeSize"] == pools[name]["diskSizeGib"]
        # With a launch template the disk lives there; the node group must not set one too.
        assert "diskSize" not in group.inputs


@pytest.mark.parametrize("stack,pool,cards", [("staging", "train", 8), ("prod", "train", 8)])
def test_efa_pools_get_one_interface_per_card_a_placement_group_and_one_az(stack_graph, stack, pool, cards):
    graph = stack_graph(stack)
    group = node_groups(graph)[pool]
    template = launch_template(graph, group).inputs
    interfaces = template["networkInterfaces"]
    assert [i["networkCardIndex"] for i in interfaces] == list(range(cards))
    assert all(i["interfaceType"] == "efa" for i in interfaces)
    assert [i["deviceIndex"] for i in interfaces] == [0] + [1] * (cards - 1)
    assert "vpcSecurityGroupIds" not in template
    placement = one(graph, PLACEMENT_GROUP)
    assert placement.inputs["strategy"] == "cluster"
    assert template["placement"]["groupName"] == placement.outputs["name"]
    zones = subnet_zones(graph)
    assert len(group.inputs["subnetIds"]) == 1
    assert {zones[s] for s in group.inputs["subnetIds"]} == {"us-east-1a"}
    assert group.inputs["labels"]["vpc.amazonaws.com/efa.present"] == "true"


@pytest.mark.parametrize("stack", ("staging", "prod"))
def test_efa_security_group_admits_and_reaches_only_itself(stack_graph, stack):
    graph = stack_graph(stack)
    group = one(graph, SECURITY_GROUP, "node-pools-train-efa")
    ingress = [r for r in graph.of_type(INGRESS) if r.inputs["securityGroupId"] == group.id]
    egress = [r for r in graph.of_type(EGRESS) if r.inputs["securityGroupId"] == group.id]
    for rules in (ingress, egress):
        assert [(r.inputs["ipProtocol"], r.inputs["referencedSecurityGroupId"]) for r in rules] == [("-1", group.id)]
    template = launch_template(graph, node_groups(graph)["train"]).inputs
    assert all(group.id in i["securityGroups"] for i in template["networkInterfaces"])


@pytest.mark.parametrize("stack", STACKS)
def test_pools_without_efa_spread_over_every_private_subnet(stack_graph, stack):
    graph = stack_graph(stack)
    for group in node_groups(graph).values():
        if "vpc.amazonaws.com/efa.present" not in group.inputs["labels"]:
            assert group.inputs["subnetIds"] == graph.stack_outputs["privateSubnetIds"]
            assert "placement" not in launch_template(graph, group).inputs


def test_capacity_types_follow_the_environment(stack_graph):
    assert {g.inputs["capacityType"] for g in node_groups(stack_graph("dev")).values()} == {"SPOT"}
    prod = node_groups(stack_graph("prod"))
    assert prod["serve"].inputs["capacityType"] == "ON_DEMAND"
    assert prod["train"].inputs["capacityType"] == "ON_DEMAND"
    assert prod["serve"].inputs["scalingConfig"] == {"minSize": 3, "desiredSize": 3, "maxSize": 12}


def test_capacity_block_pool_launches_into_its_reservation(extended):
    graph = extended
    group = node_groups(graph)["p5-block"]
    assert group.inputs["capacityType"] == "CAPACITY_BLOCK"
    assert group.inputs["instanceTypes"] == ["p5.48xlarge"]
    template = launch_template(graph, group).inputs
    assert template["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert template["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": "cr-0123456789abcdef0"}}
    assert len(template["networkInterfaces"]) == 32
    assert group.inputs["amiType"] == "AL2023_x86_64_NVIDIA"


def test_efa_pool_is_pinned_to_the_az_it_names(extended):
    graph = extended
    group = node_groups(graph)["train-n"]
    assert [subnet_zones(graph)[s] for s in group.inputs["subnetIds"]] == ["us-east-1c"]
    assert len(launch_template(graph, group).inputs["networkInterfaces"]) == 16
    names = {p.outputs["name"] for p in graph.of_type(PLACEMENT_GROUP)}
    assert names == {"aiinfra-prod-train-cluster", "aiinfra-prod-train-n-cluster", "aiinfra-prod-p5-block-cluster"}


def test_extra_labels_and_taints_add_to_the_profiles(extended):
    graph = extended
    group = node_groups(graph)["gpu-agents"]
    assert launch_template(graph, group).inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert group.inputs["labels"]["team"] == "vision"
    assert group.inputs["taints"] == [TAINT["nvidia-gpu"],
                                      {"key": "dedicated", "value": "vision", "effect": "NO_SCHEDULE"}]
    assert "vpc.amazonaws.com/efa.present" not in group.inputs["labels"]


def test_node_pool_summaries_are_stack_outputs(stack_graph):
    outputs = stack_graph("prod").stack_outputs
    assert outputs["nodePoolTrain"].startswith("AL2023_x86_64_NEURON trn1.32xlarge x0-4 on-demand, "
                                               "aws.amazon.com/neuron=true:NoSchedule, EFA x8 in us-east-1a")
    assert outputs["nodePoolSystem"] == "AL2023_x86_64_STANDARD m6i.xlarge x3-6 on-demand, no taint"


# --- bad settings -------------------------------------------------------------------------------------------
def pools_with(stack: str, pool: str, changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The stack's pools with `changes` applied to the pool named `pool`."""
    return [{**p, **changes} if p["name"] == pool else p for p in stack_pools(stack).values()]


def test_inferentia_type_in_a_trainium_pool_names_the_pool(settings_error):
    message = settings_error({"aiinfra:nodePools": pools_with("prod", "train", {"instanceTypes": ["inf2.xlarge"]})},
                             base="prod")
    assert message.endswith(
        "Pulumi.prod.yaml: aiinfra:nodePools[1].instanceTypes[0] = 'inf2.xlarge': pool 'train': an inferentia "
        "instance type, not trainium; allowed: trn1.2xlarge, trn1.32xlarge, trn1n.32xlarge")


def test_min_above_max_names_the_pool(settings_error):
    message = settings_error({"aiinfra:nodePools": pools_with("dev", "infer", {"minSize": 3, "maxSize": 2})})
    assert message.endswith("Pulumi.dev.yaml: aiinfra:nodePools[2].minSize = 3: pool 'infer': minSize must not "
                            "exceed maxSize (2)")


@pytest.mark.parametrize("name,changes,expected", [
    ("infer", {"instanceTypes": ["g5.xlarge"]},
     "aiinfra:nodePools[2].instanceTypes[0] = 'g5.xlarge': pool 'infer': an nvidia-gpu instance type, not "
     "inferentia"),
    ("system", {"instanceTypes": ["trn1.2xlarge"]},
     "aiinfra:nodePools[0].instanceTypes[0] = 'trn1.2xlarge': pool 'system': a trainium instance type, not cpu"),
    ("train", {"instanceTypes": ["trn1.8xlarge"]},
     "aiinfra:nodePools[1].instanceTypes[0] = 'trn1.8xlarge': pool 'train': unknown trainium instance type; "
     "allowed: trn1.2xlarge"),
    ("system", {"instanceTypes": ["x1e.xlarge"]},
     "aiinfra:nodePools[0].instanceTypes[0] = 'x1e.xlarge': pool 'system': not an instance family cpu pools take; "
     "allowed: t3.*"),
    ("train", {"instanceTypes": []}, "aiinfra:nodePools[1].instanceTypes = []: pool 'train': list at least one"),
    ("infer", {"desiredSize": 5}, "aiinfra:nodePools[2].desiredSize = 5: pool 'infer': must lie between minSize "
                                  "and maxSize; allowed: 1..2"),
    ("train", {"capacityType": "capacity-block"},
     "aiinfra:nodePools[1].capacityReservationId = null: pool 'train': a capacity-block pool needs its reservation"),
    ("train", {"capacityReservationId": "cr-0123456789abcdef0"},
     "aiinfra:nodePools[1].capacityReservationId = 'cr-0123456789abcdef0': pool 'train': only used with "
     "capacityType: capacity-block"),
    ("system", {"capacityType": "capacity-block", "capacityReservationId": "cr-0123456789abcdef0",
                "instanceTypes": ["m6i.large"]},
     "aiinfra:nodePools[0].capacityType = 'capacity-block': pool 'system': Capacity Blocks reserve accelerated"),
    ("train", {"efa": True}, "aiinfra:nodePools[1].efa = true: pool 'train': trn1.2xlarge has no EFA support"),
    ("train", {"instanceTypes": ["trn1.32xlarge", "trn1n.32xlarge"], "maxSize": 2},
     "aiinfra:nodePools[1].instanceTypes = [\"trn1.32xlarge\", \"trn1n.32xlarge\"]: pool 'train': EFA pools need "
     "one network-card layout"),
    ("train", {"instanceTypes": ["trn1.32xlarge"], "efaAvailabilityZone": 2},
     "aiinfra:nodePools[1].efaAvailabilityZone = 2: pool 'train': the network spans 2 AZs; allowed: 0..1"),
    ("infer", {"taints": [{"key": "aws.amazon.com/neuroncore"}]},
     "aiinfra:nodePools[2].taints[0].key = 'aws.amazon.com/neuroncore': pool 'infer': the inferentia profile sets "
     "its own accelerator taint"),
    ("infer", {"labels": {"accelerator": "gpu"}},
     "aiinfra:nodePools[2].labels.accelerator = 'gpu': pool 'infer': set from the profile and pool name"),
    ("infer", {"name": "Infer_Pool"},
     "aiinfra:nodePools[2].name = 'Infer_Pool': pool names are 2-32 lowercase letters"),
    ("infer", {"profile": "tpu"}, "aiinfra:nodePools[2].profile = 'tpu': allowed: cpu, nvidia-gpu, trainium, "
                                  "inferentia"),
    ("infer", {"instanceType": ["inf2.xlarge"]},
     "aiinfra:nodePools[2].instanceType: unknown key; did you mean 'instanceTypes'?"),
])
def test_bad_pool_settings_fail_with_one_line_naming_the_pool(settings_error, name, changes, expected):
    assert expected in settings_error({"aiinfra:nodePools": pools_with("dev", name, changes)})


def test_duplicate_pool_names_are_rejected(settings_error):
    pools = list(stack_pools("dev").values())
    message = settings_error({"aiinfra:nodePools": pools + [{**pools[3]}]})
    assert "aiinfra:nodePools[4].name = 'gpu': duplicate pool name (also nodePools[3])" in message


def test_pod_instance_metadata_is_refused_naming_the_pool_and_the_policy(settings_error):
    # A hop limit of 2 would hand every pod the node role's credentials; the mandatory imdsv2-hop-limit-1 policy
    # forbids it, so the settings refuse it before anything renders.
    message = settings_error({"aiinfra:nodePools": pools_with("dev", "gpu", {"podInstanceMetadata": True})})
    assert "aiinfra:nodePools[3].podInstanceMetadata = true: pool 'gpu':" in message
    assert "imdsv2-hop-limit-1" in message and "allowed: false" in message


def test_a_cpu_pool_is_required_for_system_pods(settings_error):
    pools = [p for p in stack_pools("dev").values() if p["profile"] != "cpu"]
    message = settings_error({"aiinfra:nodePools": pools})
    assert "aiinfra:nodePools = [\"train\", \"infer\", \"gpu\"]: needs a cpu pool with minSize >= 1" in message


def test_instance_catalog_is_consistent_with_the_profiles():
    from components.accelerators import INSTANCE_TYPES, PROFILE_SPECS, profile_of_family

    assert {n for n, t in INSTANCE_TYPES.items() if t.efa} == {
        "trn1.32xlarge", "trn1n.32xlarge", "p4d.24xlarge", "p5.48xlarge"}
    for name, spec in INSTANCE_TYPES.items():
        profile = profile_of_family(spec.family)
        assert profile in ("nvidia-gpu", "trainium", "inferentia"), name
        devices = spec.gpus if profile == "nvidia-gpu" else spec.neuron_devices
        assert devices >= 1 and spec.vcpus >= 4 and spec.memory_gib >= 16, name
        if profile != "nvidia-gpu":
            assert spec.neuron_cores == 2 * spec.neuron_devices, name
    assert PROFILE_SPECS["trainium"].taint == PROFILE_SPECS["inferentia"].taint
