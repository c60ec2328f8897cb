"""Process-group setup for ``torchrun`` (NCCL on GPUs, gloo on CPUs) and a plain single process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    """Where this process sits: rank, world size and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints."""
        return self.rank == 0


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but no CUDA device is visible")
        return torch.device("cuda", local_rank)
    if requested != "cpu":
        raise ValueError(f"train.device must be auto, cpu or cuda, got {requested!r}")
    return torch.device("cpu")


def init_distributed(requested_device: str = "auto", timeout_s: float = 1800) -> DistEnv:
    """Join the process group ``torchrun`` describes in the environment, or run alone.

    Under ``torchrun`` the group is joined even with one process (``--nproc_per_node=1``), so a
    single GPU runs the distributed path (NCCL, DDP) that many GPUs run; a plain ``python``
    process runs alone, without DDP.

    ``timeout_s`` bounds every wait on the other ranks (joining, each collective): a rank that
    died or hangs then stops the others with an error instead of leaving them blocked.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    # torchrun sets both, also for one process: that run then takes the same DDP path as many
    launched = "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    if (world_size > 1 or launched) and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistEnv(rank, world_size, local_rank, device)


def shutdown_distributed(finished: bool = False) -> None:
    """Leave the process group if one was joined.

    ``finished=True`` (the run ended normally) first waits at a barrier until every rank is
    done, so no rank leaves while another still writes or reduces. The barrier also lets gloo's
    worker threads release the last backward pass's work before the group is destroyed: torch
    2.13 stashes a Python object with each such work, and a group destroyed while a worker still
    holds one deadlocks on the GIL (seen in ~1 of 20 two-rank CPU runs, at exit). After an
    error the group is left at once: the other ranks stop at their next collective's timeout.
    """
    if not dist.is_initialized():
        return
    if finished:
        # NCCL: name the rank's GPU (set by init_distributed), or torch warns that it guesses
        nccl = dist.get_backend() == "nccl"
        dist.barrier(device_ids=[torch.cuda.current_device()] if nccl else None)
    dist.destroy_process_group()
