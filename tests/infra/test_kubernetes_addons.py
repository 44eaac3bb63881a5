"""Device plugins land on every accelerator pool, namespaces are fenced by quotas, service accounts get IRSA roles
with only their own slice of the data."""

from __future__ import annotations

import pytest
from compute_graph import (
    RELEASE,
    accelerator_requests,
    as_list,
    node_groups,
    one,
    pod_specs,
    policy,
    role_by_arn,
    stack_document,
    statements_of,
    taints_k8s,
    tolerates,
)

STACKS = ("dev", "staging", "prod")
PLUGIN_OF = {"nvidia": "nvidia-device-plugin", "neuron": "neuron"}


def releases(graph) -> dict[str, object]:
    """The device-plugin releases (KEDA's belongs to the telemetry component)."""
    return {r.inputs["name"]: r for r in graph.of_type(RELEASE) if r.name.startswith("kubernetes-")}


def plugin_reaches(values: dict, group) -> bool:
    """Whether a DaemonSet with these pod values can run on the node group's nodes."""
    selector = values.get("nodeSelector") or {}
    labels = group.inputs["labels"]
    return (all(labels.get(k) == v for k, v in selector.items())
            and all(tolerates(values.get("tolerations") or [], t) for t in taints_k8s(group)))


@pytest.mark.parametrize("stack", STACKS)
def test_no_accelerator_pool_is_left_without_its_device_plugin(stack_graph, stack):
    graph = stack_graph(stack)
    installed = releases(graph)
    for name, group in node_groups(graph).items():
        accelerator = group.inputs["labels"].get("accelerator")
        if accelerator:
            release = installed[PLUGIN_OF[accelerator]]
            values = release.inputs["values"]
            pod_values = values["devicePlugin"] if accelerator == "neuron" else values
            assert plugin_reaches(pod_values, group), f"{PLUGIN_OF[accelerator]} cannot run on pool {name}"
        if group.inputs["labels"].get("vpc.amazonaws.com/efa.present") == "true":
            assert plugin_reaches(installed["aws-efa-k8s-device-plugin"].inputs["values"], group), name


@pytest.mark.parametrize("stack,expected", [
    ("dev", {"nvidia-device-plugin", "neuron"}),
    ("staging", {"neuron", "aws-efa-k8s-device-plugin"}),
    ("prod", {"neuron", "aws-efa-k8s-device-plugin"}),
])
def test_device_plugins_are_installed_exactly_where_needed(stack_graph, stack, expected):
    assert set(releases(stack_graph(stack))) == expected


def test_device_plugin_charts_are_pinned_and_in_kube_system(stack_graph):
    for stack in STACKS:
        for release in releases(stack_graph(stack)).values():
            assert release.inputs["namespace"] == "kube-system"
            version = release.inputs["version"]
            assert version and version[0] in "v0123456789" and "*" not in version and "^" not in version
    dev = releases(stack_graph("dev"))
    assert dev["nvidia-device-plugin"].inputs["chart"] == "nvidia-device-plugin"
    assert dev["nvidia-device-plugin"].inputs["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
    assert dev["neuron"].inputs["chart"] == "oci://public.ecr.aws/neuron/neuron-helm-chart"


def test_nvidia_plugin_affinity_selects_our_label_not_feature_discovery(stack_graph):
    values = releases(stack_graph("dev"))["nvidia-device-plugin"].inputs["values"]
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "accelerator", "operator": "In", "values": ["nvidia"]}]}]


def test_neuron_chart_runs_the_scheduler_extension_that_neuron_pods_name(stack_graph):
    graph = stack_graph("prod")
    scheduler = releases(graph)["neuron"].inputs["values"]["scheduler"]
    assert scheduler["enabled"] is True
    assert scheduler["customScheduler"]["enabled"] is True
    neuron = [pod for _, pod in pod_specs(graph) if any("neuron" in r for r in accelerator_requests(pod))]
    assert neuron and {pod.get("schedulerName") for pod in neuron} == {scheduler["customScheduler"]["fullnameOverride"]}


def test_efa_plugin_tolerates_every_efa_pools_taint(extended_efa):
    values = releases(extended_efa)["aws-efa-k8s-device-plugin"].inputs["values"]
    keys = {t["key"] for t in values["tolerations"]}
    assert keys == {"aws.amazon.com/neuron", "nvidia.com/gpu"}
    assert values["nodeSelector"] == {"vpc.amazonaws.com/efa.present": "true"}


@pytest.fixture(scope="module")
def extended_efa(tmp_path_factory):
    """prod plus a p4d pool: EFA on both a Neuron and a GPU pool."""
    import yaml

    from aiinfra.engine import synthesize

    document = stack_document("prod")
    document["config"]["aiinfra:nodePools"].append(
        {"name": "p4d", "profile": "nvidia-gpu", "instanceTypes": ["p4d.24xlarge"], "minSize": 0, "maxSize": 2})
    path = tmp_path_factory.mktemp("efa") / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return synthesize("prod", stack_file=path)


def test_kubernetes_resources_use_the_cluster_provider(stack_graph):
    graph = stack_graph("prod")
    provider = one(graph, "pulumi:providers:kubernetes")
    kubeconfig = policy(provider.inputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["args"][-3:] == ["aiinfra-prod-eks", "--output", "json"]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == graph.stack_outputs["clusterEndpoint"]
    for record in graph:
        if record.type.startswith("kubernetes:"):
            assert record.provider.startswith(provider.urn), record.name


@pytest.mark.parametrize("stack", STACKS)
def test_namespaces_have_quotas_and_limit_ranges(stack_graph, stack):
    graph = stack_graph(stack)
    namespaces = {r.inputs["metadata"]["name"]: r for r in graph.of_type("kubernetes:core/v1:Namespace")}
    assert set(namespaces) == {"training", "serving", "features"}  # features: the feature pipeline's own
    for ns in namespaces.values():
        assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quotas = {r.inputs["metadata"]["namespace"]: r.inputs["spec"]["hard"]
              for r in graph.of_type("kubernetes:core/v1:ResourceQuota")}
    limits = {r.inputs["metadata"]["namespace"] for r in graph.of_type("kubernetes:core/v1:LimitRange")}
    assert set(quotas) == limits == {"training", "serving", "features"}
    for hard in quotas.values():
        assert {"requests.cpu", "requests.memory", "pods", "requests.aws.amazon.com/neuron",
                "requests.aws.amazon.com/neuroncore", "requests.nvidia.com/gpu",
                "requests.vpc.amazonaws.com/efa"} <= set(hard)


def test_quota_values_come_from_settings(stack_graph):
    quotas = {r.inputs["metadata"]["namespace"]: r.inputs["spec"]["hard"]
              for r in stack_graph("prod").of_type("kubernetes:core/v1:ResourceQuota")}
    assert quotas["training"]["requests.aws.amazon.com/neuron"] == "64"
    assert quotas["training"]["requests.vpc.amazonaws.com/efa"] == "32"
    assert quotas["serving"]["requests.nvidia.com/gpu"] == "0"
    assert quotas["serving"]["requests.memory"] == "512Gi"


@pytest.mark.parametrize("stack", STACKS)
def test_service_accounts_are_bound_to_roles_only_they_can_assume(stack_graph, stack):
    graph = stack_graph(stack)
    # The feature pipeline's accounts (namespace features) are tested in test_features_pipeline.py.
    accounts = {r.inputs["metadata"]["name"]: r.inputs["metadata"]
                for r in graph.of_type("kubernetes:core/v1:ServiceAccount")
                if r.inputs["metadata"]["namespace"] != "features"}
    expected = {"trainer": ("training", "trainingServiceAccountRoleArn"),
                "compiler": ("training", "compilationServiceAccountRoleArn"),
                "model-server": ("serving", "servingServiceAccountRoleArn")}
    assert set(accounts) == set(expected)
    for name, (namespace, output) in expected.items():
        meta = accounts[name]
        assert meta["namespace"] == namespace
        arn = meta["annotations"]["eks.amazonaws.com/role-arn"]
        assert arn == graph.stack_outputs[output]
        trust = policy(role_by_arn(graph, arn).inputs["assumeRolePolicy"])["Statement"]
        assert len(trust) == 1
        assert trust[0]["Principal"] == {"Federated": graph.stack_outputs["clusterOidcProviderArn"]}
        conditions = trust[0]["Condition"]["StringEquals"]
        assert sorted(conditions.values()) == sorted([f"system:serviceaccount:{namespace}:{name}", "sts.amazonaws.com"])


def grants(statements, action: str) -> list[str]:
    """Every resource an action is allowed on."""
    return [res for s in statements if s["Effect"] == "Allow" and action in as_list(s["Action"])
            for res in as_list(s["Resource"])]


def test_serving_role_reads_compiled_models_only(stack_graph):
    graph = stack_graph("prod")
    statements = statements_of(graph, role_by_arn(graph, graph.stack_outputs["servingServiceAccountRoleArn"]))
    models = f"arn:aws:s3:::{graph.stack_outputs['modelsBucketName']}"
    actions = {a for s in statements for a in as_list(s["Action"])}
    # secretsmanager:GetSecretValue and the data key: the feature store's AUTH secret (test_serving_feature_store)
    # and the API keys (test_serving_auth), each decrypted through Secrets Manager only
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt", "secretsmanager:GetSecretValue"}
    assert grants(statements, "s3:GetObject") == [f"{models}/compiled/*"]
    assert sorted(grants(statements, "kms:Decrypt")) == sorted([graph.stack_outputs["modelsKeyArn"],
                                                                graph.stack_outputs["dataKeyArn"],
                                                                graph.stack_outputs["dataKeyArn"]])


def test_training_role_reads_datasets_and_writes_checkpoints_and_models(stack_graph):
    graph = stack_graph("prod")
    statements = statements_of(graph, role_by_arn(graph, graph.stack_outputs["trainingServiceAccountRoleArn"]))
    datasets = f"arn:aws:s3:::{graph.stack_outputs['datasetsBucketName']}"
    models = f"arn:aws:s3:::{graph.stack_outputs['modelsBucketName']}"
    assert f"{datasets}/*" in grants(statements, "s3:GetObject")
    assert grants(statements, "s3:PutObject") == [f"{datasets}/checkpoints/*", f"{models}/training/*"]
    assert graph.stack_outputs["checkpointS3Uri"] == f"s3://{graph.stack_outputs['datasetsBucketName']}/checkpoints/"
    for s in statements:
        assert "*" not in as_list(s["Resource"]) and not any(a.endswith(":*") for a in as_list(s["Action"]))


def test_sagemaker_training_role_shares_the_data_policy_and_trusts_sagemaker(stack_graph):
    graph = stack_graph("prod")
    role = role_by_arn(graph, graph.stack_outputs["trainingRoleArn"])
    trust = policy(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    statements = statements_of(graph, role)
    irsa = statements_of(graph, role_by_arn(graph, graph.stack_outputs["trainingServiceAccountRoleArn"]))
    assert all(s in statements for s in irsa)
    assert grants(statements, "ecr:BatchGetImage") == [
        one(graph, "aws:ecr/repository:Repository", "storage-training").outputs["arn"]]
    # The pods' role gets none of SageMaker's own permissions.
    assert not grants(irsa, "ec2:CreateNetworkInterface")
    group = one(graph, "aws:ec2/securityGroup:SecurityGroup", "workload-identity-sagemaker-training")
    assert graph.stack_outputs["trainingSecurityGroupId"] == group.id
