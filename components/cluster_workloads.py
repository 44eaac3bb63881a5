"""Workload declarations on the cluster: distributed training, Neuron compilation and the model server.

These declare where and how each workload runs (pool, devices, identity, probes, scaling); the code they run
lives in `workloads/`. Node selectors, tolerations and the scheduler name all come from
`components.accelerators.placement_for`, the same definitions that taint and label the pools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.accelerators import EFA, NEURON_CORE, NEURON_DEVICE, NVIDIA_GPU, placement_for
from components.kubernetes_addons import WorkloadTarget
from components.pod_sizing import COMPILATION_POD, SERVING_POD, PodSize, per_node, training_pod
from components.settings import NodePoolSettings, StackIdentity, WorkloadSettings
from components.storage import StorageRefs
from components.workload_identity import SERVICE_ACCOUNTS
from contracts.ports import MODEL_SERVER as SERVING_PORT
from contracts.ports import REDIS as REDIS_PORT
from contracts.ports import TORCHRUN as TORCHRUN_PORT
from contracts.storage import CHECKPOINTS, TRAINED
MODEL_DIR = "/opt/ml/model"
# Pulumi waits for a Job to complete; these are declared suspended and started by their launchers.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.0"


def resources(size: PodSize, accelerator: str | None = None, efa: bool = False) -> dict[str, dict[str, str]]:
    """Container resources: extended resources (devices) must have requests equal to limits."""
    requests = {"cpu": str(size.cpu), "memory": f"{size.memory_gib}Gi"}
    limits = {"memory": f"{size.memory_gib}Gi"}
    if accelerator and size.accelerators:
        requests[accelerator] = limits[accelerator] = str(size.accelerators)
    if efa and size.efa_interfaces:
        requests[EFA] = limits[EFA] = str(size.efa_interfaces)
    return {"requests": requests, "limits": limits}


def serving_accelerator(pool: NodePoolSettings) -> str:
    """The resource a server replica asks for: whole GPUs, or NeuronCores (a share of an Inferentia chip)."""
    return NVIDIA_GPU if pool.profile == "nvidia-gpu" else NEURON_CORE


def pod_spec(pool: NodePoolSettings, service_account: str, containers: list[dict[str, Any]],
             **extra: Any) -> dict[str, Any]:
    """A pod spec bound to `pool`: its node selector, the toleration for its taint, and its scheduler."""
    return {"service_account_name": service_account, "containers": containers,
            **placement_for(pool.name, pool.profile).pod_spec_fields(), **extra}


@dataclass(frozen=True)
class SharedCache:
    """The feature store as the model servers see it: the primary's address and the AUTH secret's ARN."""

    endpoint: pulumi.Output[str]
    secret_arn: pulumi.Output[str]


class ClusterWorkloads(pulumi.ComponentResource):
    """The training Job and its headless Service, the compilation Job, and the serving Deployment with its
    Service, HorizontalPodAutoscaler and PodDisruptionBudget."""

    def __init__(self, name: str, settings: WorkloadSettings, *, stack: StackIdentity,
                 node_pools: Sequence[NodePoolSettings], addons: WorkloadTarget, storage: StorageRefs,
                 models_key_arn: pulumi.Input[str], feature_store: SharedCache,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:cluster_workloads:ClusterWorkloads", name, None, opts)
        config = settings
        pools = {p.name: p for p in node_pools}
        self._opts = pulumi.ResourceOptions(parent=self, provider=addons.provider,
                                            depends_on=list(addons.prerequisites))
        self._stack = stack
        self._storage = storage
        self._models_key = models_key_arn
        self._feature_store = feature_store
        self._image = {repo: pulumi.Output.concat(r.url, ":", config.image_tag)
                       for repo, r in storage.repositories.items()}
        self._training(name, config, pools[config.training.pool])
        self._compilation(name, config, pools[config.compilation.pool])
        self._serving(name, config, pools[config.serving.pool])
        self.register_outputs({"trainingJob": self.training_job.metadata.name,
                               "servingService": self.serving_service.metadata.name})

    def _env(self, extra: Mapping[str, pulumi.Input[str]] | None = None) -> list[dict[str, Any]]:
        base: dict[str, pulumi.Input[str]] = {
            "AWS_REGION": self._stack.region, "AIINFRA_ENVIRONMENT": self._stack.environment,
            "AIINFRA_DATASETS_BUCKET": self._storage.buckets["datasets"].name,
            "AIINFRA_MODELS_BUCKET": self._storage.buckets["models"].name,
        }
        return [{"name": k, "value": v} for k, v in {**base, **(extra or {})}.items()]

    # --- training --------------------------------------------------------------------------------------------
    def _training(self, name: str, config: WorkloadSettings, pool: NodePoolSettings) -> None:
        spec = SERVICE_ACCOUNTS["training"]
        job_name, nodes = "trainer", config.training.nodes
        labels = {"app.kubernetes.io/name": job_name, "app.kubernetes.io/part-of": "aiinfra"}
        # Indexed-Job pods get stable names `<job>-<index>`; the headless Service gives them DNS records, so
        # every rank finds rank 0 at `trainer-0.trainer`.
        self.training_service = k8s.core.v1.Service(
            f"{name}-training-headless",
            metadata={"name": job_name, "namespace": spec.namespace, "labels": labels},
            spec={"cluster_ip": "None", "selector": labels, "publish_not_ready_addresses": True,
                  "ports": [{"name": "torchrun", "port": TORCHRUN_PORT, "target_port": TORCHRUN_PORT}]},
            opts=self._opts)
        size = training_pod(pool)
        cores = per_node(pool, "neuron_cores")
        command = [
            "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={cores}", "--node-rank=$(JOB_COMPLETION_INDEX)",
            f"--master-addr={job_name}-0.{job_name}", f"--master-port={TORCHRUN_PORT}",
            "-m", "workloads.training", "--model-dir", "/opt/ml/model", "--checkpoint-dir", "/opt/ml/checkpoints",
        ]
        env = {"AIINFRA_CHECKPOINT_PREFIX": CHECKPOINTS,
               "AIINFRA_OUTPUT_PREFIX": TRAINED}
        if pool.efa_enabled:
            # Neuron collectives over EFA (libfabric), with device RDMA where the instance supports it.
            env.update({"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_FORK_SAFE": "1"})
        container = {
            "name": "train", "image": self._image["training"], "command": command, "env": self._env(env),
            "ports": [{"name": "torchrun", "container_port": TORCHRUN_PORT}],
            "resources": resources(size, NEURON_DEVICE, efa=pool.efa_enabled),
            "volume_mounts": [{"name": "shm", "mount_path": "/dev/shm"},
                              {"name": "scratch", "mount_path": "/opt/ml"}],
        }
        template = {"metadata": {"labels": labels}, "spec": pod_spec(
            pool, spec.name, [container], subdomain=job_name, restart_policy="Never",
            volumes=[{"name": "shm", "empty_dir": {"medium": "Memory", "size_limit": "64Gi"}},
                     {"name": "scratch", "empty_dir": {}}])}
        self.training_job = k8s.batch.v1.Job(
            f"{name}-training",
            metadata={"name": job_name, "namespace": spec.namespace, "labels": labels, "annotations": SKIP_AWAIT},
            spec={"completion_mode": "Indexed", "completions": nodes, "parallelism": nodes,
                  "suspend": config.training.suspend, "backoff_limit": 3, "template": template},
            opts=self._opts)

    # --- compilation -----------------------------------------------------------------------------------------
    def _compilation(self, name: str, config: WorkloadSettings, pool: NodePoolSettings) -> None:
        spec = SERVICE_ACCOUNTS["compilation"]
        labels = {"app.kubernetes.io/name": "compiler", "app.kubernetes.io/part-of": "aiinfra"}
        size = PodSize(COMPILATION_POD.cpu, COMPILATION_POD.memory_gib, accelerators=config.compilation.neuron_cores)
        source, compiled = "/opt/ml/input/model", "/opt/ml/output/compiled"
        container = {
            "name": "compile", "image": self._image["compilation"],
            # $(VAR) is expanded by the kubelet from the container's env.
            "command": ["python", "-m", "workloads.compilation", "--target", pool.profile, "--model-dir", source,
                        "--out", compiled, "--upload", "s3://$(AIINFRA_MODELS_BUCKET)/$(OUTPUT_PREFIX)",
                        "--kms-key-id", "$(MODELS_KEY_ARN)"],
            "env": self._env({"OUTPUT_PREFIX": config.serving.model_prefix, "MODELS_KEY_ARN": self._models_key,
                              "NEURON_RT_NUM_CORES": str(config.compilation.neuron_cores)}),
            "resources": resources(size, NEURON_CORE),
            "volume_mounts": [{"name": "scratch", "mount_path": "/opt/ml"}],
        }
        self.compilation_job = k8s.batch.v1.Job(
            f"{name}-compilation",
            metadata={"name": "compiler", "namespace": spec.namespace, "labels": labels, "annotations": SKIP_AWAIT},
            spec={"suspend": config.compilation.suspend, "backoff_limit": 2, "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec(pool, spec.name, [container], restart_policy="Never",
                                 init_containers=[self._fetch_model(config.compilation.source_prefix, source,
                                                                    volume="scratch")],
                                 volumes=[{"name": "scratch", "empty_dir": {}}])}},
            opts=self._opts)

    def _fetch_model(self, prefix: str, target: str, volume: str = "model") -> dict[str, Any]:
        """An init container that copies a model folder from the models bucket (as the pod's IRSA role)."""
        return {
            "name": "fetch-model", "image": AWS_CLI_IMAGE,
            "command": ["aws", "s3", "sync", "--only-show-errors", "s3://$(AIINFRA_MODELS_BUCKET)/$(MODEL_PREFIX)",
                        target],
            "env": self._env({"MODEL_PREFIX": prefix.rstrip("/") + "/"}),
            "resources": resources(SERVING_POD),
            "volume_mounts": [{"name": volume, "mount_path": target if volume == "model" else "/opt/ml"}],
        }

    # --- serving ---------------------------------------------------------------------------------------------
    def _shared_cache(self) -> dict[str, pulumi.Input[str]]:
        """The feature store as the servers' shared result cache: its TLS endpoint, and the ARN of the secret
        holding its AUTH token (read by the server with its IRSA role), never the token itself."""
        store = self._feature_store
        return {"SERVING_REDIS_URL": pulumi.Output.concat("rediss://", store.endpoint, ":", str(REDIS_PORT)),
                "SERVING_REDIS_AUTH_SECRET_ARN": store.secret_arn}

    def _serving(self, name: str, config: WorkloadSettings, pool: NodePoolSettings) -> None:
        spec = SERVICE_ACCOUNTS["serving"]
        serving = config.serving
        labels = {"app.kubernetes.io/name": "model-server", "app.kubernetes.io/part-of": "aiinfra"}
        accelerator = serving_accelerator(pool)
        size = PodSize(SERVING_POD.cpu, SERVING_POD.memory_gib, accelerators=serving.accelerators_per_pod)
        fetch = self._fetch_model(serving.model_prefix, MODEL_DIR)
        server = {
            "name": "server", "image": self._image["serving"], "command": ["serve"],
            "env": self._env({"SERVING_MODEL_DIR": MODEL_DIR, "SERVING_PORT": str(SERVING_PORT),
                              **self._shared_cache()}),
            "ports": [{"name": "http", "container_port": SERVING_PORT}],
            "resources": resources(size, accelerator),
            "readiness_probe": {"http_get": {"path": "/v2/health/ready", "port": "http"},
                                "period_seconds": 5, "failure_threshold": 3},
            "liveness_probe": {"http_get": {"path": "/v2/health/live", "port": "http"},
                               "initial_delay_seconds": 30, "period_seconds": 10, "failure_threshold": 6},
            "startup_probe": {"http_get": {"path": "/ping", "port": "http"}, "period_seconds": 10,
                              "failure_threshold": 30},
            "volume_mounts": [{"name": "model", "mount_path": MODEL_DIR, "read_only": True}],
            "security_context": {"allow_privilege_escalation": False, "run_as_non_root": True, "run_as_user": 1000},
        }
        template = {"metadata": {"labels": labels}, "spec": pod_spec(
            pool, spec.name, [server], init_containers=[fetch],
            termination_grace_period_seconds=60,
            topology_spread_constraints=[{"max_skew": 1, "topology_key": "topology.kubernetes.io/zone",
                                          "when_unsatisfiable": "ScheduleAnyway",
                                          "label_selector": {"match_labels": labels}}],
            volumes=[{"name": "model", "empty_dir": {}}])}
        meta = {"name": "model-server", "namespace": spec.namespace, "labels": labels}
        self.serving_deployment = k8s.apps.v1.Deployment(
            f"{name}-serving", metadata=meta,
            spec={"replicas": serving.min_replicas, "selector": {"match_labels": labels}, "template": template,
                  "strategy": {"type": "RollingUpdate",
                               "rolling_update": {"max_unavailable": 0, "max_surge": 1}}},
            # The autoscaler owns the replica count after the first rollout.
            opts=pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(ignore_changes=["spec.replicas"])))
        self.serving_service = k8s.core.v1.Service(
            f"{name}-serving", metadata=meta,
            spec={"type": "ClusterIP", "selector": labels,
                  "ports": [{"name": "http", "port": 80, "target_port": "http"}]},
            opts=self._opts)
        self.serving_autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-serving", metadata=meta,
            spec={"scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": "model-server"},
                  "min_replicas": serving.min_replicas, "max_replicas": serving.max_replicas,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                      "type": "Utilization", "average_utilization": serving.target_cpu_utilization}}}]},
            opts=self._opts)
        self.serving_disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-serving", metadata=meta,
            spec={"max_unavailable": 1, "selector": {"match_labels": labels}},
            opts=self._opts)

