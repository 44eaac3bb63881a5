"""The model servers on EKS use the Redis feature store as their shared cache: the Deployment names its TLS
endpoint and its AUTH secret (never the token), the serving role may read exactly that secret, and the diagram
draws the pods -> Redis data path."""

from __future__ import annotations

import pytest
from compute_graph import DEPLOYMENT, as_list, one, role_by_arn, statements_of
from services_graph import REDIS, key_arn, only

from aiinfra.diagram import build

STACKS = ("dev", "staging", "prod")


def _server_env(graph) -> dict[str, str]:
    [server] = one(graph, DEPLOYMENT, "workloads-serving").inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in server["env"]}


@pytest.mark.parametrize("stack", STACKS)
def test_serving_deployment_names_the_feature_store_endpoint_and_secret(stack_graph, stack):
    graph = stack_graph(stack)
    redis = only(graph, REDIS)
    env = _server_env(graph)
    assert env["SERVING_REDIS_URL"] == f"rediss://{redis.outputs['primaryEndpointAddress']}:{int(redis.inputs['port'])}"
    assert env["SERVING_REDIS_AUTH_SECRET_ARN"] == graph.stack_outputs["featureStoreSecretArn"]
    assert "SERVING_REDIS_AUTH_TOKEN" not in env


def test_serving_role_may_read_exactly_the_feature_store_secret(stack_graph):
    graph = stack_graph("prod")
    role = role_by_arn(graph, graph.stack_outputs["servingServiceAccountRoleArn"])
    statements = statements_of(graph, role)
    new = [s for s in statements if s.get("Sid", "").endswith("FeatureStoreAuthSecret")]
    assert new == [
        {"Sid": "ReadFeatureStoreAuthSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": graph.stack_outputs["featureStoreSecretArn"]},
        {"Sid": "DecryptFeatureStoreAuthSecret", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": key_arn(graph, "data"),
         "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}},
    ]
    # The data policy is as it was: its statements are exactly the serving slice, before and after.
    data = [s for s in statements if s not in new and not s["Sid"].endswith("ServingApiKeys")]
    assert [s["Sid"] for s in data] == ["ListCompiledModels", "ReadCompiledModels", "ModelsKey"]
    assert not any("secretsmanager" in a for s in data for a in as_list(s["Action"]))
    # The secret is encrypted with the very key the role may decrypt through Secrets Manager.
    secret = one(graph, "aws:secretsmanager/secret:Secret", "feature-store-auth")
    assert secret.inputs["kmsKeyId"] == key_arn(graph, "data")


def test_only_the_serving_role_gets_the_secret(stack_graph):
    graph = stack_graph("prod")
    secret_arn = graph.stack_outputs["featureStoreSecretArn"]
    for role in ("training", "compilation"):
        statements = statements_of(graph, role_by_arn(graph, graph.stack_outputs[f"{role}ServiceAccountRoleArn"]))
        assert not any(secret_arn in as_list(s["Resource"]) for s in statements)


def test_diagram_draws_the_serving_pods_reading_redis(stack_graph):
    diagram = build(stack_graph("prod"))
    labels = {n.id: n.label for nodes in diagram.components.values() for n in nodes}
    edges = {(labels[s], labels[t]) for s, t in diagram.edges}
    assert ("Deployment<br/>workloads-serving", "ReplicationGroup<br/>feature-store") in edges
