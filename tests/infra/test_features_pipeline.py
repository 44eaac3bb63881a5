"""The feature pipeline on the shipped prod stack (through `AiPlatform`, under the Pulumi mocks): Glue schemas, the
topic Job, the materializer Deployment, their identities and network rules, the consumer-lag alarm, and the
settings section; plus the component alone under another partition.

The Job's and Deployment's containers are checked by handing their rendered env and args to the workload's own
argument parser: what the pod would run is the project's command, configured by the variables it reads."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from contracts import features as facts
from contracts import outputs as out
from contracts.ports import KAFKA_IAM, REDIS

MATERIALIZER = "features-materializer-user_activity"
TOPIC_JOB = "features-topics-user_activity"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


@pytest.fixture(scope="module")
def prod(stack_graph):
    return stack_graph("prod")


def one(graph, type_token: str, name: str):
    found = [r for r in graph.of_type(type_token) if r.name == name]
    assert len(found) == 1, (type_token, name, [r.name for r in graph.of_type(type_token)])
    return found[0]


def statements(graph, type_token: str, name: str, key: str = "policy") -> dict[str, dict[str, Any]]:
    policy = json.loads(one(graph, type_token, name).inputs[key])
    return {s.get("Sid", str(i)): s for i, s in enumerate(policy["Statement"])}


def role_statements(graph, name: str) -> dict[str, dict[str, Any]]:
    return statements(graph, "aws:iam/rolePolicy:RolePolicy", name)


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def parsed(container: dict, monkeypatch: pytest.MonkeyPatch):
    """What `python -m workloads.features` makes of the container's args and env."""
    from workloads.features.__main__ import parser

    assert container["command"] == ["python", "-m", "workloads.features"]
    for key, value in env_of(container).items():
        monkeypatch.setenv(key, value)
    return parser().parse_args(container["args"])


def pod_of(graph, type_token: str, name: str) -> dict:
    return one(graph, type_token, name).inputs["spec"]["template"]["spec"]


def msk(graph):
    return graph.of_type("aws:msk/cluster:Cluster")[0]


def test_glue_registry_holds_the_schema_files_with_backward_compatibility(prod) -> None:
    schema = one(prod, "aws:glue/schema:Schema", "features-schema-user_activity").inputs
    assert schema["compatibility"] == "BACKWARD" and schema["dataFormat"] == "JSON"
    assert json.loads(schema["schemaDefinition"]) == json.loads(facts.USER_ACTIVITY.schema_file().read_text())
    registry = one(prod, "aws:glue/registry:Registry", "features-registry")
    assert registry.inputs["registryName"] == "aiinfra-prod-features"
    assert prod.stack_outputs[out.FEATURES_REGISTRY_ARN] == registry.outputs["arn"]


def test_the_materializer_may_read_exactly_the_registry_and_its_schemas(prod) -> None:
    read = role_statements(prod, "features-materializer")["ReadSchemas"]
    registry = one(prod, "aws:glue/registry:Registry", "features-registry").outputs["arn"]
    schema = one(prod, "aws:glue/schema:Schema", "features-schema-user_activity").outputs["arn"]
    assert sorted(read["Resource"]) == sorted([registry, schema])
    assert set(read["Action"]) >= {"glue:GetSchemaVersion", "glue:GetSchemaByDefinition"}
    assert all(a.startswith(("glue:Get", "glue:List")) for a in read["Action"])


def test_topic_job_runs_the_idempotent_create_command_against_msk_with_iam(prod, monkeypatch) -> None:
    pod = pod_of(prod, "kubernetes:batch/v1:Job", TOPIC_JOB)
    container = pod["containers"][0]
    args = parsed(container, monkeypatch)
    assert args.command == "create-topics" and args.view == "user_activity"
    assert args.kafka_auth == "iam" and args.region == "us-east-1" and args.replication == 3
    assert args.bootstrap == msk(prod).outputs["bootstrapBrokersSaslIam"]
    assert pod["serviceAccountName"] == "topic-admin" and pod["restartPolicy"] == "OnFailure"
    assert container["image"] == f"{prod.stack_outputs[out.repository_url('training')]}:1.0.0"


def test_topic_admin_role_may_create_only_the_feature_topics(prod) -> None:
    sids = role_statements(prod, "features-topic-admin")
    cluster_arn = msk(prod).outputs["arn"]
    assert sorted(sids["CreateFeatureTopics"]["Resource"]) == sorted(
        cluster_arn.replace(":cluster/", ":topic/") + f"/{t}" for t in facts.USER_ACTIVITY.topics)
    assert sids["CreateFeatureTopics"]["Action"] == ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic"]
    assert sids["Connect"]["Resource"] == cluster_arn
    trust = json.loads(one(prod, "aws:iam/role:Role", "features-topic-admin").inputs["assumeRolePolicy"])
    (condition,) = [v for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert condition == "system:serviceaccount:features:topic-admin"


def test_pods_wait_for_their_identity_grants_and_network_rules(prod) -> None:
    urns = {r.name: r.urn for r in prod}
    job = one(prod, "kubernetes:batch/v1:Job", TOPIC_JOB)
    assert {urns["features-topic-admin"], urns["features-sa-topic-admin"]} <= set(job.dependencies)
    assert one(prod, NETWORK_POLICY, "features-topic-admin").urn in job.dependencies
    deployment = one(prod, "kubernetes:apps/v1:Deployment", MATERIALIZER)
    assert job.urn in deployment.dependencies  # topics exist before the consumer starts
    grants = [r.urn for r in prod.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/rolePolicy:RolePolicy")
              if r.name.startswith("features-materializer")]
    assert len(grants) == 3 and set(grants) <= set(deployment.dependencies)


def test_materializer_deployment_is_hardened_and_configured_from_the_platform(prod, monkeypatch) -> None:
    deployment = one(prod, "kubernetes:apps/v1:Deployment", MATERIALIZER).inputs
    assert deployment["metadata"]["namespace"] == prod.stack_outputs[out.FEATURES_NAMESPACE] == "features"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and pod["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"}
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "1000m",
                                                                                      "memory": "1024Mi"}
    assert deployment["spec"]["replicas"] == 3 and pod["terminationGracePeriodSeconds"] == 30
    args = parsed(container, monkeypatch)
    assert args.command == "materialize" and args.kafka_auth == "iam" and args.batch == 2000
    assert args.group == "aiinfra-prod-user_activity-materializer"
    assert args.redis_url == f"rediss://{prod.stack_outputs[out.FEATURE_STORE_ENDPOINT]}:{REDIS}/0"
    assert args.redis_auth_secret_arn == prod.stack_outputs[out.FEATURE_STORE_SECRET_ARN]
    assert args.offline_uri == f"s3://{prod.stack_outputs[out.bucket_name('datasets')]}/features"
    assert args.offline_kms_key_id == prod.stack_outputs[out.key_arn("data")]
    assert args.metrics_port == facts.METRICS_PORT == container["ports"][0]["containerPort"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_materializer_role_attaches_the_msk_policies_that_grant_its_topics_and_group(prod) -> None:
    attached = {r.name: r.inputs["policyArn"] for r in prod.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if r.name.startswith("features-")}
    policies = {r.name: r for r in prod.of_type("aws:iam/policy:Policy")}
    consumer, producer = policies["streaming-consumer"], policies["streaming-producer"]
    assert attached == {"features-materializer-consumer": consumer.outputs["arn"],
                        "features-materializer-producer": producer.outputs["arn"],
                        "features-event-producer-producer": producer.outputs["arn"]}
    cluster_arn = msk(prod).outputs["arn"]
    topic = cluster_arn.replace(":cluster/", ":topic/") + "/"
    reads = statements(prod, "aws:iam/policy:Policy", "streaming-consumer")
    assert topic + facts.USER_ACTIVITY.source_topic in reads["ReadTopics"]["Resource"]
    group = cluster_arn.replace(":cluster/", ":group/") + "/" + facts.consumer_group("aiinfra-prod-", "user_activity")
    assert fnmatch.fnmatchcase(group, reads["ConsumerGroups"]["Resource"])
    writes = statements(prod, "aws:iam/policy:Policy", "streaming-producer")
    assert topic + facts.USER_ACTIVITY.dead_letter_topic in writes["WriteTopics"]["Resource"]


def test_materializer_role_is_scoped_to_its_prefix_secret_and_key(prod) -> None:
    sids = role_statements(prod, "features-materializer")
    bucket_arn = f"arn:aws:s3:::{prod.stack_outputs[out.bucket_name('datasets')]}"
    data_key = prod.stack_outputs[out.key_arn("data")]
    assert sids["WriteOfflineStore"]["Resource"] == f"{bucket_arn}/{facts.OFFLINE_PREFIX}*"
    assert sids["ListOfflineStore"]["Condition"] == {"StringLike": {"s3:prefix": [f"{facts.OFFLINE_PREFIX}*"]}}
    assert sids["OfflineStoreKey"]["Resource"] == data_key
    assert sids["OfflineStoreKey"]["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    assert sids["ReadFeatureStoreAuthSecret"]["Resource"] == prod.stack_outputs[out.FEATURE_STORE_SECRET_ARN]
    trust = json.loads(one(prod, "aws:iam/role:Role", "features-materializer").inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert {v for k, v in condition.items() if k.endswith(":sub")} == {"system:serviceaccount:features:materializer"}
    account = one(prod, "kubernetes:core/v1:ServiceAccount", "features-sa-materializer").inputs
    role_arn = one(prod, "aws:iam/role:Role", "features-materializer").outputs["arn"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role_arn


def test_namespace_admits_the_pods_under_restricted_quota_and_default_deny(prod) -> None:
    namespace = one(prod, "kubernetes:core/v1:Namespace", "features-namespace").inputs
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = one(prod, "kubernetes:core/v1:ResourceQuota", "features-namespace-quota").inputs
    assert quota["metadata"]["namespace"] == "features" and quota["spec"]["hard"]["requests.cpu"] == "8"
    assert one(prod, "kubernetes:core/v1:LimitRange", "features-namespace-limits")
    deny = one(prod, NETWORK_POLICY, "features-namespace-default-deny").inputs["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_materializer_may_reach_the_brokers_and_redis_only(prod) -> None:
    spec = one(prod, NETWORK_POLICY, "features-materializer").inputs["spec"]
    # The subnets MSK's brokers and the Redis nodes are placed in.
    subnets = {r.id: r.inputs["cidrBlock"] for r in prod.of_type("aws:ec2/subnet:Subnet")}
    placed = msk(prod).inputs["brokerNodeGroupInfo"]["clientSubnets"]
    redis_group = one(prod, "aws:elasticache/subnetGroup:SubnetGroup", "feature-store-subnets").inputs["subnetIds"]
    assert sorted(placed) == sorted(redis_group)
    private = [{"ipBlock": {"cidr": subnets[s]}} for s in placed]
    assert spec["egress"] == [{"to": private, "ports": [{"protocol": "TCP", "port": KAFKA_IAM}]},
                              {"to": private, "ports": [{"protocol": "TCP", "port": REDIS}]}]
    assert spec["ingress"] == [{"from": [{"ipBlock": {"cidr": "10.30.0.0/16"}}],
                                "ports": [{"protocol": "TCP", "port": facts.METRICS_PORT}]}]
    topics = one(prod, NETWORK_POLICY, "features-topic-admin").inputs["spec"]
    assert topics["egress"] == [{"to": private, "ports": [{"protocol": "TCP", "port": KAFKA_IAM}]}]
    # Besides these, the namespace allows only DNS and HTTPS (the AWS APIs) out.
    others = [r.inputs["spec"] for r in prod.of_type(NETWORK_POLICY)
              if r.inputs["metadata"]["namespace"] == "features" and r.name.startswith("features-namespace-")]
    ports = sorted({(p["protocol"], p["port"]) for s in others for rule in s.get("egress", []) for p in rule["ports"]})
    assert ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)]


def test_consumer_lag_alarm_watches_the_materializers_group_and_notifies_the_topic(prod) -> None:
    alarm = one(prod, "aws:cloudwatch/metricAlarm:MetricAlarm", "features-user-activity-consumer-lag").inputs
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == ("AWS/Kafka", "MaxOffsetLag", "Maximum")
    assert alarm["dimensions"] == {"Cluster Name": msk(prod).inputs["clusterName"],
                                   "Consumer Group": "aiinfra-prod-user_activity-materializer",
                                   "Topic": facts.USER_ACTIVITY.source_topic}
    assert alarm["threshold"] == 10000 and alarm["evaluationPeriods"] == 5 and alarm["datapointsToAlarm"] == 5
    topic = prod.stack_outputs[out.ALARM_TOPIC_ARN]
    assert alarm["alarmActions"] == [topic] and alarm["okActions"] == [topic]
    # MaxOffsetLag is a DEFAULT-level MSK metric: every monitoring level the stack may set includes it.
    assert msk(prod).inputs["enhancedMonitoring"] in ("DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER",
                                                      "PER_TOPIC_PER_PARTITION")


def test_thresholds_replicas_and_replication_follow_the_stack_file(synth_with) -> None:
    graph = synth_with({"aiinfra:features": {"maxLagRecords": 777, "lagMinutes": 3, "replicas": 20,
                                             "replication": None}}, base="prod")
    alarm = one(graph, "aws:cloudwatch/metricAlarm:MetricAlarm", "features-user-activity-consumer-lag").inputs
    assert alarm["threshold"] == 777 and alarm["evaluationPeriods"] == 3
    deployment = one(graph, "kubernetes:apps/v1:Deployment", MATERIALIZER)
    assert deployment.inputs["spec"]["replicas"] == facts.USER_ACTIVITY.partitions
    # Unset, the topics take the brokers' default.replication.factor (-1 asks the broker for it).
    job = pod_of(graph, "kubernetes:batch/v1:Job", TOPIC_JOB)["containers"][0]
    assert env_of(job)[facts.ENV_REPLICATION] == "-1"


def test_the_component_alone_takes_partition_names_from_the_account(monkeypatch) -> None:
    from alone import build, identity, section
    from test_components_alone import oidc, storage_refs

    from components.features import FeaturePipeline, FeaturesData, FeaturesOnlineStore, FeaturesStreaming
    from components.kubernetes_addons import WorkloadTarget
    from components.settings import FeaturesSettings

    def program() -> None:
        o = pulumi.Output.from_input
        FeaturePipeline(
            "features", section(FeaturesSettings), stack=identity("cn-north-1"), oidc=oidc(),
            kubernetes=WorkloadTarget(k8s.Provider("k8s"), ()),
            streaming=FeaturesStreaming(
                cluster_arn=o("arn:aws-cn:kafka:cn-north-1:123456789012:cluster/aiinfra-dev-kafka/u-1"),
                cluster_name="aiinfra-dev-kafka", bootstrap_brokers="b-1.kafka.internal:9098",
                consumer_policy_arn="consumer", producer_policy_arn="producer"),
            online=FeaturesOnlineStore("master.redis.internal", "secret"),
            data=FeaturesData(bucket=storage_refs().buckets["datasets"], data_key_arn="key", vpc_cidr="10.0.0.0/16",
                              private_subnet_cidrs=("10.0.0.0/19",), image="image:1"),
            alarm_topic_arn="topic")

    built = build(monkeypatch, program, region="cn-north-1", partition="aws-cn")
    policy = json.loads(built.one("aws:iam/rolePolicy:RolePolicy", "features-materializer").inputs["policy"])
    via = {s["Sid"]: s["Condition"]["StringEquals"]["kms:ViaService"] for s in policy["Statement"] if "Condition" in s
           and "StringEquals" in s["Condition"]}
    assert via == {"OfflineStoreKey": "s3.cn-north-1.amazonaws.com.cn",
                   "DecryptFeatureStoreAuthSecret": "secretsmanager.cn-north-1.amazonaws.com.cn"}
    topics = json.loads(built.one("aws:iam/rolePolicy:RolePolicy", "features-topic-admin").inputs["policy"])
    assert all(arn.startswith("arn:aws-cn:kafka:cn-north-1:123456789012:topic/aiinfra-dev-kafka/u-1/")
               for arn in topics["Statement"][1]["Resource"])


# --- settings --------------------------------------------------------------------------------------------------

def test_settings_defaults_by_environment() -> None:
    from components.settings import FeaturesSettings
    from contracts.config import Where, parse

    dev = parse(FeaturesSettings, {}, Where("Pulumi.dev.yaml", "aiinfra:features", "dev"))
    prod = parse(FeaturesSettings, {}, Where("Pulumi.prod.yaml", "aiinfra:features", "prod"))
    assert (dev.replication, dev.replicas) == (None, 1) and (prod.replication, prod.replicas) == (None, 2)
    assert prod.quota.cpu == 8 and prod.quota.pods == 20


@pytest.mark.parametrize(("overrides", "message"), [
    ({"aiinfra:features": {"schemaCompatibility": "NONE"}},
     "aiinfra:features.schemaCompatibility = 'NONE': allowed: BACKWARD, BACKWARD_ALL, "
     "FULL, FULL_ALL"),
    ({"aiinfra:features": {"namespace": "Feat_ures"}},
     "aiinfra:features.namespace = 'Feat_ures': must be a lowercase DNS label"),
    ({"aiinfra:features": {"replication": 5}}, "aiinfra:features.replication = 5: out of range; allowed: 1..3"),
    ({"aiinfra:features": {"replication": 1}},
     "aiinfra:features.replication = 1: must be between min.insync.replicas (2) and the broker count (3): fewer "
     "replicas refuse every acks=all write, more cannot be placed"),
    ({"aiinfra:features": {"replicas": 6, "cpuMillicores": 2000}},
     "aiinfra:features.quota.cpu = 8: the materializers and topic Jobs need 13 at 6 replicas; raise the quota or "
     "lower replicas"),
    ({"aiinfra:streaming": {"topics": ["features"]}},
     "aiinfra:streaming.topics = [\"features\"]: lacks user-activity, user-activity-dead-letters, which the feature "
     "pipeline reads and writes; add them"),
])
def test_bad_settings_name_the_key(settings_error, overrides, message) -> None:
    text = settings_error(overrides, base="prod")
    assert text.endswith(f"Pulumi.prod.yaml: {message}")
