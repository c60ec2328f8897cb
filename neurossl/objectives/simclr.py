"""3D-Neuro-SimCLR: contrastive learning between two random 3-D views of each volume.

Each volume gives two views (:mod:`neurossl.objectives.views`: random resized crop, flips, small
rotation, intensity jitter); both go through the shared encoder in one pass, the tokens are
mean-pooled, a projection head maps them to ``proj_dim``, and NT-Xent with ``temperature`` pulls
the two views of a volume together against every other view in the batch.

Under DDP the negatives come from the GLOBAL batch: projections are gathered from every rank with
the gradient-carrying ``torch.distributed.nn.functional.all_gather``. Every rank then computes the
same global loss; the gather's backward sums the ``W`` identical gradients onto each rank's rows
and DDP's average divides by ``W`` again, so the update equals single-process training on the
global batch.
"""

from __future__ import annotations

import torch

from neurossl.config import Config, ViewConfig
from neurossl.losses import nt_xent
from neurossl.objectives.base import Objective, StepInfo
from neurossl.objectives.common import encoder_from_config, gather_global
from neurossl.objectives.heads import ProjectionHead
from neurossl.objectives.views import check_views, random_view


class SimCLR(Objective):
    """SimCLR on 3-D volumes: ``{"loss", "nt_xent"}``."""

    name = "simclr"

    def __init__(self, cfg: Config, input_shape: tuple[int, int, int, int],
                 views: ViewConfig | None = None):
        super().__init__()
        o = cfg.objective
        self.student = encoder_from_config(cfg, input_shape)
        self.projector = ProjectionHead(self.student.embed_dim, o.proj_dim)
        self.temperature = o.temperature
        self.views = check_views(views or o.simclr_views, "objective.simclr_views")

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Mean-pooled encoder tokens, ``(B, C, D, H, W) -> (B, embed_dim)``."""
        return self.student(images).mean(dim=1)

    def forward(self, batch: dict[str, torch.Tensor], info: StepInfo) -> dict[str, torch.Tensor]:
        """``{"loss", "nt_xent"}`` for ``batch["image"]`` ``(B, C, D, H, W)``.

        NT-Xent needs at least two volumes in the global batch (``B * world_size >= 2``).
        """
        images = batch["image"]
        size = self.student.img_size
        views = [random_view(images, self.views, info, size) for _ in range(2)]
        z = self.projector(self.embed(torch.cat(views)))  # (2B, proj_dim), one encoder pass
        z1, z2 = z.chunk(2)
        loss = nt_xent(gather_global(z1), gather_global(z2), self.temperature)
        return {"loss": loss, "nt_xent": loss}

