"""What makes the accelerators schedulable and the namespaces safe to share: device plugins, namespaces with
quotas and limit ranges, and service accounts bound to IAM roles (IRSA).

A device plugin is installed exactly when a pool needs it, with the tolerations of that pool's taint and a node
selector on that pool's label, both taken from `components.accelerators`, so no plugin is left off a tainted
pool and none waits for a label that no node carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.accelerators import (
    ACCELERATOR_LABEL,
    EFA,
    EFA_LABEL,
    NEURON_CORE,
    NEURON_DEVICE,
    NEURON_SCHEDULER,
    NVIDIA_GPU,
    PROFILE_SPECS,
)
from components.cluster import ClusterAccess
from components.settings import KubernetesSettings, NodePoolSettings, QuotaSettings
from components.workload_identity import SERVICE_ACCOUNTS
from contracts.kubernetes import IRSA_REGIONAL_STS_ANNOTATION, IRSA_ROLE_ANNOTATION

NAMESPACES = ("training", "serving")
SYSTEM_NAMESPACE = "kube-system"
NVIDIA_REPO = "https://nvidia.github.io/k8s-device-plugin"
EKS_CHARTS_REPO = "https://aws.github.io/eks-charts"
NEURON_CHART = "oci://public.ecr.aws/neuron/neuron-helm-chart"
# Containers that set no resources get these, so a quota on requests and limits never rejects them.
DEFAULT_REQUEST = {"cpu": "250m", "memory": "512Mi"}
DEFAULT_LIMIT = {"cpu": "1", "memory": "2Gi"}


def required_device_plugins(pools: Sequence[NodePoolSettings]) -> dict[str, list[NodePoolSettings]]:
    """Which device plugins the pools need ("nvidia", "neuron", "efa"), and the pools each one must reach."""
    needed: dict[str, list[NodePoolSettings]] = {}
    for pool in pools:
        accelerator = PROFILE_SPECS[pool.profile].accelerator
        if accelerator:
            needed.setdefault(accelerator, []).append(pool)
        if pool.efa_enabled:
            needed.setdefault("efa", []).append(pool)
    return needed


def _tolerations(pools: Sequence[NodePoolSettings]) -> list[dict[str, str]]:
    """Tolerations for every accelerator taint among `pools` (once each)."""
    seen: dict[str, dict[str, str]] = {}
    for pool in pools:
        taint = PROFILE_SPECS[pool.profile].taint
        if taint:
            seen.setdefault(taint.key, taint.toleration())
    return list(seen.values())


def _require_label(key: str, value: str) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}]}}}


def device_plugin_values(plugin: str, pools: Sequence[NodePoolSettings]) -> dict[str, Any]:
    """Helm values for one device plugin: tolerate exactly the pools' taints, select exactly their label."""
    tolerations = _tolerations(pools)
    if plugin == "nvidia":
        # The chart's default affinity waits for NFD/GPU-feature-discovery labels that EKS nodes don't carry;
        # replace it with the label our GPU pools do carry.
        return {"tolerations": tolerations, "nodeSelector": {ACCELERATOR_LABEL: "nvidia"},
                "affinity": _require_label(ACCELERATOR_LABEL, "nvidia")}
    if plugin == "neuron":
        return {
            "devicePlugin": {"tolerations": tolerations, "nodeSelector": {ACCELERATOR_LABEL: "neuron"}},
            # The scheduler extension runs beside a second kube-scheduler that Neuron pods name; both are
            # ordinary Deployments on the untainted system nodes.
            "scheduler": {"enabled": True, "customScheduler": {"enabled": True, "fullnameOverride": NEURON_SCHEDULER},
                          "defaultScheduler": {"enabled": False}},
            "npd": {"enabled": False},
        }
    if plugin == "efa":
        return {"tolerations": tolerations, "nodeSelector": {EFA_LABEL: "true"}}
    raise KeyError(plugin)


def quota_hard(quota: QuotaSettings) -> dict[str, str]:
    """ResourceQuota `hard` limits; extended resources set to 0 forbid the accelerator in the namespace."""
    return {
        "requests.cpu": str(quota.cpu), "limits.cpu": str(quota.cpu * 2),
        "requests.memory": f"{quota.memory_gib}Gi", "limits.memory": f"{quota.memory_gib}Gi",
        "pods": str(quota.pods),
        f"requests.{NEURON_DEVICE}": str(quota.neuron_devices),
        f"requests.{NEURON_CORE}": str(quota.neuron_cores),
        f"requests.{NVIDIA_GPU}": str(quota.gpus),
        f"requests.{EFA}": str(quota.efa_interfaces),
    }


def namespace_policies() -> dict[str, dict[str, Any]]:
    """Every workload namespace: deny all traffic, then allow DNS and HTTPS out. HTTPS is to any address because
    S3 is reached through its gateway endpoint at S3's public addresses, which a NetworkPolicy cannot name (a
    prefix list); STS, ECR, KMS, Secrets Manager and the rest are interface endpoints inside the VPC. The
    workloads' own peers are allowed by `ClusterWorkloads`."""
    dns = {"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": SYSTEM_NAMESPACE}},
           "pod_selector": {"match_labels": {"k8s-app": "kube-dns"}}}
    return {
        "default-deny": {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]},
        "allow-dns": {"pod_selector": {}, "policy_types": ["Egress"], "egress": [
            {"to": [dns], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]},
        "allow-https-out": {"pod_selector": {}, "policy_types": ["Egress"], "egress": [
            {"to": [{"ip_block": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}]},
    }


def workload_namespace(resource_name: str, namespace: str, quota: QuotaSettings,
                       opts: pulumi.ResourceOptions) -> k8s.core.v1.Namespace:
    """A workload namespace: Pod Security `restricted` enforced, a ResourceQuota, LimitRange defaults, and the
    default-deny NetworkPolicies with DNS and HTTPS out (`namespace_policies`)."""
    ns = k8s.core.v1.Namespace(
        resource_name,
        metadata={"name": namespace, "labels": {
            # Device access goes through device plugins, so every pod here meets the restricted profile.
            **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")},
            "pod-security.kubernetes.io/enforce-version": "latest",
            "aiinfra.io/workload": namespace}},
        opts=opts)
    k8s.core.v1.ResourceQuota(
        f"{resource_name}-quota", metadata={"name": f"{namespace}-quota", "namespace": ns.metadata.name},
        spec={"hard": quota_hard(quota)}, opts=opts)
    k8s.core.v1.LimitRange(
        f"{resource_name}-limits", metadata={"name": f"{namespace}-limits", "namespace": ns.metadata.name},
        spec={"limits": [{"type": "Container", "defaultRequest": DEFAULT_REQUEST, "default": DEFAULT_LIMIT}]},
        opts=opts)
    for policy, spec in namespace_policies().items():
        k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-{policy}", metadata={"name": policy, "namespace": ns.metadata.name},
            spec=spec, opts=opts)
    return ns


@dataclass(frozen=True)
class WorkloadTarget:
    """Where workloads are declared: the cluster's Kubernetes provider, and what must exist before any pod
    (its service accounts and the device plugins that make its accelerators schedulable)."""

    provider: k8s.Provider
    prerequisites: tuple[pulumi.Resource, ...]


class KubernetesAddons(pulumi.ComponentResource):
    """Device plugins, namespaces with quotas and limit ranges, and IRSA service accounts."""

    provider: k8s.Provider
    device_plugins: dict[str, k8s.helm.v3.Release]
    namespaces: dict[str, k8s.core.v1.Namespace]
    service_accounts: dict[str, k8s.core.v1.ServiceAccount]

    def __init__(self, name: str, settings: KubernetesSettings, *, node_pools: Sequence[NodePoolSettings],
                 cluster: ClusterAccess, service_account_roles: Mapping[str, pulumi.Input[str]],
                 node_groups: Sequence[pulumi.Resource], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:kubernetes_addons:KubernetesAddons", name, None, opts)
        config = settings
        # Authenticates as the deploying role, which reaches the API only through its access entry.
        self.provider = k8s.Provider(
            f"{name}-provider", kubeconfig=cluster.kubeconfig, enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(cluster.access_policies)))
        self._opts = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self._after_nodes = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=list(node_groups))
        self.device_plugins = {}
        for plugin, pools in required_device_plugins(node_pools).items():
            self.device_plugins[plugin] = self._device_plugin(name, plugin, pools, config)
        self.namespaces = {}
        for namespace in NAMESPACES:
            quota = config.training_quota if namespace == "training" else config.serving_quota
            self.namespaces[namespace] = self._namespace(name, namespace, quota)
        self.service_accounts = {}
        for role, spec in SERVICE_ACCOUNTS.items():
            self.service_accounts[role] = k8s.core.v1.ServiceAccount(
                f"{name}-{role}",
                metadata={"name": spec.name, "namespace": self.namespaces[spec.namespace].metadata.name,
                          "annotations": {IRSA_ROLE_ANNOTATION: service_account_roles[role],
                                          IRSA_REGIONAL_STS_ANNOTATION: "true"}},
                # IRSA hands the AWS role a projected token of its own; nothing here calls the Kubernetes API.
                automount_service_account_token=False, opts=self._opts)
        self.target = WorkloadTarget(
            self.provider, (*self.service_accounts.values(), *self.device_plugins.values()))
        self.register_outputs({
            "devicePlugins": {p: r.name for p, r in self.device_plugins.items()},
            "namespaces": {n: ns.metadata.name for n, ns in self.namespaces.items()},
        })

    def _device_plugin(self, name: str, plugin: str, pools: Sequence[NodePoolSettings],
                       config: KubernetesSettings) -> k8s.helm.v3.Release:
        values = device_plugin_values(plugin, pools)
        chart: Mapping[str, Any] = {
            "nvidia": {"chart": "nvidia-device-plugin", "version": config.nvidia_device_plugin_version,
                       "repository_opts": {"repo": NVIDIA_REPO}},
            "neuron": {"chart": NEURON_CHART, "version": config.neuron_chart_version},
            "efa": {"chart": "aws-efa-k8s-device-plugin", "version": config.efa_device_plugin_version,
                    "repository_opts": {"repo": EKS_CHARTS_REPO}},
        }[plugin]
        release = {"nvidia": "nvidia-device-plugin", "neuron": "neuron", "efa": "aws-efa-k8s-device-plugin"}[plugin]
        return k8s.helm.v3.Release(
            f"{name}-{release}", name=release, namespace=SYSTEM_NAMESPACE, values=values, atomic=True,
            cleanup_on_fail=True, max_history=5, **chart, opts=self._after_nodes)

    def _namespace(self, name: str, namespace: str, quota: QuotaSettings) -> k8s.core.v1.Namespace:
        return workload_namespace(f"{name}-{namespace}", namespace, quota, self._opts)
