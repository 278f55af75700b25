"""One process or many: the environment torchrun sets up, and the few collective calls `analyze` needs.

Under ``torchrun --nproc-per-node N`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``), :func:`setup` joins the process group — NCCL
when the rank runs on a GPU, gloo on the CPU — and gives each rank its own GPU (``cuda:LOCAL_RANK``).
Several machines work the same way: torchrun's rendezvous (``--nnodes``, ``--rdzv-endpoint``) sets
the same variables. Without them everything is a single process and every call here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import InputError

__all__ = ["Ranks", "setup", "barrier", "gather", "teardown"]


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    backend: str | None = None  # None: a single process

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher with the same variables)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: str | None) -> tuple[Ranks, str | None]:
    """Join the process group if launched by torchrun; → (ranks, the device this rank should use).

    ``device``: "auto"/None, "cpu" or "cuda". Under torchrun, "auto" and "cuda" mean ``cuda:LOCAL_RANK``.
    """
    if not launched():
        return Ranks(), device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    want_cuda = (device in (None, "auto") and torch.cuda.is_available()) or str(device).startswith("cuda")
    if want_cuda:
        if not torch.cuda.is_available():
            raise InputError("--device cuda asked for, but CUDA is not available here: use --device cpu.")
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    if world > 1 and not dist.is_initialized():
        kwargs = {"device_id": torch.device(device)} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=timedelta(minutes=60), **kwargs)
    ranks = Ranks(rank, world, local_rank, local_world, backend if world > 1 else None)
    return ranks, device


def barrier(ranks: Ranks) -> None:
    if ranks.enabled:
        dist.barrier()


def gather(ranks: Ranks, obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not ranks.enabled:
        return [obj]
    out: list[object] = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def teardown(ranks: Ranks) -> None:
    if ranks.enabled and dist.is_initialized():
        dist.destroy_process_group()
