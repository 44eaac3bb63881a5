"""Workload declarations: every accelerator pod lands on a pool that offers its device, and only there."""

from __future__ import annotations

import pytest
from compute_graph import (
    DEPLOYMENT,
    JOB,
    accelerator_requests,
    node_groups,
    one,
    pod_specs,
    stack_pools,
    taints_k8s,
    tolerates,
)

from components.accelerators import PROFILE_SPECS

STACKS = ("dev", "staging", "prod")


def offers(profile: str) -> set[str]:
    return set(PROFILE_SPECS[profile].resources)


@pytest.mark.parametrize("stack", STACKS)
def test_accelerator_pods_tolerate_exactly_their_pools_taint_and_select_its_label(stack_graph, stack):
    graph = stack_graph(stack)
    groups, pools = node_groups(graph), stack_pools(stack)
    checked = 0
    for record, pod in pod_specs(graph):
        if not record.name.startswith("workloads-"):
            continue  # the feature pipeline's CPU pods (test_features_pipeline.py)
        asked = accelerator_requests(pod)
        assert asked, f"{record.name} asks for no accelerator"
        selector = pod["nodeSelector"]
        # The pods it may land on: node groups whose labels satisfy the selector.
        fitting = [g for g in groups.values() if all(g.inputs["labels"].get(k) == v for k, v in selector.items())]
        assert fitting, f"{record.name} selects no pool"
        for group in fitting:
            pool = pools[group.inputs["labels"]["aiinfra.io/node-pool"]]
            assert set(asked) <= offers(pool["profile"]), f"{record.name} asks {asked} of {pool['name']}"
            taints = taints_k8s(group)
            assert all(tolerates(pod["tolerations"], t) for t in taints)
            # Exactly: one toleration per taint of the pool, nothing broader (no operator Exists, no empty key).
            assert len(pod["tolerations"]) == len(taints)
            assert all(t["operator"] == "Equal" and t["key"] for t in pod["tolerations"])
        # The pool label pins it to one pool: it cannot drift onto another pool's nodes.
        assert len(fitting) == 1, f"{record.name} fits {len(fitting)} pools"
        checked += 1
    assert checked == 3


def test_training_is_an_indexed_torchrun_job_with_a_headless_service(stack_graph):
    graph = stack_graph("prod")
    job = next(r for r in graph.of_type(JOB) if r.inputs["metadata"]["name"] == "trainer")
    spec = job.inputs["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    assert spec["suspend"] is True
    assert job.inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    pod = spec["template"]["spec"]
    service = next(r for r in graph.of_type("kubernetes:core/v1:Service")
                   if r.inputs["metadata"]["name"] == pod["subdomain"])
    assert service.inputs["spec"]["clusterIP"] == "None"
    assert service.inputs["spec"]["selector"] == spec["template"]["metadata"]["labels"]
    assert service.inputs["metadata"]["namespace"] == job.inputs["metadata"]["namespace"] == "training"
    [container] = pod["containers"]
    command = container["command"]
    assert command[:1] == ["torchrun"]
    assert {"--nnodes=4", "--nproc-per-node=32", "--node-rank=$(JOB_COMPLETION_INDEX)",
            "--master-addr=trainer-0.trainer"} <= set(command)
    # A whole trn1.32xlarge per pod: all 16 Neuron devices and all 8 EFA interfaces.
    assert container["resources"]["limits"]["aws.amazon.com/neuron"] == "16"
    assert container["resources"]["limits"]["vpc.amazonaws.com/efa"] == "8"
    assert container["resources"]["requests"]["vpc.amazonaws.com/efa"] == "8"
    assert container["image"] == graph.stack_outputs["trainingRepositoryUrl"] + ":1.0.0"
    assert pod["serviceAccountName"] == "trainer"
    assert {"name": "FI_PROVIDER", "value": "efa"} in container["env"]


def test_dev_training_without_efa_asks_for_no_efa(stack_graph):
    job = next(r for r in stack_graph("dev").of_type(JOB) if r.inputs["metadata"]["name"] == "trainer")
    [container] = job.inputs["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"aws.amazon.com/neuron": "1", "cpu": "6", "memory": "24Gi"}
    assert "--nproc-per-node=2" in container["command"]


def test_compilation_job_runs_on_the_inferentia_pool_and_publishes_where_serving_reads(stack_graph):
    graph = stack_graph("prod")
    job = next(r for r in graph.of_type(JOB) if r.inputs["metadata"]["name"] == "compiler")
    pod = job.inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"aiinfra.io/node-pool": "compile", "accelerator": "neuron"}
    [container] = pod["containers"]
    assert container["resources"]["limits"]["aws.amazon.com/neuroncore"] == "1"
    assert container["command"][:3] == ["python", "-m", "workloads.compilation"]
    command = container["command"]
    models = "s3://$(AIINFRA_MODELS_BUCKET)/"
    # It reads the pointer training publishes (not a folder nothing writes) and publishes where serving reads.
    assert command[command.index("--model-s3-uri") + 1] == models + "training/latest.json"
    assert command[command.index("--upload") + 1] == models + "compiled/current/"
    assert command[command.index("--device") + 1] == "neuron"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AIINFRA_MODELS_KEY_ARN"] == graph.stack_outputs["modelsKeyArn"]
    assert "initContainers" not in pod, "the compiler reads S3 itself; no aws-cli image with its credentials"


def test_serving_deployment_has_probes_autoscaler_budget_and_service(stack_graph):
    graph = stack_graph("prod")
    deployment = one(graph, DEPLOYMENT, "workloads-serving")
    spec = deployment.inputs["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"] == labels
    pod = spec["template"]["spec"]
    [server] = pod["containers"]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert server["ports"] == [{"name": "http", "containerPort": 8080}]
    assert server["resources"]["limits"]["aws.amazon.com/neuroncore"] == "1"
    assert server["image"] == graph.stack_outputs["servingRepositoryUrl"] + ":1.0.0"
    assert pod["serviceAccountName"] == "model-server"
    assert graph.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler") == []  # KEDA owns the HPA
    scaler = one(graph, "kubernetes:keda.sh/v1alpha1:ScaledObject").inputs["spec"]
    assert scaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": deployment.inputs["metadata"]["name"]}
    assert (scaler["minReplicaCount"], scaler["maxReplicaCount"]) == (3, 6)
    queue, cpu = scaler["triggers"]
    assert (queue["type"], queue["metadata"]["metricName"]) == ("aws-cloudwatch", "serving_queue_depth")
    assert cpu == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
    pdb = one(graph, "kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["selector"]["matchLabels"] == labels and pdb["maxUnavailable"] == 1
    service = next(r for r in graph.of_type("kubernetes:core/v1:Service")
                   if r.inputs["metadata"]["name"] == "model-server").inputs["spec"]
    assert service["selector"] == labels
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_serving_on_a_gpu_pool_asks_for_gpus_and_tolerates_the_gpu_taint(synth_with):
    graph = synth_with({"aiinfra:workloads": {"serving": {"pool": "gpu"}},
                        "aiinfra:kubernetes": {"servingQuota": {"gpus": 2}}})
    pod = one(graph, DEPLOYMENT, "workloads-serving").inputs["spec"]["template"]["spec"]
    [server] = pod["containers"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "aws.amazon.com/neuroncore" not in server["resources"]["limits"]
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true",
                                   "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"aiinfra.io/node-pool": "gpu", "accelerator": "nvidia"}
    assert "schedulerName" not in pod


# --- bad settings -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,expected", [
    ({"aiinfra:workloads": {"training": {"pool": "infer"}}},
     "aiinfra:workloads.training.pool = 'infer': pool 'infer' is inferentia; training runs on trainium pools; "
     "allowed: train"),
    ({"aiinfra:workloads": {"serving": {"pool": "system"}}},
     "aiinfra:workloads.serving.pool = 'system': pool 'system' is cpu; serving runs on inferentia or nvidia-gpu "
     "pools; allowed: infer, gpu"),
    ({"aiinfra:workloads": {"compilation": {"pool": "inference"}}},
     "aiinfra:workloads.compilation.pool = 'inference': no such node pool; allowed: infer"),
    ({"aiinfra:workloads": {"training": {"nodes": 3}}},
     "aiinfra:workloads.training.nodes = 3: pool 'train' scales to 2 nodes; allowed: 1..2"),
    ({"aiinfra:workloads": {"serving": {"acceleratorsPerPod": 4}}},
     "aiinfra:workloads.serving.acceleratorsPerPod = 4: pool 'infer' nodes have 2 neuron cores; allowed: 1..2"),
    ({"aiinfra:workloads": {"serving": {"modelPrefix": "training/current"}}},
     "aiinfra:workloads.serving.modelPrefix = 'training/current': the server may read compiled models only"),
    ({"aiinfra:workloads": {"compilation": {"sourcePrefix": "../datasets"}}},
     "aiinfra:workloads.compilation.sourcePrefix = '../datasets': the compiler reads trained models only"),
    ({"aiinfra:workloads": {"serving": {"minReplicas": 3, "maxReplicas": 2}}},
     "aiinfra:workloads.serving.minReplicas = 3: must not exceed maxReplicas (2)"),
    ({"aiinfra:workloads": {"imageTag": "latest"}},
     "aiinfra:workloads.imageTag = 'latest': an immutable image tag (not 'latest')"),
    ({"aiinfra:kubernetes": {"trainingQuota": {"neuronDevices": 1}}},
     "aiinfra:kubernetes.trainingQuota.neuronDevices = 1: the training workloads request up to 2; allowed: at "
     "least 2"),
    ({"aiinfra:kubernetes": {"servingQuota": {"neuronCores": 1}}},
     "aiinfra:kubernetes.servingQuota.neuronCores = 1: the serving workloads request up to 2; allowed: at least 2"),
    ({"aiinfra:kubernetes": {"neuronChartVersion": "latest"}},
     "aiinfra:kubernetes.neuronChartVersion = 'latest': pin an exact chart version"),
])
def test_bad_workload_settings_fail_with_one_line(settings_error, overrides, expected):
    assert expected in settings_error(overrides)


def test_prod_training_quota_must_cover_efa_interfaces(settings_error):
    message = settings_error({"aiinfra:kubernetes": {"trainingQuota": {"efaInterfaces": 16}}}, base="prod")
    assert message.endswith("Pulumi.prod.yaml: aiinfra:kubernetes.trainingQuota.efaInterfaces = 16: the training "
                            "workloads request up to 32; allowed: at least 32")
