"""Process-group setup for ``torchrun`` (NCCL on GPUs, gloo on CPUs) and a plain single process."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from neurossl.runtime.device import resolve_device


@dataclass
class DistEnv:
    """Where this process sits: rank, world size and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    restart_count: int = 0  # how often torchrun restarted this group (``--max-restarts``)

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints."""
        return self.rank == 0


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
    # torchrun's elastic agent counts the restarts of its worker group (0 on the first start)
    restart_count = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    device = resolve_device(requested_device, local_rank)
    # torchrun sets both, also for one process: that run then takes the same DDP path as many
    launched = "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    if (world_size > 1 or launched) and not dist.is_initialized():
        warn_shared_store_restarts(rank)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistEnv(rank, world_size, local_rank, device, restart_count)


def broadcast_from_main(value):
    """Rank 0's ``value`` (any picklable object) on every rank; ``value`` itself when alone."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)  # NCCL: through the GPU init_distributed set
    return box[0]


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on at least one."""
    if not dist.is_initialized():
        return flag
    flags = [None] * dist.get_world_size()
    dist.all_gather_object(flags, bool(flag))
    return any(flags)


def warn_shared_store_restarts(rank: int) -> None:
    """Warn when torchrun may restart workers that would join through its shared store.

    torchrun's c10d rendezvous shares the agent's store with the workers by default, and the
    keys the workers publish there to connect (gloo addresses, the NCCL id) carry no attempt
    number: after a restart a worker can read its peer's address from the attempt that died and
    fail to connect. ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (read by torchrun) gives every
    attempt a store of its own.
    """
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    if rank == 0 and restarts > 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        warnings.warn(f"torchrun --max-restarts={restarts} with the agent's shared store: a "
                      "restarted group may fail to reconnect. Set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                      "in torchrun's environment (paper/slurm_paper.sh does)", stacklevel=2)


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
