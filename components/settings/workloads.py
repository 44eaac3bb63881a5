"""The cluster workload sections (training, compilation, serving) and the rules that tie them to pools and quotas."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from components.pod_sizing import per_node, serving_device_field, workload_demand
from components.settings.kubernetes import KubernetesSettings, QuotaSettings
from components.settings.node_pools import NodePoolSettings
from contracts.config import Section, Where, camel, field
from contracts.storage import CHECKPOINTS, COMPILED, POINTER, TRAINED, TRAINING_DATA


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
    target_queue_depth: int = field(8, min=1, max=10000, doc="inputs waiting for the model per replica, on "
                                    "average, that the autoscaler holds the fleet to (the accelerator-load signal)")
    target_cpu_utilization: int = field(70, min=10, max=95, doc="CPU utilization of the fallback trigger")
    model_prefix: str = field(f"{COMPILED}current", doc="models-bucket prefix holding the compiled model")
    api_keys: bool = field(True, doc="require an API key on the model routes; the stack creates the keys secret "
                           "and the pods read it with their role")
    rate_limit_rps: float | None = field(None, min=0.001, doc="per-client requests per second (429 beyond it)")
    rate_limit_burst: int | None = field(None, min=1, doc="requests a client may send at once")
    max_inputs: int = field(64, min=1, max=4096, doc="most inputs in one request (413 beyond it)")
    max_input_tokens: int | None = field(None, min=1, doc="refuse (422) longer inputs instead of truncating")

    def check(self, where: Where) -> None:
        if self.rate_limit_burst is not None and self.rate_limit_rps is None:
            raise where.child("rateLimitBurst").error("needs rateLimitRps", self.rate_limit_burst)
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


def _check_fits(by_name: Mapping[str, NodePoolSettings], workloads: WorkloadSettings, where: Where) -> None:
    serve_pool = by_name[workloads.serving.pool]
    serving_field = serving_device_field(serve_pool)
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
    demand_by_namespace = workload_demand(
        by_name[workloads.training.pool], by_name[workloads.serving.pool], nodes=workloads.training.nodes,
        replicas=workloads.serving.max_replicas, accelerators_per_pod=workloads.serving.accelerators_per_pod,
        compilation_cores=workloads.compilation.neuron_cores)
    for namespace, demand in demand_by_namespace.items():
        quota: QuotaSettings = getattr(kubernetes, f"{namespace}_quota")
        for key, needed in demand.items():
            if getattr(quota, key) < needed:
                raise where.child(f"{namespace}Quota").child(camel(key)).error(
                    f"the {namespace} workloads request up to {needed}; allowed: at least {needed}",
                    getattr(quota, key))


__all__ = ["CompilationJobSettings", "ServingSettings", "TrainingJobSettings", "WORKLOAD_PROFILES", "WorkloadSettings",
           "check_compute"]
