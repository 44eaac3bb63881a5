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

from components.accelerators import EFA, NEURON_CORE, NEURON_DEVICE, NVIDIA_GPU, PROFILE_SPECS, placement_for
from components.kubernetes_addons import WorkloadTarget
from components.pod_sizing import COMPILATION_POD, SERVING_POD, PodSize, per_node, training_pod
from components.settings import NodePoolSettings, ServingSettings, StackIdentity, WorkloadSettings
from components.storage import StorageRefs
from components.telemetry import ServingAutoscaling
from components.workload_identity import SERVICE_ACCOUNTS
from contracts import env as names
from contracts.ports import MODEL_SERVER as SERVING_PORT
from contracts.ports import REDIS as REDIS_PORT
from contracts.ports import TORCHRUN as TORCHRUN_PORT
from contracts.storage import CHECKPOINTS, POINTER, TRAIN_CHANNEL, TRAINED, VALIDATION_CHANNEL
from contracts.telemetry import QUEUE_DEPTH

MODEL_DIR = "/opt/ml/model"
RUN_AS = 1000  # the images' unprivileged user
# Pulumi waits for a Job to complete; these are declared suspended and started by their launchers.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}
# Pods that may call the model server carry this label (any namespace); nothing else reaches it.
MODEL_CLIENT_LABEL = "aiinfra.io/model-client"
# The model server's pod labels: what its Service, NetworkPolicy, autoscaler and metrics scrape select.
SERVER_LABELS = {"app.kubernetes.io/name": "model-server", "app.kubernetes.io/part-of": "aiinfra"}
# The device each pool profile's workloads are told to use (`--device`): never a silent CPU fallback.
DEVICES = {"nvidia": "cuda", "neuron": "neuron", None: "cpu"}

# Pod Security `restricted`: non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp.
# EFA needs no capability here: the EKS AL2023 AMIs run containerd with an unlimited memlock limit, which is
# what libfabric's memory registration needs (IPC_LOCK would only lift that limit, and restricted forbids it).
POD_SECURITY = {"run_as_non_root": True, "run_as_user": RUN_AS, "run_as_group": RUN_AS, "fs_group": RUN_AS,
                "seccomp_profile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allow_privilege_escalation": False, "read_only_root_filesystem": True,
                      "run_as_non_root": True, "capabilities": {"drop": ["ALL"]}}
TMP = "/tmp"  # the one writable place besides the workload's own volumes (HOME points here)


def device_for(pool: NodePoolSettings) -> str:
    """`--device` for workloads on `pool`: cuda on GPU pools, neuron on Trainium/Inferentia, cpu otherwise."""
    return DEVICES[PROFILE_SPECS[pool.profile].accelerator]


def resources(size: PodSize, accelerator: str | None = None, efa: bool = False) -> dict[str, dict[str, str]]:
    """Container resources, limits equal to requests: the namespace's LimitRange default limit never applies
    (a default below the request would get the pod refused at admission), and devices must have requests
    equal to limits anyway."""
    requests = {"cpu": str(size.cpu), "memory": f"{size.memory_gib}Gi"}
    limits = dict(requests)
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
    volumes = [*extra.pop("volumes", []), {"name": "tmp", "empty_dir": {}}]
    return {"service_account_name": service_account, "automount_service_account_token": False,
            "security_context": POD_SECURITY, "enable_service_links": False,
            "containers": [hardened(c) for c in containers],
            **({"init_containers": [hardened(c) for c in extra.pop("init_containers")]}
               if "init_containers" in extra else {}),
            **placement_for(pool.name, pool.profile).pod_spec_fields(), "volumes": volumes, **extra}


# Variables only a container's own command line reads (as `$(NAME)`): a container whose command does not expand
# one is not given it, so every variable a container gets is one it reads.
EXPANDED_ONLY = (names.DATASETS_BUCKET, names.MODELS_BUCKET, names.MODELS_KEY_ARN)


def hardened(container: dict[str, Any]) -> dict[str, Any]:
    """A container under the restricted profile, with a writable /tmp (and HOME there) on a read-only root,
    given only the environment it reads."""
    words = " ".join(w for w in [*container.get("command", []), *container.get("args", [])] if isinstance(w, str))
    env = [v for v in container.get("env", []) if v["name"] not in EXPANDED_ONLY or f"$({v['name']})" in words]
    return {**container, "security_context": CONTAINER_SECURITY, **({"env": env} if "env" in container else {}),
            "volume_mounts": [*container.get("volume_mounts", []), {"name": "tmp", "mount_path": TMP}]}


@dataclass(frozen=True)
class SharedCache:
    """The feature store as the model servers see it: the primary's address and the AUTH secret's ARN."""

    endpoint: pulumi.Output[str]
    secret_arn: pulumi.Output[str]


class ClusterWorkloads(pulumi.ComponentResource):
    """The training Job and its headless Service, the compilation Job, and the serving Deployment with its
    Service, KEDA ScaledObject and PodDisruptionBudget."""

    def __init__(self, name: str, settings: WorkloadSettings, *, stack: StackIdentity,
                 node_pools: Sequence[NodePoolSettings], addons: WorkloadTarget, storage: StorageRefs,
                 models_key_arn: pulumi.Input[str], data_key_arn: pulumi.Input[str], feature_store: SharedCache,
                 vpc_cidr: str, autoscaling: ServingAutoscaling,
                 api_keys_secret_arn: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:cluster_workloads:ClusterWorkloads", name, None, opts)
        config = settings
        pools = {p.name: p for p in node_pools}
        self._opts = pulumi.ResourceOptions(parent=self, provider=addons.provider,
                                            depends_on=list(addons.prerequisites))
        self._stack = stack
        self._storage = storage
        self._models_key = models_key_arn
        self._data_key = data_key_arn
        self._feature_store = feature_store
        self._api_keys = api_keys_secret_arn
        self._autoscaling = autoscaling
        self._image = {repo: pulumi.Output.concat(r.url, ":", config.image_tag)
                       for repo, r in storage.repositories.items()}
        self._training(name, config, pools[config.training.pool])
        self._compilation(name, config, pools[config.compilation.pool])
        self._serving(name, config, pools[config.serving.pool])
        self._network_policies(name, vpc_cidr)
        # (namespace, name) of the workloads whose pods take accelerators: what the pending-pod alarms watch.
        self.accelerated_workloads = (
            (SERVICE_ACCOUNTS["training"].namespace, "trainer"), (SERVICE_ACCOUNTS["compilation"].namespace, "compiler"),
            (SERVICE_ACCOUNTS["serving"].namespace, SERVER_LABELS["app.kubernetes.io/name"]))
        self.register_outputs({"trainingJob": self.training_job.metadata.name,
                               "servingService": self.serving_service.metadata.name})

    def _env(self, extra: Mapping[str, pulumi.Input[str]] | None = None) -> list[dict[str, Any]]:
        base: dict[str, pulumi.Input[str]] = {
            names.AWS_REGION: self._stack.region,
            names.DATASETS_BUCKET: self._storage.buckets["datasets"].name,
            names.MODELS_BUCKET: self._storage.buckets["models"].name,
            names.MODELS_KEY_ARN: self._models_key, "HOME": TMP,
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
        datasets = f"s3://$({names.DATASETS_BUCKET})/{config.training.data_prefix}"
        models = f"s3://$({names.MODELS_BUCKET})/"
        # $(VAR) is expanded by the kubelet from the container's env. The run is the Job's uid: every pod and
        # every retry of this Job shares its checkpoints, a new Job starts a new run.
        command = [
            "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={cores}", "--node-rank=$(JOB_COMPLETION_INDEX)",
            f"--master-addr={job_name}-0.{job_name}", f"--master-port={TORCHRUN_PORT}",
            "-m", "workloads.training", "--device", device_for(pool),
            "--train", datasets + TRAIN_CHANNEL, "--validation", datasets + VALIDATION_CHANNEL,
            "--model-dir", "/opt/ml/model", "--checkpoint-dir", "/opt/ml/checkpoints",
            "--checkpoint-s3-uri", f"s3://$({names.DATASETS_BUCKET})/{CHECKPOINTS}$({names.RUN})/",
            "--checkpoint-kms-key-id", f"$({names.DATA_KEY_ARN})",
            "--output-s3-uri", f"{models}{TRAINED}$({names.RUN})/",
            "--output-kms-key-id", f"$({names.MODELS_KEY_ARN})",
            "--pointer-s3-uri", f"{models}{POINTER}",
        ]
        env: dict[str, pulumi.Input[str]] = {names.DATA_KEY_ARN: self._data_key}
        if pool.efa_enabled:
            # Neuron collectives over EFA (libfabric), with device RDMA where the instance supports it.
            env.update({"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_FORK_SAFE": "1"})
        run = {"name": names.RUN, "value_from": {"field_ref": {"field_path": names.JOB_UID_FIELD}}}
        container = {
            "name": "train", "image": self._image["training"], "command": command,
            "env": [run, *self._env({**env, **self._neuron_cache(pool)})],
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
        compiled = "/opt/ml/output/compiled"
        models = f"s3://$({names.MODELS_BUCKET})/"
        container = {
            "name": "compile", "image": self._image["compilation"],
            # The trained model comes through the pointer (or run prefix) training published; $(VAR) is
            # expanded by the kubelet from the container's env.
            "command": ["python", "-m", "workloads.compilation", "--target", pool.profile,
                        "--device", device_for(pool), "--model-s3-uri", models + config.compilation.source_prefix,
                        "--out", compiled, "--upload", models + config.serving.model_prefix.rstrip("/") + "/",
                        "--kms-key-id", f"$({names.MODELS_KEY_ARN})"],
            "env": self._env({"NEURON_RT_NUM_CORES": str(config.compilation.neuron_cores),
                              **self._neuron_cache(pool)}),
            "resources": resources(size, NEURON_CORE),
            "volume_mounts": [{"name": "scratch", "mount_path": "/opt/ml"}],
        }
        self.compilation_job = k8s.batch.v1.Job(
            f"{name}-compilation",
            metadata={"name": "compiler", "namespace": spec.namespace, "labels": labels, "annotations": SKIP_AWAIT},
            spec={"suspend": config.compilation.suspend, "backoff_limit": 2, "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec(pool, spec.name, [container], restart_policy="Never",
                                 volumes=[{"name": "scratch", "empty_dir": {}}])}},
            opts=self._opts)

    @staticmethod
    def _neuron_cache(pool: NodePoolSettings) -> dict[str, str]:
        """The Neuron compiler cache defaults to /var/tmp, which a read-only root filesystem refuses."""
        return {"NEURON_COMPILE_CACHE_URL": f"{TMP}/neuron-compile-cache"} if device_for(pool) == "neuron" else {}

    def _fetch_model(self, prefix: str) -> dict[str, Any]:
        """An init container that copies the compiled model from the models bucket, as the pod's IRSA role,
        with the server's own image and S3 code (no second image holding the pod's credentials)."""
        return {
            "name": "fetch-model", "image": self._image["serving"],
            "command": ["python", "-m", "workloads.common.s3", "sync",
                        f"s3://$({names.MODELS_BUCKET})/{prefix.rstrip('/')}/", MODEL_DIR],
            "env": self._env(),
            "resources": resources(SERVING_POD),
            "volume_mounts": [{"name": "model", "mount_path": MODEL_DIR}],
        }

    # --- serving ---------------------------------------------------------------------------------------------
    def _shared_cache(self) -> dict[str, pulumi.Input[str]]:
        """The feature store as the servers' shared result cache: its TLS endpoint, and the ARN of the secret
        holding its AUTH token (read by the server with its IRSA role), never the token itself."""
        store = self._feature_store
        return {"SERVING_REDIS_URL": pulumi.Output.concat("rediss://", store.endpoint, ":", str(REDIS_PORT)),
                "SERVING_REDIS_AUTH_SECRET_ARN": store.secret_arn}

    def _guard_rails(self, serving: ServingSettings) -> dict[str, pulumi.Input[str]]:
        """API keys (the ARN of the keys secret when one is given, read by the server with its IRSA role) and the
        per-client and input limits from settings, as the `SERVING_<FLAG>` variables the server reads."""
        env: dict[str, pulumi.Input[str]] = {names.serving_option("--max-inputs"): str(serving.max_inputs)}
        if self._api_keys is not None:
            env[names.SERVING_API_KEYS_SECRET_ARN] = self._api_keys
        optional = {"--rate-limit-rps": serving.rate_limit_rps, "--rate-limit-burst": serving.rate_limit_burst,
                    "--max-input-tokens": serving.max_input_tokens}
        env.update({names.serving_option(flag): str(value) for flag, value in optional.items() if value is not None})
        return env

    def _serving(self, name: str, config: WorkloadSettings, pool: NodePoolSettings) -> None:
        spec = SERVICE_ACCOUNTS["serving"]
        serving = config.serving
        labels = SERVER_LABELS
        accelerator = serving_accelerator(pool)
        size = PodSize(SERVING_POD.cpu, SERVING_POD.memory_gib, accelerators=serving.accelerators_per_pod)
        fetch = self._fetch_model(serving.model_prefix)
        server = {
            "name": "server", "image": self._image["serving"], "command": ["serve"],
            "env": self._env({"SERVING_MODEL_DIR": MODEL_DIR, "SERVING_PORT": str(SERVING_PORT),
                              "SERVING_DEVICE": device_for(pool), **self._shared_cache(),
                              **self._guard_rails(serving)}),
            "ports": [{"name": "http", "container_port": SERVING_PORT}],
            "resources": resources(size, accelerator),
            "readiness_probe": {"http_get": {"path": "/v2/health/ready", "port": "http"},
                                "period_seconds": 5, "failure_threshold": 3},
            "liveness_probe": {"http_get": {"path": "/v2/health/live", "port": "http"},
                               "initial_delay_seconds": 30, "period_seconds": 10, "failure_threshold": 6},
            "startup_probe": {"http_get": {"path": "/ping", "port": "http"}, "period_seconds": 10,
                              "failure_threshold": 30},
            "volume_mounts": [{"name": "model", "mount_path": MODEL_DIR, "read_only": True}],
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
        self.serving_autoscaler = self._scaled_object(name, meta, serving)
        self.serving_disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-serving", metadata=meta,
            spec={"max_unavailable": 1, "selector": {"match_labels": labels}},
            opts=self._opts)

    def _scaled_object(self, name: str, meta: Mapping[str, Any],
                       serving: ServingSettings) -> k8s.apiextensions.CustomResource:
        """KEDA scales the servers on their queue depth (inputs waiting for the accelerator), averaged over the
        replicas, from CloudWatch; CPU (through metrics-server) is a second trigger, so a broken metric path
        still scales on something. `metricType: Value` because the metric is already a per-replica average."""
        scaling = self._autoscaling
        metrics = scaling.metrics
        after_keda = pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(depends_on=[scaling.keda]))
        auth = k8s.apiextensions.CustomResource(
            f"{name}-serving-keda-auth", api_version="keda.sh/v1alpha1", kind="TriggerAuthentication",
            metadata={"name": "cloudwatch", "namespace": meta["namespace"]},
            # The operator's own role (IRSA), which may read CloudWatch metrics only.
            spec={"podIdentity": {"provider": "aws"}}, opts=after_keda)
        cloudwatch = {
            "type": "aws-cloudwatch", "metricType": "Value", "authenticationRef": {"name": "cloudwatch"},
            "metadata": {
                "awsRegion": metrics.region, "namespace": metrics.prometheus_namespace,
                "metricName": QUEUE_DEPTH,
                "dimensionName": ";".join(metrics.dimensions), "dimensionValue": ";".join(metrics.dimensions.values()),
                "metricStat": "Average", "metricStatPeriod": "60", "metricCollectionTime": "180",
                "targetMetricValue": str(serving.target_queue_depth), "minMetricValue": "0"}}
        cpu = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(serving.target_cpu_utilization)}}
        return k8s.apiextensions.CustomResource(
            f"{name}-serving", api_version="keda.sh/v1alpha1", kind="ScaledObject", metadata=dict(meta),
            spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"]},
                  "minReplicaCount": serving.min_replicas, "maxReplicaCount": serving.max_replicas,
                  "pollingInterval": 30, "cooldownPeriod": 300, "triggers": [cloudwatch, cpu]},
            opts=pulumi.ResourceOptions.merge(after_keda, pulumi.ResourceOptions(depends_on=[auth])))

    # --- network policies --------------------------------------------------------------------------------------
    def _network_policies(self, name: str, vpc_cidr: str) -> None:
        """What each workload may reach beyond the namespaces' default deny (see KubernetesAddons): torchrun and
        the collectives only between the training Job's own pods; the model server only from labelled
        clients, and out to the feature store's Redis inside the VPC."""
        trainer = {"app.kubernetes.io/name": "trainer", "app.kubernetes.io/part-of": "aiinfra"}
        server = SERVER_LABELS
        self.network_policies = [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-trainer-peers",
                metadata={"name": "trainer-peers", "namespace": SERVICE_ACCOUNTS["training"].namespace},
                # All ports: torchrun's rendezvous is TORCHRUN_PORT, the collectives' bootstrap picks its own.
                spec={"pod_selector": {"match_labels": trainer}, "policy_types": ["Ingress", "Egress"],
                      "ingress": [{"from": [{"pod_selector": {"match_labels": trainer}}]}],
                      "egress": [{"to": [{"pod_selector": {"match_labels": trainer}}]}]},
                opts=self._opts),
            k8s.networking.v1.NetworkPolicy(
                f"{name}-model-server",
                metadata={"name": "model-server", "namespace": SERVICE_ACCOUNTS["serving"].namespace},
                spec={"pod_selector": {"match_labels": server}, "policy_types": ["Ingress", "Egress"],
                      "ingress": [{"from": [{"namespace_selector": {},
                                             "pod_selector": {"match_labels": {MODEL_CLIENT_LABEL: "true"}}}],
                                   "ports": [{"protocol": "TCP", "port": SERVING_PORT}]}],
                      "egress": [{"to": [{"ip_block": {"cidr": vpc_cidr}}],
                                  "ports": [{"protocol": "TCP", "port": REDIS_PORT}]}]},
                opts=self._opts),
        ]
