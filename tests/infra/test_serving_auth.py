"""The EKS model servers ask for API keys and apply the limits in settings: the stack creates the keys secret
(data key), only the serving role may read it, and the Deployment names its ARN and the limits in the
`SERVING_<FLAG>` variables the server reads. The server side (401, 429, 413/422) is tested in
tests/workloads/test_serving_guards.py."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s
import pytest
from alone import build, identity, section
from compute_graph import DEPLOYMENT, one, role_by_arn, statements_of
from services_graph import key_arn

from components.cluster_workloads import ClusterWorkloads, SharedCache
from components.kubernetes_addons import WorkloadTarget
from components.telemetry import ServingAutoscaling
from components.serving_auth import ServingApiKeys, keys_document
from components.settings import NodePoolSettings, WorkloadSettings
from contracts import env as names
from contracts import outputs as out
from workloads.serving.config import parse_config
from workloads.serving.guards import parse_keys

KEY = "arn:aws:kms:us-east-1:123456789012:key/"
SECRET = "aiinfra:serving_auth:ServingApiKeys"


def _server_env(graph) -> dict[str, str]:
    [server] = one(graph, DEPLOYMENT, "workloads-serving").inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in server["env"]}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_serves_with_api_keys_from_its_own_secret(stack_graph, stack):
    graph = stack_graph(stack)
    secret = one(graph, "aws:secretsmanager/secret:Secret", "serving-api-keys")
    assert secret.inputs["kmsKeyId"] == key_arn(graph, "data")
    assert secret.inputs["name"] == f"aiinfra/{stack}/serving/api-keys"
    env = _server_env(graph)
    arn = graph.stack_outputs[out.SERVING_API_KEYS_SECRET_ARN]
    assert env[names.SERVING_API_KEYS_SECRET_ARN] == arn == secret.outputs["arn"]
    assert env[names.serving_option("--max-inputs")] == "64"
    version = one(graph, "aws:secretsmanager/secretVersion:SecretVersion", "serving-api-keys")
    assert version.inputs["secretId"] == secret.inputs["name"]  # the mocks give a secret its name as id


def test_only_the_serving_role_may_read_the_keys(stack_graph):
    graph = stack_graph("prod")
    arn = graph.stack_outputs[out.SERVING_API_KEYS_SECRET_ARN]
    for role in ("training", "compilation", "serving"):
        statements = statements_of(graph, role_by_arn(graph, graph.stack_outputs[f"{role}ServiceAccountRoleArn"]))
        readers = [s for s in statements if s.get("Resource") == arn]
        if role == "serving":
            assert readers == [{"Sid": "ReadServingApiKeys", "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue", "Resource": arn}]
            decrypt = next(s for s in statements if s.get("Sid") == "DecryptServingApiKeys")
            assert decrypt["Resource"] == key_arn(graph, "data")
            assert decrypt["Condition"] == {"StringEquals": {
                "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
        else:
            assert readers == [], role


def test_limits_from_settings_reach_the_server_as_it_parses_them(synth_with):
    graph = synth_with({"aiinfra:workloads": {"serving": {
        "rateLimitRps": 25.5, "rateLimitBurst": 40, "maxInputs": 16, "maxInputTokens": 256}}})
    env = _server_env(graph)
    serving_env = {k: v for k, v in env.items() if k.startswith(names.SERVING_PREFIX)}
    config = parse_config([], environ=serving_env)
    assert (config.rate_limit_rps, config.rate_limit_burst, config.max_inputs, config.max_input_tokens) == (
        25.5, 40, 16, 256)
    assert config.api_keys_secret_arn == graph.stack_outputs[out.SERVING_API_KEYS_SECRET_ARN]


def test_api_keys_off_leaves_no_secret_and_no_grant(synth_with):
    graph = synth_with({"aiinfra:workloads": {"serving": {"apiKeys": False}}})
    assert [r for r in graph.of_type("aws:secretsmanager/secret:Secret") if r.name == "serving-api-keys"] == []
    assert names.SERVING_API_KEYS_SECRET_ARN not in _server_env(graph)
    assert out.SERVING_API_KEYS_SECRET_ARN not in graph.stack_outputs


def test_a_burst_without_a_rate_is_refused_with_one_line(settings_error):
    message = settings_error({"aiinfra:workloads": {"serving": {"rateLimitBurst": 10}}})
    assert "serving.rateLimitBurst" in message and "needs rateLimitRps" in message


def test_serving_api_keys_alone(monkeypatch):
    built = build(monkeypatch, lambda: ServingApiKeys("keys", stack=identity(), data_key_arn=KEY + "data"))
    secret = built.one("aws:secretsmanager/secret:Secret").inputs
    assert secret["kmsKeyId"] == KEY + "data" and secret["recoveryWindowInDays"] == 7
    assert built.one("aws:secretsmanager/secretVersion:SecretVersion").inputs["secretString"]  # redacted offline
    # What the stack writes is what the server reads.
    assert parse_keys(json.dumps(keys_document("k-1", "k-2")), "secret") == ("k-1", "k-2")


def test_cluster_workloads_alone_pass_the_given_keys_secret(monkeypatch):
    pools = (section(NodePoolSettings, {"name": "train", "profile": "trainium", "instanceTypes": ["trn1.2xlarge"]}),
             section(NodePoolSettings, {"name": "infer", "profile": "inferentia", "instanceTypes": ["inf2.xlarge"]}))
    keys_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys-standin"
    cache = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cache-standin"

    def declare() -> None:
        from test_components_alone import serving_metrics, storage_refs

        provider = k8s.Provider("k8s-standin", kubeconfig="{}")
        ClusterWorkloads("workloads", section(WorkloadSettings, {"training": {"nodes": 1},
                                                                 "serving": {"rateLimitRps": 5}}),
                         stack=identity(), node_pools=pools, addons=WorkloadTarget(provider, ()),
                         storage=storage_refs(), models_key_arn=KEY + "models", data_key_arn=KEY + "data",
                         vpc_cidr="10.0.0.0/16", api_keys_secret_arn=keys_arn,
                         autoscaling=ServingAutoscaling(provider, serving_metrics()),
                         feature_store=SharedCache(pulumi.Output.from_input("cache.standin"),
                                                   pulumi.Output.from_input(cache)))

    built = build(monkeypatch, declare)
    server = built.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env[names.SERVING_API_KEYS_SECRET_ARN] == keys_arn
    assert float(env["SERVING_RATE_LIMIT_RPS"]) == 5
    assert "SERVING_RATE_LIMIT_BURST" not in env
