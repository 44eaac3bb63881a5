"""Container entry point: run the training once per device, across every instance SageMaker started.

SageMaker starts a training image as `<entrypoint> train` on each instance and describes the cluster in
`/opt/ml/input/config/resourceconfig.json`; it does not start torchrun for a bring-your-own image. This module
reads that file, counts this instance's accelerators and execs torchrun (or the plain command when there is one
process in all), so `ml.trn1.32xlarge` x N runs N x 32 ranks with no change to the training code.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

MASTER_PORT = "29500"


def processes_per_node(env: Mapping[str, str], *, cuda_devices: int, neuron_devices: int) -> int:
    """NPROC_PER_NODE if set; else one per GPU; else one per NeuronCore (cores per device: 2 on trn1/inf2)."""
    if env.get("NPROC_PER_NODE"):
        return int(env["NPROC_PER_NODE"])
    if cuda_devices:
        return cuda_devices
    if neuron_devices:
        return neuron_devices * int(env.get("NEURON_CORES_PER_DEVICE", "2"))
    return 1


def build_command(argv: Sequence[str], env: Mapping[str, str], *, cuda_devices: int, neuron_devices: int,
                  python: str = sys.executable) -> list[str]:
    """The command line to exec on this instance."""
    args = [a for a in argv if a != "train"]
    base = Path(env.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
    config_path = base / "input" / "config" / "resourceconfig.json"
    hosts, current = ["localhost"], "localhost"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        hosts, current = sorted(config["hosts"]), config["current_host"]
    nproc = processes_per_node(env, cuda_devices=cuda_devices, neuron_devices=neuron_devices)
    if len(hosts) * nproc == 1:
        return [python, "-m", "workloads.training", *args]
    return [python, "-m", "torch.distributed.run", "--nnodes", str(len(hosts)),
            "--node-rank", str(hosts.index(current)), "--nproc-per-node", str(nproc),
            "--master-addr", hosts[0], "--master-port", MASTER_PORT, "-m", "workloads.training", *args]


def _device_counts() -> tuple[int, int]:
    import torch

    neuron = len([p for p in Path("/dev").glob("neuron*") if p.name[len("neuron"):].isdigit()])
    return (torch.cuda.device_count() if torch.cuda.is_available() else 0), neuron


def main(argv: Sequence[str] | None = None) -> None:
    cuda, neuron = _device_counts()
    command = build_command(sys.argv[1:] if argv is None else argv, os.environ, cuda_devices=cuda,
                            neuron_devices=neuron)
    print("exec: " + " ".join(command), file=sys.stderr, flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
