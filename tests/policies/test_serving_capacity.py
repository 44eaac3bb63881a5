"""The serving autoscaler's maximum against its pool: the KEDA ScaledObject's maxReplicaCount times the
NeuronCores per replica must fit what the serve pool holds at its limit (`workloads-fit-their-pool`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from aiinfra.policy_runner import evaluate, mandatory
from aiinfra.stackfile import ROOT

RULE = "workloads-fit-their-pool"


def prod_pools(**serve: Any) -> list[dict[str, Any]]:
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    pools = doc["config"]["aiinfra:nodePools"]
    return [{**p, **serve} if p["name"] == "serve" else p for p in pools]


def fit_findings(graph: Any) -> list[str]:
    return [f.message for f in mandatory(evaluate(graph)) if f.policy == RULE]


def test_prod_serving_maximum_fits_its_pool(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    scaler = next(iter(graph.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")))
    assert scaler.inputs["spec"]["maxReplicaCount"] == 6
    assert fit_findings(graph) == []


def test_twelve_replicas_on_three_serving_nodes_are_refused_in_one_line(synth_with: Callable) -> None:
    # The old prod value: 12 replicas of one NeuronCore on 3 x inf2.8xlarge (2 cores each: room for 6).
    graph = synth_with({"aiinfra:nodePools": prod_pools(maxSize=3),
                        "aiinfra:workloads": {"serving": {"maxReplicas": 12}}}, base="prod")
    [message] = fit_findings(graph)
    assert "\n" not in message
    assert message == (
        "Deployment serving/model-server: up to 12 pods (ScaledObject serving/model-server maxReplicaCount) x 1 "
        "aws.amazon.com/neuroncore, but node pool serve (node group node-pools-serve) holds 6 such pods at its limit "
        "(maxSize 3: 3 x inf2.8xlarge x 2 pod(s) per node)")
