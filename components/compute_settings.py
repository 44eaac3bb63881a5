"""Settings sections for compute: the EKS cluster, its node pools, its add-ons and the workloads declared on it.

Parsed by `components/settings.py` like every other section; these dataclasses only declare fields and the
rules between them, so a wrong instance type, an impossible size or a workload bound to the wrong pool stops
the run with one line naming the pool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

from components.accelerators import (
    INSTANCE_TYPES,
    PROFILE_SPECS,
    Profile,
    allowed_types,
    family_of,
    profile_of_family,
    reserved_label_keys,
    reserved_taint_keys,
)
from contracts.config import Section, Where, camel, field, parse_cidr
# Key prefixes: where each workload reads and writes (the IAM policies grant exactly these).
from contracts.storage import CHECKPOINTS, COMPILED, POINTER, TRAINED, TRAINING_DATA

KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34")
REQUIRED_ADDONS = ("vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver")
# Add-on builds published for Kubernetes 1.33 (`aws eks describe-addon-versions`).
DEFAULT_ADDON_VERSIONS = {
    "vpc-cni": "v1.20.4-eksbuild.1",
    "coredns": "v1.12.2-eksbuild.4",
    "kube-proxy": "v1.33.3-eksbuild.10",
    "eks-pod-identity-agent": "v1.3.9-eksbuild.3",
    "aws-ebs-csi-driver": "v1.50.1-eksbuild.1",
}
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_ROLE_NAME = re.compile(r"^[\w+=,.@/-]{1,64}$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_RESERVATION = re.compile(r"^cr-[0-9a-f]{8}([0-9a-f]{9})?$")
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-.+][0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class ClusterSettings(Section):
    """The EKS control plane: version, API endpoint exposure, administrators, logs and managed add-ons."""

    version: str = field("1.33", choices=KUBERNETES_VERSIONS, doc="Kubernetes minor version")
    endpoint_public_access: bool = field(False, doc="expose the API endpoint publicly (dev only, with CIDRs)")
    public_access_cidrs: tuple[str, ...] = field((), doc="CIDRs allowed to reach a public API endpoint")
    admin_role_names: tuple[str, ...] = field((), doc="IAM role names granted cluster-admin access entries")
    log_retention_days: int = field(365, doc="control-plane log retention (CloudWatch Logs periods)")
    deletion_protection: bool = field(False, doc="refuse to delete the cluster")
    addon_versions: Mapping[str, str] = field(DEFAULT_ADDON_VERSIONS, doc="EKS managed add-on versions")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"log_retention_days": 30},
        "staging": {"log_retention_days": 90},
        "prod": {"deletion_protection": True},
    }

    def check(self, where: Where) -> None:
        from components.settings import LOG_RETENTION_DAYS  # settings imports this module

        if self.endpoint_public_access and where.environment != "dev":
            raise where.child("endpointPublicAccess").error(
                f"{where.environment} keeps the API endpoint private; allowed: false", True)
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise where.child("publicAccessCidrs").error(
                "a public API endpoint needs an explicit CIDR allow-list; allowed: one or more CIDR blocks", [])
        if self.public_access_cidrs and not self.endpoint_public_access:
            raise where.child("publicAccessCidrs").error(
                "only used with endpointPublicAccess: true", list(self.public_access_cidrs))
        for i, cidr in enumerate(self.public_access_cidrs):
            net = parse_cidr(cidr, where.child("publicAccessCidrs").child(i))
            if net.prefixlen < 16:
                raise where.child("publicAccessCidrs").child(i).error(
                    "too wide for an API allow-list; allowed: prefixes /16 to /32", cidr)
        if not self.admin_role_names:
            raise where.child("adminRoleNames").error(
                "name at least one IAM role to administer the cluster (the deploying role included)", [])
        for i, role in enumerate(self.admin_role_names):
            if not _ROLE_NAME.match(role) or role.startswith("arn:"):
                raise where.child("adminRoleNames").child(i).error("not an IAM role name (give the name, not an ARN)",
                                                                   role)
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise where.child("logRetentionDays").error(
                "allowed: " + ", ".join(str(d) for d in LOG_RETENTION_DAYS), self.log_retention_days)
        if where.environment == "prod" and not self.deletion_protection:
            raise where.child("deletionProtection").error("prod protects its cluster from deletion; allowed: true",
                                                          False)
        versions = where.child("addonVersions")
        for addon, version in self.addon_versions.items():
            if addon not in REQUIRED_ADDONS:
                raise versions.child(addon).error("unknown add-on; allowed: " + ", ".join(REQUIRED_ADDONS), version)
            if not _VERSION.match(version):
                raise versions.child(addon).error("not an add-on version (like v1.20.4-eksbuild.1)", version)
        missing = [a for a in REQUIRED_ADDONS if a not in self.addon_versions]
        if missing:
            raise versions.child(missing[0]).error("is required (pin every managed add-on's version)")


@dataclass(frozen=True)
class TaintSettings(Section):
    """An extra taint on a pool, beyond the one its profile adds."""

    key: str = field(doc="taint key")
    value: str = field("true")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = field("NoSchedule")


@dataclass(frozen=True)
class NodePoolSettings(Section):
    """One EKS managed node group, declared by accelerator profile."""

    name: str = field(doc="pool name, lowercase letters, digits and dashes")
    profile: Profile = field(doc="cpu, nvidia-gpu, trainium or inferentia")
    instance_types: tuple[str, ...] = field(doc="EC2 instance types matching the profile")
    min_size: int = field(1, min=0, max=1000)
    desired_size: Optional[int] = field(None, min=0, max=1000, doc="defaults to minSize")
    max_size: int = field(3, min=1, max=1000)
    capacity_type: Literal["on-demand", "spot", "capacity-block"] = field("on-demand")
    capacity_reservation_id: Optional[str] = field(None, doc="the Capacity Block reservation (cr-...)")
    disk_size_gib: int = field(100, min=20, max=16384)
    efa: Optional[bool] = field(None, doc="EFA interfaces; default: on where every instance type supports it")
    efa_availability_zone: int = field(0, min=0, max=5, doc="index of the AZ an EFA pool is pinned to")
    pod_instance_metadata: bool = field(False, doc="let pods reach instance metadata (IMDS hop limit 2)")
    labels: Mapping[str, str] = field({})
    taints: tuple[TaintSettings, ...] = field(())

    def check(self, where: Where) -> None:
        pool = f"pool '{self.name}'"
        if not _NAME.match(self.name):
            raise where.child("name").error(
                "pool names are 2-32 lowercase letters, digits and dashes, starting with a letter", self.name)
        types = where.child("instanceTypes")
        if not self.instance_types:
            raise types.error(f"{pool}: list at least one instance type", [])
        for i, instance_type in enumerate(self.instance_types):
            self._check_type(instance_type, types.child(i), pool)
        if self.min_size > self.max_size:
            raise where.child("minSize").error(
                f"{pool}: minSize must not exceed maxSize ({self.max_size})", self.min_size)
        desired = self.desired
        if not self.min_size <= desired <= self.max_size:
            raise where.child("desiredSize").error(
                f"{pool}: must lie between minSize and maxSize; allowed: {self.min_size}..{self.max_size}", desired)
        self._check_capacity(where, pool)
        self._check_efa(where, pool)
        for key, value in self.labels.items():
            if key in reserved_label_keys():
                raise where.child("labels").child(key).error(f"{pool}: set from the profile and pool name", value)
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise where.child("labels").child(key).error(f"{pool}: not a valid Kubernetes label", value)
        for i, taint in enumerate(self.taints):
            if taint.key in reserved_taint_keys():
                raise where.child("taints").child(i).child("key").error(
                    f"{pool}: the {self.profile} profile sets its own accelerator taint; a second one would leave "
                    "the device plugins and workloads unable to tolerate the pool", taint.key)

    def _check_type(self, instance_type: str, where: Where, pool: str) -> None:
        owner = profile_of_family(family_of(instance_type))
        allowed = ", ".join(allowed_types(self.profile))
        if owner is None:
            raise where.error(f"{pool}: not an instance family {self.profile} pools take; allowed: {allowed}",
                              instance_type)
        if owner != self.profile:
            article = "an" if owner in ("inferentia", "nvidia-gpu") else "a"
            raise where.error(f"{pool}: {article} {owner} instance type, not {self.profile}; allowed: {allowed}",
                              instance_type)
        if self.profile == "cpu":
            if not re.fullmatch(r"[a-z0-9]+\.[a-z0-9-]+", instance_type):
                raise where.error(f"{pool}: not an EC2 instance type; allowed: {allowed}", instance_type)
        elif instance_type not in INSTANCE_TYPES:
            raise where.error(f"{pool}: unknown {self.profile} instance type; allowed: {allowed}", instance_type)

    def _check_capacity(self, where: Where, pool: str) -> None:
        if self.capacity_type == "capacity-block":
            if not self.capacity_reservation_id or not _RESERVATION.match(self.capacity_reservation_id):
                raise where.child("capacityReservationId").error(
                    f"{pool}: a capacity-block pool needs its reservation id (cr- and 8 or 17 hex digits)",
                    self.capacity_reservation_id)
            if len(self.instance_types) != 1:
                raise where.child("instanceTypes").error(
                    f"{pool}: a Capacity Block reserves one instance type; allowed: exactly one",
                    list(self.instance_types))
            if not PROFILE_SPECS[self.profile].is_accelerated:
                raise where.child("capacityType").error(
                    f"{pool}: Capacity Blocks reserve accelerated instances; allowed: on-demand, spot",
                    "capacity-block")
        elif self.capacity_reservation_id is not None:
            raise where.child("capacityReservationId").error(
                f"{pool}: only used with capacityType: capacity-block", self.capacity_reservation_id)

    def _check_efa(self, where: Where, pool: str) -> None:
        catalog = [INSTANCE_TYPES.get(t) for t in self.instance_types]
        supported = all(t is not None and t.efa for t in catalog)
        if self.efa and not supported:
            lacking = next(t for t, c in zip(self.instance_types, catalog) if c is None or not c.efa)
            raise where.child("efa").error(
                f"{pool}: {lacking} has no EFA support; allowed: false, or EFA types "
                + ", ".join(n for n, t in INSTANCE_TYPES.items() if t.efa), True)
        if self.efa_enabled:
            cards = {c.network_cards for c in catalog if c is not None}
            if len(cards) > 1:
                raise where.child("instanceTypes").error(
                    f"{pool}: EFA pools need one network-card layout; these types differ ({sorted(cards)} cards)",
                    list(self.instance_types))

    @property
    def desired(self) -> int:
        return self.min_size if self.desired_size is None else self.desired_size

    @property
    def efa_enabled(self) -> bool:
        if self.efa is not None:
            return self.efa
        return all(INSTANCE_TYPES.get(t) is not None and INSTANCE_TYPES[t].efa for t in self.instance_types)

    @property
    def catalog(self) -> list[Any]:
        return [INSTANCE_TYPES[t] for t in self.instance_types if t in INSTANCE_TYPES]


@dataclass(frozen=True)
class QuotaSettings(Section):
    """A namespace's resource quota: what all its pods together may request."""

    cpu: int = field(64, min=1, max=100000)
    memory_gib: int = field(256, min=1, max=1000000)
    neuron_devices: int = field(0, min=0, max=10000)
    neuron_cores: int = field(0, min=0, max=100000)
    gpus: int = field(0, min=0, max=10000)
    efa_interfaces: int = field(0, min=0, max=10000)
    pods: int = field(100, min=1, max=100000)


@dataclass(frozen=True)
class KubernetesSettings(Section):
    """In-cluster add-ons: pinned device-plugin chart versions and per-namespace quotas."""

    nvidia_device_plugin_version: str = field("0.17.1", doc="nvidia-device-plugin Helm chart version")
    neuron_chart_version: str = field("1.1.2", doc="neuron-helm-chart version (device plugin + scheduler)")
    efa_device_plugin_version: str = field("v0.5.5", doc="aws-efa-k8s-device-plugin Helm chart version")
    training_quota: QuotaSettings = field(QuotaSettings())
    serving_quota: QuotaSettings = field(QuotaSettings())

    def check(self, where: Where) -> None:
        for key in ("nvidia_device_plugin_version", "neuron_chart_version", "efa_device_plugin_version"):
            value = getattr(self, key)
            if not _VERSION.match(value):
                raise where.child(camel(key)).error("pin an exact chart version (like 1.2.3)", value)


@dataclass(frozen=True)
class TrainingJobSettings(Section):
    """The distributed training Job: torchrun across `nodes` pods of one trainium pool."""

    pool: str = field("train", doc="trainium node pool the Job runs on")
    nodes: int = field(2, min=1, max=256, doc="pods (one per node) in the torchrun job")
    data_prefix: str = field(TRAINING_DATA, doc="datasets-bucket prefix holding train/ and validation/ JSON lines")
    suspend: bool = field(True, doc="declare the Job suspended; the training launcher starts it")

    def check(self, where: Where) -> None:
        if not self.data_prefix.endswith("/") or self.data_prefix.startswith(("/", CHECKPOINTS)) \
                or ".." in self.data_prefix:
            raise where.child("dataPrefix").error(
                f"a datasets-bucket folder ending in '/', outside {CHECKPOINTS}", self.data_prefix)


@dataclass(frozen=True)
class CompilationJobSettings(Section):
    """The Neuron compilation Job on an inferentia pool."""

    pool: str = field("infer", doc="inferentia node pool the Job runs on")
    neuron_cores: int = field(1, min=1, max=24)
    source_prefix: str = field(POINTER, doc="models-bucket key of the trained model to compile: the pointer "
                               f"{POINTER}, or a run prefix {TRAINED}<run>/ (SageMaker's layout)")
    suspend: bool = field(True, doc="declare the Job suspended; the compilation launcher starts it")

    def check(self, where: Where) -> None:
        if not self.source_prefix.startswith(TRAINED) or self.source_prefix == TRAINED or ".." in self.source_prefix:
            raise where.child("sourcePrefix").error(
                f"the compiler reads trained models only; allowed: {TRAINED}<name>", self.source_prefix)


@dataclass(frozen=True)
class ServingSettings(Section):
    """The model server Deployment, its autoscaling and disruption budget."""

    pool: str = field("infer", doc="inferentia or nvidia-gpu node pool the server runs on")
    min_replicas: int = field(1, min=1, max=1000)
    max_replicas: int = field(4, min=1, max=1000)
    accelerators_per_pod: int = field(1, min=1, max=32, doc="neuron cores or GPUs per replica")
    target_cpu_utilization: int = field(70, min=10, max=95)
    model_prefix: str = field(f"{COMPILED}current", doc="models-bucket prefix holding the compiled model")

    def check(self, where: Where) -> None:
        if self.min_replicas > self.max_replicas:
            raise where.child("minReplicas").error(f"must not exceed maxReplicas ({self.max_replicas})",
                                                   self.min_replicas)
        if not self.model_prefix.startswith(COMPILED) or self.model_prefix == COMPILED or ".." in self.model_prefix:
            raise where.child("modelPrefix").error(
                f"the server may read compiled models only; allowed: {COMPILED}<name>", self.model_prefix)


@dataclass(frozen=True)
class WorkloadSettings(Section):
    """Workload declarations on the cluster, and the image tag they run."""

    image_tag: str = field("0.1.0", doc="image tag in the ECR repositories (immutable tags)")
    training: TrainingJobSettings = field(TrainingJobSettings())
    compilation: CompilationJobSettings = field(CompilationJobSettings())
    serving: ServingSettings = field(ServingSettings())

    def check(self, where: Where) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", self.image_tag) or self.image_tag == "latest":
            raise where.child("imageTag").error("an immutable image tag (not 'latest')", self.image_tag)


# Which profiles each workload may run on.
WORKLOAD_PROFILES: Mapping[str, tuple[str, ...]] = {
    "training": ("trainium",),
    "compilation": ("inferentia",),
    "serving": ("inferentia", "nvidia-gpu"),
}


def check_compute(node_pools: Sequence[NodePoolSettings], workloads: WorkloadSettings,
                  kubernetes: KubernetesSettings, az_count: int, where: Where) -> None:
    """Rules across sections: unique pools, a home for system pods, EFA AZs that exist, workloads on fitting pools."""
    pools_where = where.child("nodePools")
    seen: dict[str, int] = {}
    for i, pool in enumerate(node_pools):
        if pool.name in seen:
            raise pools_where.child(i).child("name").error(
                f"duplicate pool name (also nodePools[{seen[pool.name]}])", pool.name)
        seen[pool.name] = i
        if pool.efa_enabled and pool.efa_availability_zone >= az_count:
            raise pools_where.child(i).child("efaAvailabilityZone").error(
                f"pool '{pool.name}': the network spans {az_count} AZs; allowed: 0..{az_count - 1}",
                pool.efa_availability_zone)
    if not any(p.profile == "cpu" and p.min_size >= 1 for p in node_pools):
        raise pools_where.error(
            "needs a cpu pool with minSize >= 1: CoreDNS and the add-on controllers do not tolerate accelerator "
            "taints", [p.name for p in node_pools])
    by_name = {p.name: p for p in node_pools}
    for workload, profiles in WORKLOAD_PROFILES.items():
        pool_name = getattr(workloads, workload).pool
        key = where.child("workloads").child(workload).child("pool")
        fitting = [p.name for p in node_pools if p.profile in profiles]
        allowed = ", ".join(fitting) if fitting else f"none: add a {' or '.join(profiles)} pool"
        if pool_name not in by_name:
            raise key.error(f"no such node pool; allowed: {allowed}", pool_name)
        if by_name[pool_name].profile not in profiles:
            raise key.error(
                f"pool '{pool_name}' is {by_name[pool_name].profile}; {workload} runs on "
                f"{' or '.join(profiles)} pools; allowed: {allowed}", pool_name)
    training = by_name[workloads.training.pool]
    if workloads.training.nodes > training.max_size:
        raise where.child("workloads").child("training").child("nodes").error(
            f"pool '{training.name}' scales to {training.max_size} nodes; allowed: 1..{training.max_size}",
            workloads.training.nodes)
    _check_fits(by_name, workloads, where.child("workloads"))
    _check_quotas(by_name, workloads, kubernetes, where.child("kubernetes"))


def per_node(pool: NodePoolSettings, what: str) -> int:
    """The least of `what` (gpus, neuron_devices, neuron_cores, network_cards) any node of the pool has."""
    return min(getattr(t, what) for t in pool.catalog)


@dataclass(frozen=True)
class PodSize:
    """What one workload pod requests: CPU and memory, and its accelerator and EFA devices."""

    cpu: int
    memory_gib: int
    accelerators: int = 0
    efa_interfaces: int = 0


# The server and the compiler are small next to their nodes (inf2.xlarge: 4 vCPUs, 16 GiB).
SERVING_POD = PodSize(cpu=1, memory_gib=4)
COMPILATION_POD = PodSize(cpu=2, memory_gib=8)


def training_pod(pool: NodePoolSettings) -> PodSize:
    """A training pod takes a whole node: every Neuron device and EFA card, three quarters of CPU and memory
    (the rest is for the kubelet, system reservations and the node's daemon sets)."""
    return PodSize(
        cpu=per_node(pool, "vcpus") * 3 // 4, memory_gib=per_node(pool, "memory_gib") * 3 // 4,
        accelerators=per_node(pool, "neuron_devices"),
        efa_interfaces=per_node(pool, "network_cards") if pool.efa_enabled else 0)


def workload_demand(by_name: Mapping[str, NodePoolSettings], workloads: WorkloadSettings) -> dict[str, dict[str, int]]:
    """What each namespace's workloads request at most, per quota field: quotas must leave room for them."""
    training = by_name[workloads.training.pool]
    serve_pool = by_name[workloads.serving.pool]
    serving_field = "gpus" if serve_pool.profile == "nvidia-gpu" else "neuron_cores"
    nodes, replicas = workloads.training.nodes, workloads.serving.max_replicas
    pod = training_pod(training)
    return {
        "training": {
            "cpu": nodes * pod.cpu + COMPILATION_POD.cpu,
            "memory_gib": nodes * pod.memory_gib + COMPILATION_POD.memory_gib,
            "pods": nodes + 1,
            "neuron_devices": nodes * pod.accelerators,
            "efa_interfaces": nodes * pod.efa_interfaces,
            "neuron_cores": workloads.compilation.neuron_cores,
        },
        "serving": {
            "cpu": replicas * SERVING_POD.cpu, "memory_gib": replicas * SERVING_POD.memory_gib, "pods": replicas,
            serving_field: replicas * workloads.serving.accelerators_per_pod,
        },
    }


def _check_fits(by_name: Mapping[str, NodePoolSettings], workloads: WorkloadSettings, where: Where) -> None:
    serve_pool = by_name[workloads.serving.pool]
    serving_field = "gpus" if serve_pool.profile == "nvidia-gpu" else "neuron_cores"
    room = per_node(serve_pool, serving_field)
    if workloads.serving.accelerators_per_pod > room:
        raise where.child("serving").child("acceleratorsPerPod").error(
            f"pool '{serve_pool.name}' nodes have {room} {serving_field.replace('_', ' ')}; allowed: 1..{room}",
            workloads.serving.accelerators_per_pod)
    compile_pool = by_name[workloads.compilation.pool]
    room = per_node(compile_pool, "neuron_cores")
    if workloads.compilation.neuron_cores > room:
        raise where.child("compilation").child("neuronCores").error(
            f"pool '{compile_pool.name}' nodes have {room} neuron cores; allowed: 1..{room}",
            workloads.compilation.neuron_cores)


def _check_quotas(by_name: Mapping[str, NodePoolSettings], workloads: WorkloadSettings,
                  kubernetes: KubernetesSettings, where: Where) -> None:
    for namespace, demand in workload_demand(by_name, workloads).items():
        quota: QuotaSettings = getattr(kubernetes, f"{namespace}_quota")
        for key, needed in demand.items():
            if getattr(quota, key) < needed:
                raise where.child(f"{namespace}Quota").child(camel(key)).error(
                    f"the {namespace} workloads request up to {needed}; allowed: at least {needed}",
                    getattr(quota, key))


__all__ = [
    "ClusterSettings", "CompilationJobSettings", "KubernetesSettings", "NodePoolSettings", "QuotaSettings",
    "ServingSettings", "TaintSettings", "TrainingJobSettings", "WorkloadSettings", "check_compute",
    "DEFAULT_ADDON_VERSIONS", "REQUIRED_ADDONS", "WORKLOAD_PROFILES",
]
