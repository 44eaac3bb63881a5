"""The defects of issue 11, each checked on the rendered stacks: what the cluster and AWS would do with them."""

from __future__ import annotations

import json

import pytest

JOB, DEPLOYMENT = "kubernetes:batch/v1:Job", "kubernetes:apps/v1:Deployment"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
ENI_WRITES = {"ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
              "ec2:DeleteNetworkInterfacePermission"}


def workload(graph, kind, name):
    return next(r for r in graph.of_type(kind) if r.inputs["metadata"]["name"] == name)


def pod_specs(graph):
    return {r.inputs["metadata"]["name"]: r.inputs["spec"]["template"]["spec"] for r in graph.of_type(JOB, DEPLOYMENT)}


def arg(command, flag):
    return command[command.index(flag) + 1]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_training_reads_s3_checkpoints_to_s3_and_publishes_the_pointer_compilation_reads(stack_graph, stack):
    graph = stack_graph(stack)
    [train] = workload(graph, JOB, "trainer").inputs["spec"]["template"]["spec"]["containers"]
    command = train["command"]
    datasets, models = "s3://$(AIINFRA_DATASETS_BUCKET)/", "s3://$(AIINFRA_MODELS_BUCKET)/"
    assert arg(command, "--train") == datasets + "training-data/current/train/"
    assert arg(command, "--validation") == datasets + "training-data/current/validation/"
    assert arg(command, "--checkpoint-s3-uri") == datasets + "checkpoints/$(AIINFRA_RUN)/"
    assert arg(command, "--output-s3-uri") == models + "training/$(AIINFRA_RUN)/"
    [compile_] = workload(graph, JOB, "compiler").inputs["spec"]["template"]["spec"]["containers"]
    assert arg(compile_["command"], "--model-s3-uri") == arg(command, "--pointer-s3-uri")
    env = {e["name"]: e for e in train["env"]}
    # $(VAR) expands only from variables defined in the container's env: every one the command names is there.
    for name in ("AIINFRA_DATASETS_BUCKET", "AIINFRA_MODELS_BUCKET", "AIINFRA_RUN", "AIINFRA_DATA_KEY_ARN",
                 "AIINFRA_MODELS_KEY_ARN"):
        assert name in env, name
    assert env["AIINFRA_RUN"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['batch.kubernetes.io/controller-uid']"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_workloads_are_told_the_pool_device(stack_graph, stack):
    graph = stack_graph(stack)
    specs = pod_specs(graph)
    assert arg(specs["trainer"]["containers"][0]["command"], "--device") == "neuron"
    assert arg(specs["compiler"]["containers"][0]["command"], "--device") == "neuron"
    server_env = {e["name"]: e.get("value") for e in specs["model-server"]["containers"][0]["env"]}
    assert server_env["SERVING_DEVICE"] == "neuron"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pods_are_hardened(stack_graph, stack):
    graph = stack_graph(stack)
    for name, spec in pod_specs(graph).items():
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["capabilities"] == {"drop": ["ALL"]}
            assert context["allowPrivilegeEscalation"] is False
            assert ".dkr.ecr." in container["image"], f"{name}/{container['name']}: not the platform's ECR"
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    for account in graph.of_type("kubernetes:core/v1:ServiceAccount"):
        assert account.inputs["automountServiceAccountToken"] is False
    for namespace in graph.of_type("kubernetes:core/v1:Namespace"):
        assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policies_deny_by_default_and_open_only_the_workloads_paths(stack_graph):
    graph = stack_graph("prod")
    policies = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
                for r in graph.of_type(NETWORK_POLICY)}
    for namespace in ("training", "serving"):
        assert policies[(namespace, "default-deny")] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert (namespace, "allow-dns") in policies
    peers = policies[("training", "trainer-peers")]
    trainer = {"app.kubernetes.io/name": "trainer", "app.kubernetes.io/part-of": "aiinfra"}
    assert peers["ingress"] == [{"from": [{"podSelector": {"matchLabels": trainer}}]}]
    server = policies[("serving", "model-server")]
    assert server["ingress"][0]["from"][0]["podSelector"] == {"matchLabels": {"aiinfra.io/model-client": "true"}}
    assert server["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    [cni] = [r for r in graph.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "vpc-cni"]
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_role_writes_network_interfaces_outside_the_vpc(stack_graph, stack):
    graph = stack_graph(stack)
    documents = [r.inputs.get("policy") for r in graph.of_type("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")]
    checked = 0
    for document in filter(None, documents):
        for statement in json.loads(document)["Statement"]:
            actions = set([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
            if actions & ENI_WRITES:
                checked += 1
                vpc = statement["Condition"]["ArnEquals"]["ec2:Vpc"]
                assert vpc.startswith("arn:aws:ec2:us-east-1:123456789012:vpc/"), statement
    assert checked >= 2  # the SageMaker training role and every endpoint's execution role


def test_images_carry_the_code_their_pods_run():
    """The init container runs `python -m workloads.common.s3` in the serving image; training and compilation
    import the shared layout from contracts/."""
    from pathlib import Path

    images = Path(__file__).resolve().parents[2] / "workloads" / "images"
    serving = (images / "serving.Dockerfile").read_text()
    assert "COPY workloads/common " in serving and "COPY contracts " in serving
    for name in ("training.Dockerfile", "neuron.Dockerfile"):
        assert "COPY contracts/ contracts/" in (images / name).read_text(), name
