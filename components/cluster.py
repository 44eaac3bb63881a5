"""The EKS control plane: private API, encrypted secrets, full audit logs, access entries, IRSA and add-ons."""

from __future__ import annotations

import json

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.compute_settings import ClusterSettings
from components.context import AccountContext
from components.encryption import EncryptionKeys
from components.iam import policy_document, service_assume_role_policy
from components.log_groups import encrypted_log_group
from components.network import Network
from components.settings import PlatformSettings

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# Networking add-ons go in before any node joins (nodes stay NotReady without a CNI); CoreDNS and the EBS CSI
# controller are Deployments that only become healthy once there are nodes to run them.
BEFORE_NODES = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
AFTER_NODES = ("coredns", "aws-ebs-csi-driver")
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"


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

    def __init__(self, name: str, settings: PlatformSettings, *, network: Network, keys: EncryptionKeys,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:cluster:Cluster", name, None, opts)
        config: ClusterSettings = settings.cluster
        self._name = name
        self._settings = settings
        self._child = pulumi.ResourceOptions(parent=self)
        self.ctx = AccountContext.lookup(settings.region, self)
        self.cluster_name = settings.name("eks")
        self.kubernetes_version = config.version

        role = self._control_plane_role(name, keys)
        log_group = encrypted_log_group(
            f"{name}-control-plane-logs", log_group_name=f"/aws/eks/{self.cluster_name}/cluster",
            retention_days=config.log_retention_days, kms_key_arn=keys.arn("logs"), parent=self)
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
            encryption_config={"provider": {"key_arn": keys.arn("cluster")}, "resources": ["secrets"]},
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
            f"{name}-oidc", url=self.oidc_issuer, client_id_lists=["sts.amazonaws.com"],
            tags={"Name": settings.name("eks-oidc")}, opts=self._child)

        self.node_security_group = self._node_security_group(name, settings, network)
        self.node_role = self._node_role(name)
        self._access_entries(name, config)
        self.addons, self.addon_roles = {}, {}
        for addon in BEFORE_NODES:
            self._addon(addon, config)
        self.kubeconfig = self._kubeconfig(settings.region)
        self.register_outputs({
            "clusterName": self.cluster.name,
            "endpoint": self.endpoint,
            "oidcProviderArn": self.oidc_provider.arn,
            "nodeSecurityGroupId": self.node_security_group.id,
            "nodeRoleArn": self.node_role.arn,
        })

    # --- IAM -------------------------------------------------------------------------------------------------
    def _managed_policy(self, policy: str) -> pulumi.Output[str]:
        return pulumi.Output.concat("arn:", self.ctx.partition, ":iam::aws:policy/", policy)

    def _control_plane_role(self, name: str, keys: EncryptionKeys) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-control-plane", description="EKS control plane",
            assume_role_policy=service_assume_role_policy(
                "eks.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": self.ctx.account_id}}),
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
                "Resource": keys.arn("cluster"),
            }]), opts=self._child)
        self._role_parts = [attachment, secrets_key]
        return role

    def _node_role(self, name: str) -> aws.iam.Role:
        """Shared by every node group; pods get their AWS access through IRSA, never through this role."""
        role = aws.iam.Role(
            f"{name}-nodes", description="EKS managed node groups",
            assume_role_policy=service_assume_role_policy("ec2.amazonaws.com"), opts=self._child)
        for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"):
            aws.iam.RolePolicyAttachment(f"{name}-nodes-{policy}", role=role.name,
                                         policy_arn=self._managed_policy(policy), opts=self._child)
        return role

    def irsa_role(self, resource_name: str, namespace: str, service_account: str, *, description: str,
                  parent: pulumi.Resource | None = None) -> aws.iam.Role:
        """A role only the named Kubernetes service account of this cluster can assume (IRSA)."""
        host = self.oidc_issuer.apply(lambda url: url.removeprefix("https://"))
        condition = host.apply(lambda h: {"StringEquals": {
            f"{h}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{h}:aud": "sts.amazonaws.com",
        }})
        trust = policy_document([{
            "Effect": "Allow",
            "Principal": {"Federated": self.oidc_provider.arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }])
        return aws.iam.Role(resource_name, description=description, assume_role_policy=trust,
                            opts=pulumi.ResourceOptions(parent=parent or self))

    # --- network ---------------------------------------------------------------------------------------------
    def _node_security_group(self, name: str, settings: PlatformSettings, network: Network) -> aws.ec2.SecurityGroup:
        """The nodes' own group: members talk to each other; the EKS cluster group (also on every node)
        carries control-plane traffic. Egress is open so nodes reach ECR, S3 and AWS APIs via NAT or endpoints."""
        group = aws.ec2.SecurityGroup(
            f"{name}-nodes", vpc_id=network.vpc.id, name=settings.name("eks-nodes"),
            description="EKS nodes: node-to-node traffic; the identity data services admit",
            tags={"Name": settings.name("eks-nodes"), f"kubernetes.io/cluster/{self.cluster_name}": "owned"},
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
    def _addon(self, addon: str, config: ClusterSettings,
               depends_on: Sequence[pulumi.Resource] = ()) -> aws.eks.Addon:
        role_arn = configuration = None
        if addon == "vpc-cni":
            role_arn = self._addon_role(addon, "aws-node", "AmazonEKS_CNI_Policy").arn
            # The network policy agent enforces the workload namespaces' NetworkPolicies; without it they are inert.
            configuration = json.dumps({"enableNetworkPolicy": "true"})
        elif addon == "aws-ebs-csi-driver":
            role_arn = self._addon_role(addon, "ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy").arn
        self.addons[addon] = aws.eks.Addon(
            f"{self._name}-{addon}", cluster_name=self.cluster.name, addon_name=addon,
            addon_version=config.addon_versions[addon], service_account_role_arn=role_arn,
            configuration_values=configuration,
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="PRESERVE",
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)))
        return self.addons[addon]

    def _addon_role(self, addon: str, service_account: str, policy: str) -> aws.iam.Role:
        role = self.irsa_role(f"{self._name}-{addon}", "kube-system", service_account,
                              description=f"EKS add-on {addon} ({service_account})")
        aws.iam.RolePolicyAttachment(f"{self._name}-{addon}", role=role.name,
                                     policy_arn=self._managed_policy(policy), opts=self._child)
        self.addon_roles[addon] = role
        return role

    def install_node_addons(self, node_groups: Sequence[pulumi.Resource], data_key_arn: pulumi.Input[str]) -> None:
        """CoreDNS and the EBS CSI driver, once node groups exist to run them.

        The CSI controller also gets use of the data key, so volumes it creates are encrypted with it.
        """
        config = self._settings.cluster
        for addon in AFTER_NODES:
            self._addon(addon, config, depends_on=node_groups)
        aws.iam.RolePolicy(
            f"{self._name}-aws-ebs-csi-driver-kms", role=self.addon_roles["aws-ebs-csi-driver"].id,
            policy=policy_document([
                {"Sid": "UseDataKey", "Effect": "Allow",
                 "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                            "kms:DescribeKey"],
                 "Resource": data_key_arn},
                {"Sid": "GrantsForAttachedVolumes", "Effect": "Allow",
                 "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": data_key_arn,
                 "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
            ]), opts=self._child)

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
