"""Where the training runs: one process or torchrun's group, on CPU (gloo), CUDA (nccl) or XLA (Trainium).

torchrun, SageMaker's torch_distributed and the Kubeflow PyTorchJob operator all set RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; with WORLD_SIZE > 1 a process group is started, otherwise none.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from workloads.common.cli import UsageError


def xla_available() -> bool:
    """True when torch_xla can be imported (Trainium images ship torch-neuronx, which brings it)."""
    try:
        return importlib.util.find_spec("torch_xla") is not None
    except (ImportError, ValueError):
        return False


@dataclass
class Runtime:
    """The process's place in the job and the collective operations the training loop needs."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    kind: str  # "cpu" | "cuda" | "xla"
    distributed: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mark_step(self) -> None:
        """Cut and run the lazy XLA graph (no-op elsewhere): after each optimizer step and before reading values."""
        if self.kind == "xla":
            import torch_xla.core.xla_model as xm

            xm.mark_step()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of `values` over all ranks."""
        tensor = torch.tensor(values, dtype=torch.float64 if self.kind == "cpu" else torch.float32,
                              device=self.device)
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        self.mark_step()
        return tensor.cpu().tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any rank (so all ranks stop at the same step)."""
        return self.sum([1.0 if flag else 0.0])[0] > 0 if self.distributed else flag

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def neuron_devices(dev: Path = Path("/dev")) -> int:
    """Neuron devices the host exposes (/dev/neuron0, ...): what the device plugin hands a pod."""
    return len([p for p in dev.glob("neuron*") if p.name[len("neuron"):].isdigit()])


def resolve_kind(device: str = "auto") -> str:
    """The runtime kind ("cpu", "cuda", "xla") for the device asked for; a device whose runtime is absent is a
    one-line error, never a silent CPU run (on a Trainium node that would be 32 CPU processes)."""
    if device == "auto":
        if xla_available():
            return "xla"
        if torch.cuda.is_available():
            return "cuda"
        if neuron_devices():
            raise UsageError("hyperparameter 'device' is 'auto' on a host with Neuron devices but torch_xla is not "
                             "installed: use the Neuron image, or pass --device cpu to train on CPU on purpose")
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("hyperparameter 'device' is 'cuda' but no CUDA device is available "
                         "(torch sees none: CPU build, or no GPU on this host)")
    if device == "neuron":
        if not xla_available():
            raise UsageError("hyperparameter 'device' is 'neuron' but torch_xla is not installed "
                             "(use the Neuron image on a Trn1 host)")
        return "xla"
    return device


def start(kind: str = "cpu") -> Runtime:
    """Join the process group torchrun (or SageMaker, or Kubeflow) describes, on `resolve_kind`'s device."""
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    distributed = world_size > 1
    if kind == "xla":
        import torch_xla.core.xla_model as xm

        if distributed:
            import torch_xla.distributed.xla_backend  # noqa: F401 - registers the "xla" backend

            dist.init_process_group("xla", init_method="xla://")
        torch_device = xm.xla_device()
    elif kind == "cuda":
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
        if distributed:
            dist.init_process_group("nccl")
    else:
        torch_device = torch.device("cpu")
        if distributed:
            dist.init_process_group("gloo")
    return Runtime(rank, world_size, local_rank, torch_device, kind, distributed)
