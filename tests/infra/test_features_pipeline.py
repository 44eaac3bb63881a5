"""The feature pipeline component built alone under the Pulumi mocks: schemas, topic Job, materializer
Deployment, its identity and network rules, and its settings section."""

from __future__ import annotations

import json

import pytest

from aiinfra.engine import run_program
from aiinfra.stackfile import StackConfig
from contracts import features as facts
from contracts.config import SettingsError, Where, parse

CLUSTER_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/aiinfra-prod-kafka/abcd-1234"
CONSUMER = "arn:aws:iam::123456789012:policy/aiinfra-prod-kafka-consumer"
PRODUCER = "arn:aws:iam::123456789012:policy/aiinfra-prod-kafka-producer"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aiinfra/prod/feature-store/auth-AbCdEf"
DATA_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
BUCKET_ARN = "arn:aws:s3:::aiinfra-prod-datasets-123456789012-us-east-1"
CIDRS = ("10.0.0.0/19", "10.0.32.0/19")


def build(raw: dict | None = None, environment: str = "prod"):
    def program() -> None:
        import pulumi_kubernetes as k8s

        from components.features import (FeaturePipeline, FeaturesCluster, FeaturesData, FeaturesOnlineStore,
                                         FeaturesSettings, FeaturesStreaming)

        settings = parse(FeaturesSettings, raw or {}, Where("Pulumi.prod.yaml", "aiinfra:features", environment))
        FeaturePipeline(
            "features", settings,
            cluster=FeaturesCluster(provider=k8s.Provider("k8s"),
                                    oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1."
                                                      "amazonaws.com/id/ABC",
                                    oidc_issuer="https://oidc.eks.us-east-1.amazonaws.com/id/ABC"),
            streaming=FeaturesStreaming(cluster_arn=CLUSTER_ARN, bootstrap_brokers="b-1.kafka.internal:9098",
                                        consumer_policy_arn=CONSUMER, producer_policy_arn=PRODUCER, port=9098,
                                        group_prefix="aiinfra-prod-"),
            online=FeaturesOnlineStore(endpoint="master.redis.internal", port=6379, auth_secret_arn=SECRET),
            data=FeaturesData(bucket_name="aiinfra-prod-datasets-123456789012-us-east-1", bucket_arn=BUCKET_ARN,
                              data_key_arn=DATA_KEY, private_subnet_cidrs=CIDRS, region="us-east-1",
                              image="123456789012.dkr.ecr.us-east-1.amazonaws.com/aiinfra-prod-training:v1",
                              name_prefix="aiinfra-prod-"))

    return run_program(program, StackConfig("aiinfra", "prod", "test", {"aws:region": "us-east-1"}, ()))


@pytest.fixture(scope="module")
def graph():
    return build()


def one(graph, type_token: str, name: str):
    found = [r for r in graph.of_type(type_token) if r.name == name]
    assert len(found) == 1, (type_token, name, [r.name for r in graph.of_type(type_token)])
    return found[0]


def statements(graph, name: str) -> dict:
    policy = json.loads(one(graph, "aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_glue_registry_holds_the_schema_files_with_backward_compatibility(graph) -> None:
    schema = one(graph, "aws:glue/schema:Schema", "features-schema-user_activity").inputs
    assert schema["compatibility"] == "BACKWARD" and schema["dataFormat"] == "JSON"
    assert json.loads(schema["schemaDefinition"]) == json.loads(facts.USER_ACTIVITY.schema_file().read_text())
    assert one(graph, "aws:glue/registry:Registry", "features-registry").inputs["registryName"] == "aiinfra-prod-features"


def test_topic_job_runs_the_idempotent_create_command_with_a_create_only_role(graph) -> None:
    job = one(graph, "kubernetes:batch/v1:Job", "features-topics-user_activity").inputs
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "workloads.features"] and container["args"] == ["create-topics"]
    env = env_of(container)
    assert env[facts.ENV_KAFKA_AUTH] == "iam" and env[facts.ENV_REPLICATION] == "3"
    assert pod["serviceAccountName"] == "topic-admin"
    sids = statements(graph, "features-topic-admin")
    topics = sids["CreateFeatureTopics"]["Resource"]
    assert sorted(topics) == sorted(CLUSTER_ARN.replace(":cluster/", ":topic/") + f"/{t}"
                                    for t in facts.USER_ACTIVITY.topics)
    assert sids["CreateFeatureTopics"]["Action"] == ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic"]


def test_materializer_deployment_is_hardened_and_configured_from_the_contracts(graph) -> None:
    deployment = one(graph, "kubernetes:apps/v1:Deployment", "features-materializer-user_activity")
    pod = deployment.inputs["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["materialize"] and pod["serviceAccountName"] == "materializer"
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    env = env_of(container)
    assert env[facts.ENV_GROUP] == "aiinfra-prod-user_activity-materializer"
    assert env[facts.ENV_REDIS_URL] == "rediss://master.redis.internal:6379/0"
    assert env[facts.ENV_REDIS_AUTH_SECRET_ARN] == SECRET
    assert env[facts.ENV_OFFLINE_URI] == "s3://aiinfra-prod-datasets-123456789012-us-east-1/features"
    assert env[facts.ENV_OFFLINE_KMS_KEY_ID] == DATA_KEY and env[facts.ENV_VIEW] == "user_activity"
    assert pod["terminationGracePeriodSeconds"] == 30
    job = one(graph, "kubernetes:batch/v1:Job", "features-topics-user_activity")
    assert job.urn in deployment.dependencies  # topics exist before the consumer starts
    namespace = one(graph, "kubernetes:core/v1:Namespace", "features-namespace").inputs
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_materializer_role_is_scoped_to_its_prefix_secret_and_policies(graph) -> None:
    sids = statements(graph, "features-materializer")
    assert sids["WriteOfflineStore"]["Resource"] == f"{BUCKET_ARN}/{facts.OFFLINE_PREFIX}*"
    assert sids["ListOfflineStore"]["Condition"] == {"StringLike": {"s3:prefix": [f"{facts.OFFLINE_PREFIX}*"]}}
    assert sids["OfflineStoreKey"]["Resource"] == DATA_KEY
    assert sids["ReadFeatureStoreAuthSecret"]["Resource"] == SECRET
    assert all(a.startswith("glue:Get") or a.startswith("glue:List") for a in sids["ReadSchemas"]["Action"])
    attached = {r.name: r.inputs["policyArn"] for r in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert attached == {"features-materializer-consumer": CONSUMER, "features-materializer-producer": PRODUCER,
                        "features-event-producer-producer": PRODUCER}
    trust = json.loads(one(graph, "aws:iam/role:Role", "features-materializer").inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert condition["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"] == "system:serviceaccount:features:materializer"


def test_network_policies_deny_by_default_and_open_only_brokers_redis_dns_and_https(graph) -> None:
    deny = one(graph, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "features-default-deny").inputs["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    spec = one(graph, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "features-materializer").inputs["spec"]
    egress = spec["egress"]
    private = [{"ipBlock": {"cidr": c}} for c in CIDRS]
    assert {"to": private, "ports": [{"protocol": "TCP", "port": 9098}]} in egress
    assert {"to": private, "ports": [{"protocol": "TCP", "port": 6379}]} in egress
    ports = sorted((p["protocol"], p["port"]) for rule in egress for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 6379), ("TCP", 9098), ("UDP", 53)]
    assert spec["ingress"] == [{"ports": [{"protocol": "TCP", "port": facts.METRICS_PORT}]}]


def test_settings_defaults_by_environment_and_bad_values_name_the_key() -> None:
    from components.features import FeaturesSettings

    dev = parse(FeaturesSettings, {}, Where("Pulumi.dev.yaml", "aiinfra:features", "dev"))
    assert dev.replication == 1 and parse(FeaturesSettings, {}, Where("x", "aiinfra:features", "prod")).replication == 3
    with pytest.raises(SettingsError, match=r"^Pulumi.prod.yaml: aiinfra:features.schemaCompatibility = 'NONE': "
                                            r"allowed: BACKWARD, BACKWARD_ALL, FULL, FULL_ALL$"):
        parse(FeaturesSettings, {"schemaCompatibility": "NONE"}, Where("Pulumi.prod.yaml", "aiinfra:features", "prod"))
    with pytest.raises(SettingsError, match="aiinfra:features.namespace = 'Feat_ures': must be a lowercase DNS label"):
        parse(FeaturesSettings, {"namespace": "Feat_ures"}, Where("Pulumi.prod.yaml", "aiinfra:features", "prod"))
    with pytest.raises(SettingsError, match=r"aiinfra:features.replication = 5: out of range; allowed: 1..3"):
        parse(FeaturesSettings, {"replication": 5}, Where("Pulumi.prod.yaml", "aiinfra:features", "prod"))


def test_replica_count_never_exceeds_the_partitions() -> None:
    graph = build({"replicas": 20})
    deployment = one(graph, "kubernetes:apps/v1:Deployment", "features-materializer-user_activity")
    assert deployment.inputs["spec"]["replicas"] == facts.USER_ACTIVITY.partitions
