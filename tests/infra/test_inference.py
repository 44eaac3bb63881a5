"""SageMaker endpoints: private and encrypted, data capture, least-privilege roles, canary rollout that rolls back
on the very alarms monitoring declares, and autoscaling from settings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from services_graph import (
    ALARM,
    ENDPOINT,
    ENDPOINT_CONFIG,
    MODEL,
    alarm_dimensions,
    bucket_name,
    key_arn,
    peers,
    private_subnet_ids,
    record,
    statements,
)

from aiinfra.export import export_document

STACKS = ("dev", "staging", "prod")
ENDPOINTS = {"dev": ["text-classifier"], "staging": ["text-classifier"],
             "prod": ["text-classifier", "text-embedder"]}


def endpoint_parts(graph, short: str) -> dict:
    prefix = f"inference-{short}"
    return {
        "endpoint": record(graph, ENDPOINT, prefix),
        "config": record(graph, ENDPOINT_CONFIG, f"{prefix}-config"),
        "model": record(graph, MODEL, f"{prefix}-model"),
        "role": record(graph, "aws:iam/role:Role", f"{prefix}-execution"),
        "policy": record(graph, "aws:iam/rolePolicy:RolePolicy", f"{prefix}-execution"),
        "target": record(graph, "aws:appautoscaling/target:Target", f"{prefix}-scaling"),
        "scaling": record(graph, "aws:appautoscaling/policy:Policy", f"{prefix}-scaling"),
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_endpoint_configuration_has_the_models_key_and_encrypted_data_capture(
        stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    configs = graph.of_type(ENDPOINT_CONFIG)
    assert sorted(c.name.removeprefix("inference-").removesuffix("-config") for c in configs) == ENDPOINTS[stack]
    for config in configs:
        short = config.name.removeprefix("inference-").removesuffix("-config")
        assert config.inputs["kmsKeyArn"] == key_arn(graph, "models")
        capture = config.inputs["dataCaptureConfig"]
        assert capture["enableCapture"] is True and capture["kmsKeyId"] == key_arn(graph, "data")
        assert capture["destinationS3Uri"] == f"s3://{bucket_name(graph, 'datasets')}/data-capture/{short}"
        assert {o["captureMode"] for o in capture["captureOptions"]} == {"Input", "Output"}
        assert 1 <= capture["initialSamplingPercentage"] <= 100


@pytest.mark.parametrize("stack", STACKS)
def test_every_endpoint_rolls_back_on_existing_alarms_that_watch_it(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    alarms = {a.inputs["name"]: a for a in graph.of_type(ALARM)}
    for endpoint in graph.of_type(ENDPOINT):
        deployment = endpoint.inputs["deploymentConfig"]
        routing = deployment["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
        assert routing["type"] == "CANARY" and routing["canarySize"]["type"] == "CAPACITY_PERCENT"
        assert 1 <= routing["canarySize"]["value"] <= 50
        names = [a["alarmName"] for a in deployment["autoRollbackConfiguration"]["alarms"]]
        assert len(names) >= 2
        for name in names:
            assert name in alarms, f"{endpoint.name} rolls back on {name}, which no alarm in the stack is named"
            watched = list(alarm_dimensions(alarms[name].inputs))
            assert watched and all(d.get("EndpointName") == endpoint.inputs["name"] for d in watched), name
            assert all(d.get("VariantName") == "primary" for d in watched)
        # The same alarm objects, not copies with the same name: the rollback depends on the alarm resources.
        assert set(endpoint.property_dependencies["deploymentConfig"]) == {alarms[n].urn for n in names}


def test_export_carries_rollback_alarms_that_match_metric_alarms_in_the_same_export(stack_graph: Callable) -> None:
    resources = export_document(stack_graph("prod"))["deployment"]["resources"]
    alarm_names = {r["inputs"]["name"] for r in resources if r["type"] == ALARM}
    endpoints = [r for r in resources if r["type"] == ENDPOINT]
    assert len(endpoints) == 2
    for endpoint in endpoints:
        rollback = endpoint["inputs"]["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
        assert rollback and {a["alarmName"] for a in rollback} <= alarm_names
        assert endpoint["inputs"]["deploymentConfig"]["blueGreenUpdatePolicy"]


@pytest.mark.parametrize("stack", STACKS)
def test_models_run_in_the_private_subnets_with_the_serving_group_and_image(stack_graph: Callable,
                                                                            stack: str) -> None:
    graph = stack_graph(stack)
    serving = graph.stack_outputs["servingSecurityGroupId"]
    repository = graph.stack_outputs["servingRepositoryUrl"]
    for short in ENDPOINTS[stack]:
        parts = endpoint_parts(graph, short)
        model = parts["model"].inputs
        assert sorted(model["vpcConfig"]["subnets"]) == private_subnet_ids(graph)
        assert model["vpcConfig"]["securityGroupIds"] == [serving]
        assert model["primaryContainer"]["image"] == f"{repository}:0.1.0"
        assert model["primaryContainer"]["modelDataUrl"] == \
            f"s3://{bucket_name(graph, 'models')}/{short}/v1/model.tar.gz"
        assert model["executionRoleArn"] == parts["role"].outputs["arn"]
        # The grant exists before SageMaker validates the role at model creation.
        assert parts["policy"].urn in parts["model"].dependencies
        variant = parts["config"].inputs["productionVariants"]
        assert [v["variantName"] for v in variant] == ["primary"]
        assert variant[0]["modelName"] == parts["model"].outputs["name"]
    assert peers(graph, serving) == []  # SageMaker fronts invocations; nothing connects to the containers


@pytest.mark.parametrize("stack", STACKS)
def test_execution_role_reads_only_its_model_prefix_and_writes_only_its_capture_prefix(
        stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    models = f"arn:aws:s3:::{bucket_name(graph, 'models')}"
    data = f"arn:aws:s3:::{bucket_name(graph, 'datasets')}"
    for short in ENDPOINTS[stack]:
        parts = endpoint_parts(graph, short)
        trust = statements(parts["role"].inputs["assumeRolePolicy"])
        assert trust[0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
        assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
        grants = {s["Sid"]: s for s in statements(parts["policy"].inputs["policy"])}
        assert grants["ReadModel"]["Resource"] == f"{models}/{short}/v1/*"
        assert grants["WriteDataCapture"]["Resource"] == f"{data}/data-capture/{short}/*"
        assert grants["DecryptModel"]["Resource"] == key_arn(graph, "models")
        assert grants["EncryptDataCapture"]["Resource"] == key_arn(graph, "data")
        assert grants["PullServingImage"]["Resource"].endswith(f":repository/aiinfra/{stack}/serving")
        assert grants["WriteLogs"]["Resource"][0].endswith(f":log-group:/aws/sagemaker/Endpoints/aiinfra-{stack}-{short}")
        # Wildcard resources only where AWS offers no resource-level permission.
        for sid, grant in grants.items():
            actions = grant["Action"] if isinstance(grant["Action"], list) else [grant["Action"]]
            assert all(not a.endswith(":*") and a != "*" for a in actions), sid
            if grant["Resource"] == "*":
                assert sid in {"EcrLogin", "PutMetrics", "VpcNetworkInterfacesDescribe",
                               "VpcNetworkInterfacesInPlatformVpc"}, sid
        # ENI writes only inside the platform's VPC (AWS offers only a condition key to scope them).
        vpc = grants["VpcNetworkInterfacesInPlatformVpc"]["Condition"]["ArnEquals"]["ec2:Vpc"]
        assert vpc.startswith("arn:aws:ec2:us-east-1:123456789012:vpc/vpc-")
        assert not any(a.startswith("ec2:Describe") for a in grants["VpcNetworkInterfacesInPlatformVpc"]["Action"])
        assert grants["PutMetrics"]["Condition"]["StringEquals"]["cloudwatch:namespace"] == "aiinfra/serving"


@pytest.mark.parametrize(("stack", "short", "low", "high", "count"), [
    ("dev", "text-classifier", 1, 2, 1), ("staging", "text-classifier", 1, 3, 1),
    ("prod", "text-classifier", 2, 8, 2), ("prod", "text-embedder", 2, 6, 2)])
def test_autoscaling_tracks_invocations_per_instance_within_settings(
        stack_graph: Callable, stack: str, short: str, low: int, high: int, count: int) -> None:
    graph = stack_graph(stack)
    parts = endpoint_parts(graph, short)
    target = parts["target"].inputs
    assert target["resourceId"] == f"endpoint/aiinfra-{stack}-{short}/variant/primary"
    assert target["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["minCapacity"], target["maxCapacity"]) == (low, high)
    tracking = parts["scaling"].inputs["targetTrackingScalingPolicyConfiguration"]
    assert tracking["predefinedMetricSpecification"] == {
        "predefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    assert parts["config"].inputs["productionVariants"][0]["initialInstanceCount"] == count


def test_prod_runs_every_endpoint_on_at_least_two_instances(stack_graph: Callable) -> None:
    for config in stack_graph("prod").of_type(ENDPOINT_CONFIG):
        assert config.inputs["productionVariants"][0]["initialInstanceCount"] >= 2


def test_outputs_summarise_endpoints_with_scaling_and_rollout(stack_graph: Callable) -> None:
    outputs = stack_graph("prod").stack_outputs
    summary = outputs["inferenceEndpoints"]["text-classifier"]
    assert summary["endpointName"] == "aiinfra-prod-text-classifier"
    assert summary["autoscaling"] == {"min": 2, "max": 8, "invocationsPerInstance": 500}
    assert summary["rollbackAlarms"] == ["aiinfra-prod-text-classifier-latency-p99",
                                         "aiinfra-prod-text-classifier-5xx-rate"]
    assert outputs["textClassifierEndpoint"].startswith("aiinfra-prod-text-classifier: ml.inf2.xlarge x2-8")


ENDPOINT_OK = {"name": "ranker", "modelPrefix": "ranker/v2", "imageTag": "1.2.0", "instanceType": "ml.m5.xlarge"}


@pytest.mark.parametrize(("changes", "base", "expected"), [
    ({"instanceType": "ml.inf1.xlarge"}, "dev",
     "aiinfra:endpoints[0].instanceType = 'ml.inf1.xlarge': Inf1 endpoints cannot use deployment guardrails"),
    ({"instanceType": "ml.g5.xlarge"}, "dev",
     "aiinfra:endpoints[0].instanceType = 'ml.g5.xlarge': has local instance storage, for which SageMaker refuses "
     "a customer KMS key"),
    ({"instanceType": "g5.xlarge"}, "dev", "instanceType = 'g5.xlarge': not a SageMaker instance type; allowed: ml.*"),
    ({"imageTag": "latest"}, "dev",
     "aiinfra:endpoints[0].imageTag = 'latest': the serving repository is immutable; allowed: a release tag"),
    ({"modelPrefix": "/ranker/v2/"}, "dev", "aiinfra:endpoints[0].modelPrefix = '/ranker/v2/': allowed: a relative"),
    ({"name": "Ranker_1"}, "dev", "aiinfra:endpoints[0].name = 'Ranker_1': allowed: 1-30 lowercase letters"),
    ({"autoscaling": {"minInstances": 3, "maxInstances": 2}, "instanceCount": 3}, "dev",
     "aiinfra:endpoints[0].autoscaling.maxInstances = 2: must be at least minInstances (3)"),
    ({"instanceCount": 5}, "dev",
     "aiinfra:endpoints[0].instanceCount = 5: must lie within autoscaling 1..2"),
    ({"autoscaling": {"minInstances": 1, "maxInstances": 4}}, "prod",
     "aiinfra:endpoints[0].autoscaling.minInstances = 1: prod endpoints keep at least 2 instances"),
    ({"rollout": {"canaryPercent": 75}}, "dev",
     "aiinfra:endpoints[0].rollout.canaryPercent = 75: out of range; allowed: 1..50"),
    ({"alarms": {"latencyP99Ms": 0}}, "dev", "aiinfra:endpoints[0].alarms.latencyP99Ms = 0.0: out of range"),
    ({"modelPrefix": None}, "dev", "aiinfra:endpoints[0].modelPrefix: is required"),
    ({"serverless": True}, "dev", "aiinfra:endpoints[0].serverless: unknown key"),
    ({"environment": {"SERVING_REDIS_AUTH_TOKEN": "abc"}}, "dev",
     "aiinfra:endpoints[0].environment.SERVING_REDIS_AUTH_TOKEN: container environment is readable through the "
     "SageMaker API; allowed: no secrets"),
])
def test_bad_endpoint_settings_name_the_endpoint_key_and_allowed_values(
        settings_error: Callable, changes: dict, base: str, expected: str) -> None:
    endpoint = {**ENDPOINT_OK, "instanceCount": 2, "autoscaling": {"minInstances": 2, "maxInstances": 4}} \
        if base == "prod" else dict(ENDPOINT_OK)
    endpoint.update(changes)
    endpoint = {k: v for k, v in endpoint.items() if v is not None}
    message = settings_error({"aiinfra:endpoints": [endpoint]}, base=base)
    assert f"Pulumi.{base}.yaml: " in message
    assert expected in message


def test_duplicate_endpoint_names_are_rejected(settings_error: Callable) -> None:
    message = settings_error({"aiinfra:endpoints": [ENDPOINT_OK, {**ENDPOINT_OK, "modelPrefix": "ranker/v3"}]})
    assert "aiinfra:endpoints[1].name = 'ranker': another endpoint has this name; endpoint names must be unique" \
        in message
