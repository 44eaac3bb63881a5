"""The EKS control plane: private API, secrets encryption, logs, access entries, OIDC/IRSA and managed add-ons."""

from __future__ import annotations

import pytest

from compute_graph import (
    CLUSTER,
    EGRESS,
    INGRESS,
    SECURITY_GROUP,
    launch_template,
    node_groups,
    one,
    policy,
    role_by_arn,
    template_security_groups,
)

STACKS = ("dev", "staging", "prod")
LOG_TYPES = {"api", "audit", "authenticator", "controllerManager", "scheduler"}
ADDONS = {"vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver", "metrics-server",
          "amazon-cloudwatch-observability"}


@pytest.mark.parametrize("stack", STACKS)
def test_api_endpoint_is_private_in_the_private_subnets(stack_graph, stack):
    graph = stack_graph(stack)
    vpc = one(graph, CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert not vpc.get("publicAccessCidrs")
    assert vpc["subnetIds"] == graph.stack_outputs["privateSubnetIds"]


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_are_envelope_encrypted_with_the_cluster_key(stack_graph, stack):
    graph = stack_graph(stack)
    encryption = one(graph, CLUSTER).inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"] == graph.stack_outputs["clusterKeyArn"]
    role = one(graph, "aws:iam/rolePolicy:RolePolicy", "cluster-control-plane-secrets-key")
    statement = policy(role.inputs["policy"])["Statement"][0]
    assert statement["Resource"] == graph.stack_outputs["clusterKeyArn"]
    assert "kms:Decrypt" in statement["Action"] and "kms:*" not in statement["Action"]


@pytest.mark.parametrize("stack,retention", [("dev", 30), ("staging", 90), ("prod", 365)])
def test_every_control_plane_log_goes_to_an_encrypted_group_with_retention(stack_graph, stack, retention):
    graph = stack_graph(stack)
    cluster = one(graph, CLUSTER)
    assert set(cluster.inputs["enabledClusterLogTypes"]) == LOG_TYPES
    group = one(graph, "aws:cloudwatch/logGroup:LogGroup", "cluster-control-plane-logs")
    # EKS writes to this exact name; creating it first is what makes retention and the key stick.
    assert group.inputs["name"] == f"/aws/eks/{cluster.inputs['name']}/cluster"
    assert group.inputs["kmsKeyId"] == graph.stack_outputs["logsKeyArn"]
    assert group.inputs["retentionInDays"] == retention
    assert group.urn in cluster.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_administrators_get_access_entries_in_api_mode(stack_graph, stack):
    graph = stack_graph(stack)
    access = one(graph, CLUSTER).inputs["accessConfig"]
    assert access == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    entries = {r.inputs["principalArn"] for r in graph.of_type("aws:eks/accessEntry:AccessEntry")}
    assert entries == {"arn:aws:iam::123456789012:role/platform-deployer",
                       "arn:aws:iam::123456789012:role/ml-platform-admin"}
    associations = graph.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert {a.inputs["principalArn"] for a in associations} == entries
    for a in associations:
        assert a.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
        assert a.inputs["accessScope"] == {"type": "cluster"}


def test_oidc_provider_trusts_the_cluster_issuer_for_sts(stack_graph):
    graph = stack_graph("prod")
    cluster = one(graph, CLUSTER)
    provider = one(graph, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["url"] == cluster.outputs["identities"][0]["oidcs"][0]["issuer"]
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert graph.stack_outputs["clusterOidcProviderArn"] == provider.outputs["arn"]


@pytest.mark.parametrize("stack", STACKS)
def test_managed_addons_are_pinned_and_ordered_around_the_nodes(stack_graph, stack):
    graph = stack_graph(stack)
    addons = {r.inputs["addonName"]: r for r in graph.of_type("aws:eks/addon:Addon")}
    assert set(addons) == ADDONS
    assert all(a.inputs["addonVersion"].startswith("v") and "eksbuild" in a.inputs["addonVersion"]
               for a in addons.values())
    groups = [g.urn for g in node_groups(graph).values()]
    # CoreDNS, the CSI controller, metrics-server and the CloudWatch agents need nodes; nodes need the CNI first.
    for name in ("coredns", "aws-ebs-csi-driver", "metrics-server", "amazon-cloudwatch-observability"):
        assert set(groups) <= set(addons[name].dependencies)
    for group in node_groups(graph).values():
        assert addons["vpc-cni"].urn in group.dependencies
        assert addons["coredns"].urn not in group.dependencies


def test_addon_versions_come_from_settings(synth_with):
    graph = synth_with({"aiinfra:cluster": {"addonVersions": {
        "vpc-cni": "v1.19.0-eksbuild.1", "coredns": "v1.11.4-eksbuild.2", "kube-proxy": "v1.33.0-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.4-eksbuild.1", "aws-ebs-csi-driver": "v1.45.0-eksbuild.2"},
        "endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}})
    addons = {r.inputs["addonName"]: r.inputs["addonVersion"] for r in graph.of_type("aws:eks/addon:Addon")}
    assert addons["vpc-cni"] == "v1.19.0-eksbuild.1"
    assert addons["aws-ebs-csi-driver"] == "v1.45.0-eksbuild.2"
    # dev may open the API, but only to the listed CIDRs.
    vpc = one(graph, CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


@pytest.mark.parametrize("addon,account", [("vpc-cni", "aws-node"), ("aws-ebs-csi-driver", "ebs-csi-controller-sa")])
def test_addons_with_aws_access_use_irsa_roles_for_their_own_service_account(stack_graph, addon, account):
    graph = stack_graph("prod")
    record = next(r for r in graph.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == addon)
    role = role_by_arn(graph, record.inputs["serviceAccountRoleArn"])
    trust = policy(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"] == {"Federated": graph.stack_outputs["clusterOidcProviderArn"]}
    conditions = trust["Condition"]["StringEquals"]
    assert [v for k, v in conditions.items() if k.endswith(":sub")] == [f"system:serviceaccount:kube-system:{account}"]
    assert [v for k, v in conditions.items() if k.endswith(":aud")] == ["sts.amazonaws.com"]


def test_prod_cluster_has_deletion_protection(stack_graph):
    assert one(stack_graph("prod"), CLUSTER).inputs["deletionProtection"] is True
    assert one(stack_graph("dev"), CLUSTER).inputs["deletionProtection"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_node_security_group_is_on_every_launch_template_and_exported(stack_graph, stack):
    graph = stack_graph(stack)
    node_sg = one(graph, SECURITY_GROUP, "cluster-nodes")
    cluster_sg = one(graph, CLUSTER).outputs["vpcConfig"]["clusterSecurityGroupId"]
    assert graph.stack_outputs["nodeSecurityGroupId"] == node_sg.id
    for group in node_groups(graph).values():
        for groups in template_security_groups(launch_template(graph, group)):
            assert {node_sg.id, cluster_sg} <= groups


@pytest.mark.parametrize("stack", STACKS)
def test_compute_security_groups_admit_only_named_peers(stack_graph, stack):
    graph = stack_graph(stack)
    mine = {r.id for r in graph.of_type(SECURITY_GROUP)
            if r.name.startswith(("cluster-", "node-pools-", "workload-identity-"))}
    rules = [r for r in graph.of_type(INGRESS) if r.inputs["securityGroupId"] in mine]
    assert rules
    for rule in rules:
        assert rule.inputs.get("referencedSecurityGroupId"), f"{rule.name} admits a CIDR"
        assert not rule.inputs.get("cidrIpv4")
    assert all(r.inputs.get("cidrIpv4") in (None, "0.0.0.0/0") for r in graph.of_type(EGRESS))


# --- bad settings -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,base,expected", [
    ({"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}, "staging",
     "Pulumi.staging.yaml: aiinfra:cluster.endpointPublicAccess = true: staging keeps the API endpoint "
     "private; allowed: false"),
    ({"endpointPublicAccess": True}, "dev",
     "aiinfra:cluster.publicAccessCidrs = []: a public API endpoint needs an explicit CIDR allow-list"),
    ({"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}, "dev",
     "aiinfra:cluster.publicAccessCidrs[0] = '0.0.0.0/0': too wide for an API allow-list"),
    ({"publicAccessCidrs": ["203.0.113.0/24"]}, "dev",
     "aiinfra:cluster.publicAccessCidrs = [\"203.0.113.0/24\"]: only used with endpointPublicAccess: true"),
    ({"adminRoleNames": []}, "dev", "aiinfra:cluster.adminRoleNames = []: name at least one IAM role"),
    ({"adminRoleNames": ["arn:aws:iam::123456789012:role/admin"]}, "dev",
     "aiinfra:cluster.adminRoleNames[0] = 'arn:aws:iam::123456789012:role/admin': not an IAM role name"),
    ({"version": "1.20"}, "dev", "aiinfra:cluster.version = '1.20': allowed: 1.31, 1.32, 1.33, 1.34"),
    ({"logRetentionDays": 45}, "dev", "aiinfra:cluster.logRetentionDays = 45: allowed: 1, 3, 5, 7, 14, 30, 60"),
    ({"deletionProtection": False}, "prod",
     "aiinfra:cluster.deletionProtection = false: prod protects its cluster from deletion; allowed: true"),
    ({"addonVersions": {"vpc-cni": "v1.20.4-eksbuild.1"}}, "dev",
     "aiinfra:cluster.addonVersions.coredns: is required (pin every managed add-on's version)"),
    ({"addonVersions": {"vpc-cni": "latest", "coredns": "v1", "kube-proxy": "v1", "eks-pod-identity-agent": "v1",
                        "aws-ebs-csi-driver": "v1"}}, "dev",
     "aiinfra:cluster.addonVersions.vpc-cni = 'latest': not an add-on version"),
    ({"endpointPublicAcess": True}, "dev",
     "aiinfra:cluster.endpointPublicAcess: unknown key; did you mean 'endpointPublicAccess'?"),
])
def test_bad_cluster_settings_fail_with_one_line(settings_error, overrides, base, expected):
    assert expected in settings_error({"aiinfra:cluster": overrides}, base=base)
