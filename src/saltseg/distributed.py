"""Data-parallel training under torchrun: one process per device, rank 0 writes.

torchrun starts the processes and hands each its RANK, WORLD_SIZE, LOCAL_RANK and
the rendezvous address in the environment; `init` joins the process group from
them (gloo on the CPU, NCCL on GPUs). Outside torchrun nothing here talks to
anyone: the context is a single process and every helper is the identity, so a
plain `salt train` runs the code and draws the numbers it always did.

Division of labour: every rank trains on its share of each batch of the same seeded
order (saltseg.data.dataset.EpochBatches) with its own augmentation seeds, and DDP
averages gradients.
Rank 0 alone validates, decides and writes (checkpoints, resume state, metrics,
history, MLflow); whatever it reads or decides is broadcast, so all ranks take the
same path through the epochs and their collective calls line up.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as tdist

from saltseg.errors import SaltError
from saltseg.hardware import Policy, pick_device

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    enabled: bool = False  # launched by torchrun and joined to its process group
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the process's index on its own machine: its GPU
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process: rank r on a machine takes cuda:LOCAL_RANK."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def place(self, policy: Policy) -> Policy:
        """The hardware policy on this process's own device."""
        return dataclasses.replace(policy, device=self.device(policy.device))

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to train with: DDP averages gradients across ranks in backward().

        Keep using the unwrapped `model` for validation and state dicts: its keys have
        no `module.` prefix and its forward needs no peers.
        """
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def batch_size(self, global_batch: int) -> int:
        """This rank's share of train.batch_size: the recipe's batch is the global batch, whatever N."""
        if global_batch % self.world_size:
            raise SaltError(
                f"params: train.batch_size {global_batch} must be a multiple of the "
                f"{self.world_size} torchrun processes (each takes an equal share)"
            )
        return global_batch // self.world_size

    def mean(self, value: float) -> float:
        """The mean of `value` over the ranks (each rank's share of the data is equal)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        tdist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def from_main(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run `fn(*args, **kwargs)` on rank 0 only and hand its result to every rank.

        What rank 0 reads (the resume state, the best checkpoint: files that may be
        on its machine only) or decides (validation metrics, hence "improved?") is
        then the same everywhere. Tensors in the result must be on the CPU.
        """
        if not self.enabled:
            return fn(*args, **kwargs)
        box = [fn(*args, **kwargs) if self.is_main else None]
        tdist.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


_context = Context()


def context() -> Context:
    """This process's place in the job: a single process unless `init` joined a torchrun job."""
    return _context


def launched() -> bool:
    """Whether torchrun started this process (it sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def init(device: str = "auto") -> Context:
    """Join the torchrun job this process was started in, if any (idempotent)."""
    global _context
    if _context.enabled or not launched():
        return _context
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = pick_device(device).type == "cuda"
    if cuda:  # NCCL and torch.cuda.current_device() must agree on this rank's GPU
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"
    tdist.init_process_group(backend)
    _context = Context(True, tdist.get_rank(), tdist.get_world_size(), local_rank, backend)
    return _context


def shutdown() -> None:
    """Leave the process group (torch warns at exit otherwise); back to a single process."""
    global _context
    if _context.enabled:
        tdist.destroy_process_group()
    _context = Context()
