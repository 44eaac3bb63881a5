"""What each workload pod requests, sized from the nodes of the pool it runs on.

The cluster workloads use these sizes for their container resources, and the settings use the same sizes to
check that a namespace's quota leaves room for its workloads: one computation, so the check and the pod spec
cannot disagree. Pools are read through `PoolShape` (the node pool settings satisfy it), so this module needs
only the instance catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from contracts.instances import InstanceType


class PoolShape(Protocol):
    """What sizing needs to know of a pool: its profile, its instance types' hardware, and whether EFA is on."""

    @property
    def name(self) -> str: ...

    @property
    def profile(self) -> str: ...

    @property
    def catalog(self) -> Sequence[InstanceType]: ...

    @property
    def efa_enabled(self) -> bool: ...


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


def per_node(pool: PoolShape, what: str) -> int:
    """The least of `what` (gpus, neuron_devices, neuron_cores, network_cards, vcpus, memory_gib) any node has."""
    return min(getattr(t, what) for t in pool.catalog)


def serving_device_field(pool: PoolShape) -> str:
    """The quota field a server replica's devices count against: GPUs, or NeuronCores (a share of a chip)."""
    return "gpus" if pool.profile == "nvidia-gpu" else "neuron_cores"


def training_pod(pool: PoolShape) -> PodSize:
    """A training pod takes a whole node: every Neuron device and EFA card, three quarters of CPU and memory
    (the rest is for the kubelet, system reservations and the node's daemon sets)."""
    return PodSize(
        cpu=per_node(pool, "vcpus") * 3 // 4, memory_gib=per_node(pool, "memory_gib") * 3 // 4,
        accelerators=per_node(pool, "neuron_devices"),
        efa_interfaces=per_node(pool, "network_cards") if pool.efa_enabled else 0)


def workload_demand(training: PoolShape, serving: PoolShape, *, nodes: int, replicas: int,
                    accelerators_per_pod: int, compilation_cores: int) -> dict[str, dict[str, int]]:
    """What each namespace's workloads request at most, per quota field: quotas must leave room for them."""
    pod = training_pod(training)
    return {
        "training": {
            "cpu": nodes * pod.cpu + COMPILATION_POD.cpu,
            "memory_gib": nodes * pod.memory_gib + COMPILATION_POD.memory_gib,
            "pods": nodes + 1,
            "neuron_devices": nodes * pod.accelerators,
            "efa_interfaces": nodes * pod.efa_interfaces,
            "neuron_cores": compilation_cores,
        },
        "serving": {
            "cpu": replicas * SERVING_POD.cpu, "memory_gib": replicas * SERVING_POD.memory_gib, "pods": replicas,
            serving_device_field(serving): replicas * accelerators_per_pod,
        },
    }


__all__ = ["COMPILATION_POD", "SERVING_POD", "PodSize", "PoolShape", "per_node", "serving_device_field",
           "training_pod", "workload_demand"]
