"""Every component built by itself: its own settings section, stand-ins for its upstream outputs, nothing else.

Each test asserts what the component chose from those inputs (names, keys, subnets, ports, dependencies), and
the partition tests render under aws-cn to show no DNS name is hard-coded.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from alone import build, identity, section, serving_metrics
from components.accelerators import ami_parameter
from components.cluster import Cluster, ClusterAccess, NodeAddons, NodeBootstrap, OidcIssuer
from components.cluster_workloads import ClusterWorkloads, SharedCache
from components.encryption import EncryptionKeys, KeyArns
from components.feature_store import FeatureStore
from components.inference import Inference, ServingSecurityGroup, endpoint_watches
from components.kubernetes_addons import KubernetesAddons, WorkloadTarget
from components.monitoring import ClusterWatch, FeatureStoreWatch, Monitoring, StreamingWatch
from components.network import Network, VpcNetwork
from components.node_pools import NodePools
from components.settings import (
    ClusterSettings,
    EncryptionSettings,
    EndpointSettings,
    FeatureStoreSettings,
    KubernetesSettings,
    MonitoringSettings,
    NetworkSettings,
    NodePoolSettings,
    StorageSettings,
    StreamingSettings,
    WorkloadSettings,
)
from components.storage import BucketRef, RepositoryRef, Storage, StorageRefs
from components.telemetry import ServingAutoscaling
from components.streaming import Streaming
from components.workload_identity import WorkloadIdentity
from contracts.storage import CHECKPOINTS

KEY = "arn:aws:kms:us-east-1:123456789012:key/"


def keys() -> KeyArns:
    return KeyArns(**{d: KEY + d for d in ("data", "models", "logs", "cluster", "streaming", "monitoring")})


def vpc(zones: int = 3) -> VpcNetwork:
    out = pulumi.Output.from_input
    return VpcNetwork(
        vpc_id=out("vpc-standin"), cidr="10.50.0.0/16",
        private_subnet_ids=[out(f"subnet-private-{i}") for i in range(zones)],
        public_subnet_ids=[out(f"subnet-public-{i}") for i in range(zones)],
        availability_zones=[out(f"us-east-1{'abc'[i]}") for i in range(zones)], s3_prefix_list_id=out("pl-s3"))


def storage_refs() -> StorageRefs:
    out = pulumi.Output.from_input
    return StorageRefs(
        buckets={r: BucketRef(out(f"bucket-{r}"), out(f"arn:aws:s3:::bucket-{r}")) for r in ("datasets", "models",
                                                                                           "logs")},
        repositories={r: RepositoryRef(out(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{r}"),
                                       out(f"arn:aws:ecr:us-east-1:123456789012:repository/{r}"))
                      for r in ("training", "compilation", "serving")})


def oidc() -> OidcIssuer:
    out = pulumi.Output.from_input
    return OidcIssuer(out("arn:aws:iam::123456789012:oidc-provider/oidc.example/id/X"),
                      out("https://oidc.example/id/X"), out("sts.amazonaws.com"))


def statements(record: Any, key: str = "policy") -> list[dict[str, Any]]:
    return json.loads(record.inputs[key])["Statement"]


def test_encryption_keys_alone_take_the_window_and_name_the_partitions_services(monkeypatch):
    built = build(monkeypatch, lambda: EncryptionKeys(
        "keys", section(EncryptionSettings, {"deletionWindowDays": 12}), stack=identity("cn-north-1")),
        region="cn-north-1", partition="aws-cn")
    found = built.all("aws:kms/key:Key")
    assert len(found) == 6 and {k.inputs["deletionWindowInDays"] for k in found} == {12}
    assert all(k.inputs["enableKeyRotation"] for k in found)
    assert {a.inputs["name"] for a in built.all("aws:kms/alias:Alias")} == {
        f"alias/aiinfra-dev-{d}" for d in ("data", "models", "logs", "cluster", "streaming", "monitoring")}
    logs = next(statements(k)[1] for k in found if k.name == "keys-logs")
    assert logs["Principal"] == {"Service": "logs.cn-north-1.amazonaws.com.cn"}
    data = next(statements(k)[1] for k in found if k.name == "keys-data")
    assert data["Principal"]["AWS"] == ("arn:aws-cn:iam::123456789012:role/aws-service-role/"
                                        "autoscaling.amazonaws.com.cn/AWSServiceRoleForAutoScaling")


def test_network_alone_carves_its_subnets_and_names_endpoints_in_the_partitions_spelling(monkeypatch):
    settings = section(NetworkSettings, {"cidr": "10.60.0.0/16", "azCount": 2, "natGateways": "single",
                                         "interfaceEndpoints": ["sts", "ecr.api"]})
    built = build(monkeypatch, lambda: Network("network", settings, stack=identity("cn-north-1"),
                                               logs_key_arn=KEY + "logs"), region="cn-north-1", partition="aws-cn")
    subnets = {s.inputs["cidrBlock"] for s in built.all("aws:ec2/subnet:Subnet")}
    assert subnets == set(settings.subnet_layout[0]) | set(settings.subnet_layout[1])
    assert len(built.all("aws:ec2/natGateway:NatGateway")) == 1
    assert built.one("aws:cloudwatch/logGroup:LogGroup").inputs["kmsKeyId"] == KEY + "logs"
    names = {e.inputs["serviceName"] for e in built.all("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert names == {"cn.com.amazonaws.cn-north-1.s3", "cn.com.amazonaws.cn-north-1.sts",
                     "cn.com.amazonaws.cn-north-1.ecr.api"}
    trust = statements(built.one("aws:iam/role:Role"), "assumeRolePolicy")[0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com.cn"}


def test_storage_alone_encrypts_each_bucket_with_its_domains_key(monkeypatch):
    built = build(monkeypatch, lambda: Storage("storage", section(StorageSettings, {"imageRetentionCount": 7}),
                                               stack=identity(), keys=keys()))
    sse = {r.name: r.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
           for r in built.all("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")}
    assert sse == {"storage-datasets": KEY + "data", "storage-models": KEY + "models", "storage-logs": KEY + "logs"}
    repos = built.all("aws:ecr/repository:Repository")
    assert {r.inputs["encryptionConfigurations"][0]["kmsKey"] for r in repos} == {KEY + "models"}
    policy = json.loads(built.all("aws:ecr/lifecyclePolicy:LifecyclePolicy")[0].inputs["policy"])
    assert policy["rules"][1]["selection"]["countNumber"] == 7


def test_cluster_alone_uses_the_given_subnets_and_keys_and_installs_only_the_pre_node_addons(monkeypatch):
    settings = section(ClusterSettings, {"adminRoleNames": ["deployer"], "logRetentionDays": 60})
    built = build(monkeypatch, lambda: Cluster("cluster", settings, stack=identity(), network=vpc(), keys=keys()))
    cluster = built.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["subnetIds"] == [f"subnet-private-{i}" for i in range(3)]
    assert cluster.inputs["encryptionConfig"]["provider"]["keyArn"] == KEY + "cluster"
    assert built.one("aws:cloudwatch/logGroup:LogGroup").inputs["retentionInDays"] == 60
    assert {a.inputs["addonName"] for a in built.all("aws:eks/addon:Addon")} == {
        "vpc-cni", "kube-proxy", "eks-pod-identity-agent"}
    assert built.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").inputs["clientIdLists"] == [
        "sts.amazonaws.com"]


def test_node_pools_alone_pin_efa_pools_and_read_the_profiles_ami_parameter(monkeypatch):
    pools = (section(NodePoolSettings, {"name": "train", "profile": "trainium", "instanceTypes": ["trn1.32xlarge"],
                                        "minSize": 0, "maxSize": 2, "efaAvailabilityZone": 1}),)

    def program() -> None:
        out = pulumi.Output.from_input
        bootstrap = NodeBootstrap(out("eks-standin"), "aiinfra-dev-eks", "1.32", out("sg-cluster"), out("sg-nodes"),
                                  out("arn:aws:iam::123456789012:role/nodes"), ())
        NodePools("node-pools", pools, stack=identity(), cluster=bootstrap, network=vpc(), data_key_arn=KEY + "data")

    built = build(monkeypatch, program)
    group = built.one("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["subnetIds"] == ["subnet-private-1"]
    assert group.inputs["version"] == "1.32" and group.inputs["clusterName"] == "eks-standin"
    template = built.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert template["blockDeviceMappings"][0]["ebs"]["kmsKeyId"] == KEY + "data"
    asked = [args["name"] for token, args in built.calls if token == "aws:ssm/getParameter:getParameter"]
    assert asked == [ami_parameter("1.32", "trainium", "release_version")]


def test_node_addons_alone_wait_for_the_given_node_groups(monkeypatch):
    def program() -> None:
        stand_in = aws.ec2.PlacementGroup("node-group-standin", strategy="cluster")
        NodeAddons("node-addons", section(ClusterSettings, {"adminRoleNames": ["deployer"]}), stack=identity(),
                   cluster_name="eks-standin", oidc=oidc(), data_key_arn=KEY + "data", node_groups=[stand_in])

    built = build(monkeypatch, program)
    stand_in = built.one("aws:ec2/placementGroup:PlacementGroup").urn
    addons = built.all("aws:eks/addon:Addon")
    assert {a.inputs["addonName"] for a in addons} == {"coredns", "aws-ebs-csi-driver"}
    assert all(stand_in in a.dependencies for a in addons)
    kms = statements(built.one("aws:iam/rolePolicy:RolePolicy"))
    assert {s["Resource"] for s in kms} == {KEY + "data"}


def test_workload_identity_alone_grants_the_given_secret_and_prefixes(monkeypatch):
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:standin"
    built = build(monkeypatch, lambda: WorkloadIdentity(
        "identity", stack=identity(), oidc=oidc(), vpc_id="vpc-standin", storage=storage_refs(), keys=keys(),
        feature_store_secret_arn=secret))
    grant = statements(built.one("aws:iam/rolePolicy:RolePolicy", "identity-serving-feature-store"))
    assert grant[0]["Resource"] == secret
    assert grant[1]["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
    training = statements(built.one("aws:iam/policy:Policy", "identity-training-data"))
    checkpoints = next(s for s in training if s["Sid"] == "WriteCheckpoints")
    assert checkpoints["Resource"] == f"arn:aws:s3:::bucket-datasets/{CHECKPOINTS}*"


def test_kubernetes_addons_alone_annotate_the_given_roles_and_install_only_needed_plugins(monkeypatch):
    pools = (section(NodePoolSettings, {"name": "system", "profile": "cpu", "instanceTypes": ["m6i.large"]}),)

    def program() -> None:
        access = ClusterAccess(pulumi.Output.from_input("{}"), ())
        KubernetesAddons("kubernetes", section(KubernetesSettings), node_pools=pools, cluster=access,
                         service_account_roles={r: f"arn:aws:iam::123456789012:role/{r}"
                                                for r in ("training", "compilation", "serving")}, node_groups=[])

    built = build(monkeypatch, program)
    assert built.all("kubernetes:helm.sh/v3:Release") == []
    accounts = {a.inputs["metadata"]["name"]: a.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
                for a in built.all("kubernetes:core/v1:ServiceAccount")}
    assert accounts == {"trainer": "arn:aws:iam::123456789012:role/training",
                        "compiler": "arn:aws:iam::123456789012:role/compilation",
                        "model-server": "arn:aws:iam::123456789012:role/serving"}


def test_cluster_workloads_alone_point_the_servers_at_the_given_cache(monkeypatch):
    pools = (section(NodePoolSettings, {"name": "train", "profile": "trainium", "instanceTypes": ["trn1.2xlarge"]}),
             section(NodePoolSettings, {"name": "infer", "profile": "inferentia", "instanceTypes": ["inf2.xlarge"]}))
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:standin"

    def program() -> None:
        provider = k8s.Provider("k8s-standin", kubeconfig="{}")
        ClusterWorkloads("workloads", section(WorkloadSettings, {"training": {"nodes": 1}}), stack=identity(),
                         node_pools=pools, addons=WorkloadTarget(provider, ()), storage=storage_refs(),
                         models_key_arn=KEY + "models", data_key_arn=KEY + "data", vpc_cidr="10.0.0.0/16",
                         feature_store=SharedCache(pulumi.Output.from_input("cache.standin"),
                                                   pulumi.Output.from_input(secret)),
                         autoscaling=ServingAutoscaling(provider, serving_metrics()))

    built = build(monkeypatch, program)
    server = built.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["SERVING_REDIS_URL"] == "rediss://cache.standin:6379"
    assert env["SERVING_REDIS_AUTH_SECRET_ARN"] == secret
    assert server["image"].startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:")


def test_streaming_alone_sizes_brokers_from_the_given_zones_and_admits_the_given_clients(monkeypatch):
    built = build(monkeypatch, lambda: Streaming(
        "streaming", section(StreamingSettings, {"brokersPerAz": 2}), stack=identity(), network=vpc(3),
        keys=keys(), clients=["sg-client-a", "sg-client-b"]))
    cluster = built.one("aws:msk/cluster:Cluster").inputs
    assert cluster["numberOfBrokerNodes"] == 6
    assert cluster["encryptionInfo"]["encryptionAtRestKmsKeyArn"] == KEY + "streaming"
    rules = built.all("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert {(r.inputs["referencedSecurityGroupId"], r.inputs["fromPort"]) for r in rules} == {
        ("sg-client-a", 9098), ("sg-client-b", 9098)}


def test_feature_store_alone_writes_the_contracts_secret_fields(monkeypatch):
    built = build(monkeypatch, lambda: FeatureStore(
        "feature-store", section(FeatureStoreSettings, {"replicas": 1}), stack=identity(), network=vpc(2),
        keys=keys(), clients=["sg-client"]))
    group = built.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert group["kmsKeyId"] == KEY + "data" and group["numCacheClusters"] == 2 and group["port"] == 6379
    assert group["preferredCacheClusterAzs"] == ["us-east-1a", "us-east-1b"]
    secret = built.one("aws:secretsmanager/secret:Secret").inputs
    assert secret["kmsKeyId"] == KEY + "data" and secret["name"] == "aiinfra/dev/feature-store/auth"
    # The version holds the token, so the recording keeps it masked, never in clear.
    assert built.one("aws:secretsmanager/secretVersion:SecretVersion").inputs["secretString"] == "[secret]"


def test_monitoring_and_inference_alone_share_the_endpoint_names_and_rollback_alarms(monkeypatch):
    endpoint = section(EndpointSettings, {"name": "scorer", "modelPrefix": "scorer/v1", "imageTag": "1.0.0",
                                          "instanceType": "ml.m5.xlarge"})

    def program() -> None:
        stack = identity()
        monitoring = Monitoring(
            "monitoring", section(MonitoringSettings), stack=stack, key_arn=KEY + "monitoring",
            endpoints=endpoint_watches(stack, [endpoint]),
            streaming=StreamingWatch(pulumi.Output.from_input("kafka-standin"), 2),
            feature_store=FeatureStoreWatch("features-standin", ("features-standin-001",)),
            cluster=ClusterWatch(serving_metrics(), (("serving", "model-server"),), ("neuron",)))
        Inference("inference", [endpoint], stack=stack, network=vpc(), keys=keys(), storage=storage_refs(),
                  security_group_id="sg-serving", alarms=monitoring.endpoint_alarms)

    built = build(monkeypatch, program)
    alarms = {a.inputs["name"]: a.inputs for a in built.all("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert alarms["aiinfra-dev-scorer-latency-p99"]["dimensions"]["EndpointName"] == "aiinfra-dev-scorer"
    assert "aiinfra-dev-redis-replication-lag" not in alarms  # one member: no replica to lag
    assert {n for n in alarms if "kafka-broker" in n} == {
        f"aiinfra-dev-kafka-broker-{b}-{k}" for b in (1, 2) for k in ("disk", "under-replicated")}
    deployed = built.one("aws:sagemaker/endpoint:Endpoint").inputs
    rollback = [a["alarmName"] for a in deployed["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]]
    assert rollback == ["aiinfra-dev-scorer-latency-p99", "aiinfra-dev-scorer-5xx-rate"]
    model = built.one("aws:sagemaker/model:Model").inputs
    assert model["vpcConfig"]["securityGroupIds"] == ["sg-serving"]
    assert model["primaryContainer"]["modelDataUrl"] == "s3://bucket-models/scorer/v1/model.tar.gz"


def test_serving_security_group_alone_reaches_s3_through_the_given_prefix_list(monkeypatch):
    built = build(monkeypatch, lambda: ServingSecurityGroup("serving", stack=identity(), network=vpc()))
    group = built.one("aws:ec2/securityGroup:SecurityGroup").inputs
    assert group["ingress"] == []
    assert any(rule.get("prefixListIds") == ["pl-s3"] for rule in group["egress"])
    assert {rule["fromPort"] for rule in group["egress"]} == {443, 9098, 6379}
