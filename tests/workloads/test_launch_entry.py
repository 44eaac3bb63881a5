"""The image entry point turns SageMaker's resourceconfig.json into the right torchrun command."""

from __future__ import annotations

import json

from workloads.training.entry import build_command


def _resourceconfig(base, hosts, current):
    path = base / "input" / "config" / "resourceconfig.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"current_host": current, "hosts": hosts, "network_interface_name": "eth0"}))


def test_two_trn1_instances_run_torchrun_across_both(tmp_path):
    _resourceconfig(tmp_path, ["algo-2", "algo-1"], "algo-2")
    command = build_command(["train"], {"SAGEMAKER_BASE_DIR": str(tmp_path)}, cuda_devices=0, neuron_devices=16,
                            python="py")
    assert command == ["py", "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", "1",
                       "--nproc-per-node", "32", "--master-addr", "algo-1", "--master-port", "29500",
                       "-m", "workloads.training"]


def test_one_cpu_instance_runs_the_plain_command_and_override_wins(tmp_path):
    _resourceconfig(tmp_path, ["algo-1"], "algo-1")
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path)}
    assert build_command(["train", "--epochs", "1"], env, cuda_devices=0, neuron_devices=0, python="py") == [
        "py", "-m", "workloads.training", "--epochs", "1"]
    command = build_command(["train"], {**env, "NPROC_PER_NODE": "4"}, cuda_devices=8, neuron_devices=0, python="py")
    assert command[command.index("--nproc-per-node") + 1] == "4"
    command = build_command(["train"], env, cuda_devices=8, neuron_devices=0, python="py")
    assert command[command.index("--nproc-per-node") + 1] == "8"
