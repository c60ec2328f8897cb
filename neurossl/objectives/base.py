"""What every objective is: a module that turns a batch into a dict of named losses.

The trainer owns the loop, the optimiser and the checkpoints; an objective owns only its networks
(student, teacher, heads) and the state that belongs to its loss (EMA teacher, spectral cache,
DINO centre), all of it inside ``state_dict`` so that resume restores it.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class StepInfo:
    """Where training stands when an objective is called.

    Attributes:
        step: optimiser steps completed so far.
        epoch: fractional epoch (``step / steps_per_epoch``).
        total_steps: optimiser steps of the whole run.
        generator: a CPU generator seeded from (seed, step, micro-batch), the same on every
            rank: random draws are made for the GLOBAL batch and each rank keeps its rows
            (:meth:`local_rows`), so masks and views are identical after a resume and equal to
            single-process training on the same global batch.
        rank, world_size: this process's slot in the global batch.
    """

    step: int
    epoch: float
    total_steps: int
    generator: torch.Generator
    rank: int = 0
    world_size: int = 1

    def local_rows(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor drawn for the global batch, ``(B * W, ...) -> (B, ...)``.

        The sampler gives rank ``r`` the global positions ``r, r + W, r + 2W, ...``.
        """
        return x[self.rank :: self.world_size]


EXPORT_KEYS = {"encoder": "student", "target_encoder": "EMA teacher"}


class Objective(nn.Module):
    """Base class: ``forward(batch, info) -> {"loss": total, <term>: value, ...}``.

    ``export_key`` names the network :meth:`encoder` returns, with the official checkpoints'
    names: ``encoder`` (the student) or ``target_encoder`` (the EMA teacher, where there is one).
    """

    name = "objective"
    export_key = "encoder"

    @abstractmethod
    def forward(self, batch: dict[str, torch.Tensor], info: StepInfo) -> dict[str, torch.Tensor]:
        """Named losses for ``batch["image"]`` of shape ``(B, C, D, H, W)``; ``"loss"`` is the total."""

    def train(self, mode: bool = True) -> "Objective":
        """Train mode for the trained networks; an EMA teacher always runs in eval mode, so its
        targets depend on neither the batch (MoE capacity drops tokens in training) nor drop path."""
        super().train(mode)
        teacher = getattr(self, "teacher", None)
        if teacher is not None:
            teacher.eval()
        return self

    def after_step(self, info: StepInfo) -> None:
        """Called after each optimiser step (EMA teachers update here)."""

    def encoder(self) -> nn.Module:
        """The encoder to export for downstream use: the one ``export_key`` names."""
        if self.export_key == "target_encoder":
            return self.teacher
        return self.student

    def set_export_key(self, key: str) -> None:
        """Choose the exported network (``auto`` keeps the objective's own default)."""
        if key == "auto":
            return
        if key not in EXPORT_KEYS:
            raise ValueError(f"objective.export_encoder must be auto, {' or '.join(EXPORT_KEYS)}; "
                             f"got {key!r}")
        if key == "target_encoder" and not hasattr(self, "teacher"):
            raise ValueError(f"objective.export_encoder=target_encoder: {self.name} has no EMA "
                             f"teacher; export 'encoder'")
        self.export_key = key

    def monitor_kwargs(self, batch: dict) -> dict:
        """Extra encoder arguments for :meth:`monitor` (MoE-JEPA: the volumes' contrasts)."""
        return {}

    @torch.no_grad()
    def monitor(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """The collapse monitor of every objective on the un-augmented ``batch["image"]``:
        :func:`neurossl.losses.collapse.collapse_monitor` of the student (and the EMA teacher
        where there is one), ``student_token_rank``, ``student_centred_token_rank``,
        ``student_pooled_rank``, ..."""
        from neurossl.losses.collapse import collapse_monitor

        networks = {"student": self.student}
        if hasattr(self, "teacher"):
            networks["teacher"] = self.teacher
        return collapse_monitor(networks, batch["image"], **self.monitor_kwargs(batch))
