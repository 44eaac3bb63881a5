"""The EKS control plane: private API, encrypted secrets, full audit logs, access entries, IRSA and add-ons."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.context import AccountContext
from components.encryption import KeyArns
from components.iam import policy_document, service_assume_role_policy
from components.log_groups import encrypted_log_group
from components.network import VpcNetwork
from components.settings import ClusterSettings, StackIdentity

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# Networking add-ons go in before any node joins (nodes stay NotReady without a CNI); CoreDNS and the EBS CSI
# controller are Deployments that only become healthy once there are nodes to run them.
BEFORE_NODES = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
AFTER_NODES = ("coredns", "aws-ebs-csi-driver")
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"


@dataclass(frozen=True)
class OidcIssuer:
    """The cluster's OIDC identity provider: what an IRSA role's trust policy names."""

    provider_arn: pulumi.Output[str]
    issuer: pulumi.Output[str]       # https://oidc.eks.<region>.<dns suffix>/id/...
    audience: pulumi.Output[str]     # the STS principal tokens are issued for


@dataclass(frozen=True)
class NodeBootstrap:
    """What node groups join the cluster with."""

    cluster_name: pulumi.Output[str]
    physical_name: str
    kubernetes_version: str
    cluster_security_group_id: pulumi.Output[str]
    node_security_group_id: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    control_plane_addons: tuple[pulumi.Resource, ...]   # nodes wait for the CNI and kube-proxy


@dataclass(frozen=True)
class ClusterAccess:
    """How the deploying role reaches the Kubernetes API: a kubeconfig, valid once its access entries exist."""

    kubeconfig: pulumi.Output[str]
    access_policies: tuple[pulumi.Resource, ...]


def managed_policy_arn(ctx: AccountContext, policy: str) -> pulumi.Output[str]:
    """An AWS managed policy in the stack's partition."""
    return pulumi.Output.concat("arn:", ctx.partition, ":iam::aws:policy/", policy)


def irsa_role(resource_name: str, oidc: OidcIssuer, namespace: str, service_account: str, *, description: str,
              parent: pulumi.Resource) -> aws.iam.Role:
    """A role only the named Kubernetes service account of this cluster can assume (IRSA)."""
    host = oidc.issuer.apply(lambda url: url.removeprefix("https://"))
    condition = pulumi.Output.all(host, oidc.audience).apply(lambda parts: {"StringEquals": {
        f"{parts[0]}:sub": f"system:serviceaccount:{namespace}:{service_account}",
        f"{parts[0]}:aud": parts[1],
    }})
    trust = policy_document([{
        "Effect": "Allow",
        "Principal": {"Federated": oidc.provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": condition,
    }])
    return aws.iam.Role(resource_name, description=description, assume_role_policy=trust,
                        opts=pulumi.ResourceOptions(parent=parent))


class Cluster(pulumi.ComponentResource):
    """One EKS cluster per stack in the private subnets, with the roles and security group its nodes share.

    `node_security_group` is attached to every node group's launch template, so data services name it as
    their only client instead of a CIDR.
    """

    cluster: aws.eks.Cluster
    node_role: aws.iam.Role
    node_security_group: aws.ec2.SecurityGroup
    oidc_provider: aws.iam.OpenIdConnectProvider
    addons: dict[str, aws.eks.Addon]
    addon_roles: dict[str, aws.iam.Role]

    oidc: OidcIssuer
    node_bootstrap: NodeBootstrap
    access: ClusterAccess

    def __init__(self, name: str, settings: ClusterSettings, *, stack: StackIdentity, network: VpcNetwork,
                 keys: KeyArns, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:cluster:Cluster", name, None, opts)
        config = settings
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self.ctx = AccountContext.lookup(stack.region, self)
        self.cluster_name = stack.name("eks")
        self.kubernetes_version = config.version

        role = self._control_plane_role(name, keys)
        log_group = encrypted_log_group(
            f"{name}-control-plane-logs", log_group_name=f"/aws/eks/{self.cluster_name}/cluster",
            retention_days=config.log_retention_days, kms_key_arn=keys.logs, parent=self)
        public = config.endpoint_public_access
        self.cluster = aws.eks.Cluster(
            name,
            name=self.cluster_name,
            version=config.version,
            role_arn=role.arn,
            vpc_config={
                "subnet_ids": network.private_subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": public,
                "public_access_cidrs": list(config.public_access_cidrs) if public else None,
            },
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": False},
            encryption_config={"provider": {"key_arn": keys.cluster}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            # The networking add-ons are installed below as managed add-ons with pinned versions.
            bootstrap_self_managed_addons=False,
            deletion_protection=config.deletion_protection,
            tags={"Name": self.cluster_name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, *self._role_parts],
                                        protect=config.deletion_protection))
        self.endpoint = self.cluster.endpoint
        self.certificate_authority = self.cluster.certificate_authority.apply(lambda ca: ca.data if ca else "")
        self.cluster_security_group_id = self.cluster.vpc_config.apply(
            lambda vpc: vpc.cluster_security_group_id or "")
        self.oidc_issuer = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer or "")
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=self.oidc_issuer, client_id_lists=[self.ctx.service_principal("sts")],
            tags={"Name": stack.name("eks-oidc")}, opts=self._child)
        self.oidc = OidcIssuer(self.oidc_provider.arn, self.oidc_issuer, self.ctx.service_principal("sts"))

        self.node_security_group = self._node_security_group(name, stack, network)
        self.node_role = self._node_role(name)
        self._access_entries(name, config)
        self.addons, self.addon_roles = {}, {}
        for addon in BEFORE_NODES:
            self._addon(addon, config)
        self.kubeconfig = self._kubeconfig(stack.region)
        self.node_bootstrap = NodeBootstrap(
            cluster_name=self.cluster.name, physical_name=self.cluster_name, kubernetes_version=config.version,
            cluster_security_group_id=self.cluster_security_group_id,
            node_security_group_id=self.node_security_group.id, node_role_arn=self.node_role.arn,
            control_plane_addons=tuple(self.addons.values()))
        self.access = ClusterAccess(self.kubeconfig, tuple(self.access_policies))
        self.register_outputs({
            "clusterName": self.cluster.name,
            "endpoint": self.endpoint,
            "oidcProviderArn": self.oidc_provider.arn,
            "nodeSecurityGroupId": self.node_security_group.id,
            "nodeRoleArn": self.node_role.arn,
        })

    # --- IAM -------------------------------------------------------------------------------------------------
    def _managed_policy(self, policy: str) -> pulumi.Output[str]:
        return managed_policy_arn(self.ctx, policy)

    def _control_plane_role(self, name: str, keys: KeyArns) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-control-plane", description="EKS control plane",
            assume_role_policy=service_assume_role_policy(
                self.ctx.service_principal("eks"),
                conditions={"StringEquals": {"aws:SourceAccount": self.ctx.account_id}}),
            opts=self._child)
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-control-plane-eks", role=role.name, policy_arn=self._managed_policy("AmazonEKSClusterPolicy"),
            opts=self._child)
        # Envelope encryption: the control plane wraps Kubernetes secrets with the cluster key, and nothing else.
        secrets_key = aws.iam.RolePolicy(
            f"{name}-control-plane-secrets-key", role=role.id,
            policy=policy_document([{
                "Sid": "EnvelopeEncryption", "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:ListGrants", "kms:CreateGrant"],
                "Resource": keys.cluster,
            }]), opts=self._child)
        self._role_parts = [attachment, secrets_key]
        return role

    def _node_role(self, name: str) -> aws.iam.Role:
        """Shared by every node group; pods get their AWS access through IRSA, never through this role."""
        role = aws.iam.Role(
            f"{name}-nodes", description="EKS managed node groups",
            assume_role_policy=service_assume_role_policy(self.ctx.service_principal("ec2")), opts=self._child)
        for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"):
            aws.iam.RolePolicyAttachment(f"{name}-nodes-{policy}", role=role.name,
                                         policy_arn=self._managed_policy(policy), opts=self._child)
        return role

    # --- network ---------------------------------------------------------------------------------------------
    def _node_security_group(self, name: str, stack: StackIdentity, network: VpcNetwork) -> aws.ec2.SecurityGroup:
        """The nodes' own group: members talk to each other; the EKS cluster group (also on every node)
        carries control-plane traffic. Egress is open so nodes reach ECR, S3 and AWS APIs via NAT or endpoints."""
        group = aws.ec2.SecurityGroup(
            f"{name}-nodes", vpc_id=network.vpc_id, name=stack.name("eks-nodes"),
            description="EKS nodes: node-to-node traffic; the identity data services admit",
            tags={"Name": stack.name("eks-nodes"), f"kubernetes.io/cluster/{self.cluster_name}": "owned"},
            opts=self._child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nodes-self", security_group_id=group.id, referenced_security_group_id=group.id,
            ip_protocol="-1", description="node to node (pod networking)", opts=self._child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nodes-from-control-plane", security_group_id=group.id,
            referenced_security_group_id=self.cluster_security_group_id,
            ip_protocol="tcp", from_port=443, to_port=10250,
            description="control plane to kubelet and webhooks", opts=self._child)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-nodes-egress", security_group_id=group.id, cidr_ipv4="0.0.0.0/0", ip_protocol="-1",
            description="nodes reach AWS APIs, ECR and S3", opts=self._child)
        return group

    # --- access ----------------------------------------------------------------------------------------------
    def _access_entries(self, name: str, config: ClusterSettings) -> None:
        policy_arn = pulumi.Output.concat("arn:", self.ctx.partition, ":eks::aws:cluster-access-policy/",
                                          CLUSTER_ADMIN_POLICY)
        self.access_policies: list[pulumi.Resource] = []
        for role_name in config.admin_role_names:
            slug = role_name.replace("/", "-").lower()
            principal = self.ctx.arn("iam", f"role/{role_name}", regional=False)
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{slug}", cluster_name=self.cluster.name, principal_arn=principal, type="STANDARD",
                opts=self._child)
            self.access_policies.append(aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{slug}", cluster_name=self.cluster.name, principal_arn=entry.principal_arn,
                policy_arn=policy_arn, access_scope={"type": "cluster"}, opts=self._child))

    # --- add-ons ---------------------------------------------------------------------------------------------
    def _addon(self, addon: str, config: ClusterSettings) -> aws.eks.Addon:
        self.addons[addon], role = managed_addon(
            self._name, addon, cluster_name=self.cluster.name, version=config.addon_versions[addon],
            oidc=self.oidc, ctx=self.ctx, parent=self)
        if role is not None:
            self.addon_roles[addon] = role
        return self.addons[addon]

    # --- clients ---------------------------------------------------------------------------------------------
    def _kubeconfig(self, region: str) -> pulumi.Output[str]:
        """A kubeconfig that authenticates with `aws eks get-token`: no static credentials anywhere."""
        return pulumi.Output.json_dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": self.cluster_name,
            "clusters": [{"name": self.cluster_name, "cluster": {
                "server": self.endpoint, "certificate-authority-data": self.certificate_authority}}],
            "contexts": [{"name": self.cluster_name, "context": {"cluster": self.cluster_name,
                                                                 "user": self.cluster_name}}],
            "users": [{"name": self.cluster_name, "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                "args": ["--region", region, "eks", "get-token", "--cluster-name", self.cluster_name,
                         "--output", "json"],
                "interactiveMode": "Never"}}}],
        })


# IRSA service accounts of the managed add-ons that call AWS, and the managed policy each needs.
ADDON_SERVICE_ACCOUNTS = {
    "vpc-cni": ("aws-node", "AmazonEKS_CNI_Policy"),
    "aws-ebs-csi-driver": ("ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy"),
}


def managed_addon(prefix: str, addon: str, *, cluster_name: pulumi.Input[str], version: str, oidc: OidcIssuer,
                  ctx: AccountContext, parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = (),
                  ) -> tuple[aws.eks.Addon, aws.iam.Role | None]:
    """One EKS managed add-on with a pinned version, and its IRSA role where the add-on calls AWS."""
    child = pulumi.ResourceOptions(parent=parent)
    role = None
    if addon in ADDON_SERVICE_ACCOUNTS:
        service_account, policy = ADDON_SERVICE_ACCOUNTS[addon]
        role = irsa_role(f"{prefix}-{addon}", oidc, "kube-system", service_account,
                         description=f"EKS add-on {addon} ({service_account})", parent=parent)
        aws.iam.RolePolicyAttachment(f"{prefix}-{addon}", role=role.name,
                                     policy_arn=managed_policy_arn(ctx, policy), opts=child)
    # The VPC CNI's network policy agent enforces the workload namespaces' NetworkPolicies; without it they are inert.
    configuration = json.dumps({"enableNetworkPolicy": "true"}) if addon == "vpc-cni" else None
    resource = aws.eks.Addon(
        f"{prefix}-{addon}", cluster_name=cluster_name, addon_name=addon, addon_version=version,
        service_account_role_arn=role.arn if role is not None else None, configuration_values=configuration,
        resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="PRESERVE",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)))
    return resource, role


class NodeAddons(pulumi.ComponentResource):
    """CoreDNS and the EBS CSI driver: managed add-ons that run as Deployments, so they wait for node groups.

    The CSI controller also gets use of the data key, so volumes it creates are encrypted with it. A component
    of its own because it is built after the node pools, which are built after the cluster registered.
    """

    addons: dict[str, aws.eks.Addon]

    def __init__(self, name: str, settings: ClusterSettings, *, stack: StackIdentity,
                 cluster_name: pulumi.Input[str], oidc: OidcIssuer, data_key_arn: pulumi.Input[str],
                 node_groups: Sequence[pulumi.Resource], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:cluster:NodeAddons", name, None, opts)
        ctx = AccountContext.lookup(stack.region, self)
        self.addons, roles = {}, {}
        for addon in AFTER_NODES:
            self.addons[addon], roles[addon] = managed_addon(
                name, addon, cluster_name=cluster_name, version=settings.addon_versions[addon], oidc=oidc,
                ctx=ctx, parent=self, depends_on=node_groups)
        aws.iam.RolePolicy(
            f"{name}-aws-ebs-csi-driver-kms", role=roles["aws-ebs-csi-driver"].id,
            policy=policy_document([
                {"Sid": "UseDataKey", "Effect": "Allow",
                 "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                            "kms:DescribeKey"],
                 "Resource": data_key_arn},
                {"Sid": "GrantsForAttachedVolumes", "Effect": "Allow",
                 "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": data_key_arn,
                 "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
            ]), opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"addons": {n: a.addon_name for n, a in self.addons.items()}})
