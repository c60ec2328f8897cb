"""A resumable, distributed-aware sampler: the order is a pure function of (seed, epoch).

Restarting mid-epoch only needs the epoch and the number of batches already consumed, so a run
killed at any step resumes with exactly the samples it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled indices for one rank, drop-last, skipping the first ``start`` samples of the epoch.

    Args:
        size: dataset length.
        batch_size: samples per rank and micro-batch (used to drop the ragged tail).
        seed: base seed; the permutation of epoch ``e`` is seeded with ``seed + e``.
        rank, world_size: this process's slot; rank ``r`` takes every ``world_size``-th sample.
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if size < batch_size * world_size:
            raise ValueError(
                f"dataset of {size} volumes is smaller than one global batch "
                f"({batch_size} x {world_size} processes)"
            )
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0

    @property
    def batches_per_epoch(self) -> int:
        """Micro-batches each rank draws per epoch."""
        return self.size // (self.batch_size * self.world_size)

    def set_position(self, epoch: int, batches_done: int) -> None:
        """Start the next iteration at ``epoch`` after ``batches_done`` micro-batches."""
        self.epoch = epoch
        self.start = batches_done * self.batch_size

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size - self.start

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        usable = self.batches_per_epoch * self.batch_size * self.world_size
        mine = order[:usable].view(-1, self.world_size)[:, self.rank]
        return iter(mine[self.start:].tolist())
