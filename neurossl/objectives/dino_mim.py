"""FM-CT: DINO self-distillation plus iBOT-style masked image modelling (head CT or MRI).

Per step, for ``batch["image"]`` ``(B, C, D, H, W)`` (C = 3 HU windows for CT, 1 for MRI):

- views: two global views (random resized crops at the encoder's input size) and
  ``dino_local_crops`` local views (:mod:`neurossl.objectives.views`);
- teacher (EMA of the student, no gradient): both global views, full; its mean-pooled tokens go
  through the teacher DINO head (``(B, K)`` prototype logits per view), its patch tokens of global
  view 1 through the teacher patch head (``(B, N, K)``);
- student: global view 1 with the mask generator's tokens dropped (visible tokens only), global
  view 2 full, each local view. As in iBOT, the masked global view serves both losses: its pooled
  visible tokens are a DINO student view, and the predictor (``build_predictor``, as in JEPA)
  fills in features at the masked positions for the patch head;
- ``dino``: DINO's multi-crop cross-entropy on pooled tokens (mean pooling stands in for a CLS
  token), teacher logits centred (``Centering``) and sharpened (teacher temp < student temp),
  or, with ``objective.dino_centering: sinkhorn``, balanced by Sinkhorn-Knopp as in DINOv2;
- ``mim``: iBOT's per-token cross-entropy between the student's predicted and the teacher's
  patch distributions, at the masked tokens only;
- ``koleo`` (only with ``objective.koleo_weight > 0``, DINOv2's regulariser): KoLeo on the
  student's pooled global views over the global batch, one term per view;
``loss = dino + mim_weight * mim [+ koleo_weight * koleo]``.

Local views are crops in TOKEN space: a random box of tokens of an independently augmented
full-size view, passed to the encoder's ``masks=`` argument. The encoder takes only its fixed
input size, so the alternative (a small crop upsampled to that size) would spend a full-size pass
per local view on blurred voxels the encoder never sees downstream; a box of tokens costs only its
tokens (attention is quadratic in them) and keeps the true resolution and position embeddings.

The teacher and its heads are always in ``eval()`` (no stochastic depth), and move only through
:meth:`DINOMIM.after_step`'s EMA. :meth:`DINOMIM.encoder` exports the teacher, as DINO does.
"""

from __future__ import annotations

import math

import torch

from neurossl.config import Config, ViewConfig
from neurossl.losses import Centering, dino_loss, koleo_loss, masked_token_distillation_loss
from neurossl.masks import gather_tokens
from neurossl.models import build_predictor
from neurossl.objectives.base import Objective, StepInfo
from neurossl.objectives.common import (ema_momentum, ema_update, encoder_from_config, gather_global,
                                        global_masks, make_teacher, mask_generator_from_config)
from neurossl.objectives.heads import DINOHead
from neurossl.objectives.views import check_views, random_token_box, random_view


class DINOMIM(Objective):
    """DINO + masked image modelling: ``{"loss", "dino", "mim"}`` (and ``"koleo"`` when weighted).

    Args:
        cfg: reads ``objective.dino_*``, ``objective.mim_weight``, ``model.predictor_*``,
            ``masking`` and ``optim.ema``.
        input_shape: ``(C, D, H, W)`` of the volumes.
        views: augmentation of the global views and of the local views' source volumes
            (default ``objective.dino_views``).
        local_scale: range of the fraction of each token-grid axis a local view keeps.
        center_momentum: EMA momentum of both centres (DINO 0.9).
    """

    name = "dino_mim"
    export_key = "target_encoder"  # DINO and FM-CT evaluate the EMA teacher

    def __init__(self, cfg: Config, input_shape: tuple[int, int, int, int],
                 views: ViewConfig | None = None, local_scale: tuple[float, float] = (0.4, 0.6),
                 center_momentum: float = 0.9):
        super().__init__()
        o, m = cfg.objective, cfg.model
        self.student = encoder_from_config(cfg, input_shape)
        self.teacher = make_teacher(self.student)
        width, k = self.student.embed_dim, o.dino_out_dim
        self.head = DINOHead(width, k, o.dino_head_hidden, o.dino_head_bottleneck)
        self.patch_head = DINOHead(width, k, o.dino_head_hidden, o.dino_head_bottleneck)
        self.teacher_head = make_teacher(self.head)
        self.teacher_patch_head = make_teacher(self.patch_head)
        self.predictor = build_predictor(self.student, predictor_embed_dim=m.predictor_dim,
                                         depth=m.predictor_depth, num_heads=m.predictor_heads)
        if o.dino_centering not in ("center", "sinkhorn"):
            raise ValueError(f"objective.dino_centering must be 'center' or 'sinkhorn', got '{o.dino_centering}'")
        self.sinkhorn = o.dino_centering == "sinkhorn"
        self.center = Centering(k, center_momentum)
        self.patch_center = Centering(k, center_momentum)
        self.masks = mask_generator_from_config(cfg.masking, self.student.grid_size)
        self.temps = (o.dino_student_temp, o.dino_teacher_temp)
        self.teacher_warmup = (o.dino_warmup_teacher_temp, o.dino_warmup_teacher_epochs)
        self.local_crops, self.mim_weight, self.ema = o.dino_local_crops, o.mim_weight, cfg.optim.ema
        self.ema_ramp = cfg.optim.ema_ramp
        self.koleo_weight = o.koleo_weight
        self.views = check_views(views or o.dino_views, "objective.dino_views")
        self.local_scale = local_scale
        self.train()

    def teachers(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        """``(teacher, student)`` pairs the EMA ties together."""
        return [(self.teacher, self.student), (self.teacher_head, self.head),
                (self.teacher_patch_head, self.patch_head)]

    def train(self, mode: bool = True) -> DINOMIM:
        """Switch the student side; the teachers stay in ``eval()`` (deterministic targets)."""
        super().train(mode)
        for teacher, _ in self.teachers():
            teacher.eval()
        return self

    def temperatures(self, epoch: float) -> tuple[float, float]:
        """``(student, teacher)`` temperatures in ``epoch``: the teacher's rises linearly from
        ``dino_warmup_teacher_temp`` over ``dino_warmup_teacher_epochs`` whole epochs, as DINO's
        ``np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)``."""
        student, teacher = self.temps
        start, epochs = self.teacher_warmup
        e = math.floor(epoch)
        if e >= epochs:
            return student, teacher
        return student, start + (teacher - start) * (e / (epochs - 1) if epochs > 1 else 1.0)

    def mim_loss(self, student_logits: torch.Tensor, teacher_patch_logits: torch.Tensor,
                 masked: torch.Tensor, temps: tuple[float, float]) -> torch.Tensor:
        """iBOT loss at the masked tokens.

        Args:
            student_logits: ``(B, M, K)`` predicted logits at the tokens ``masked``.
            teacher_patch_logits: ``(B, N, K)`` teacher logits of every token.
            masked: ``(B, M)`` long indices of the masked tokens.
        """
        target = gather_tokens(teacher_patch_logits, masked)  # (B, M, K)
        every = torch.ones(masked.shape, dtype=torch.bool, device=masked.device)
        center = None if self.sinkhorn else self.patch_center.center
        return masked_token_distillation_loss(student_logits, target, every, center, *temps)

    def forward(self, batch: dict[str, torch.Tensor], info: StepInfo) -> dict[str, torch.Tensor]:
        """``{"loss", "dino", "mim"[, "koleo"]}`` for ``batch["image"]`` ``(B, C, D, H, W)``."""
        images = batch["image"]
        b, size, grid = images.shape[0], self.student.img_size, self.student.grid_size
        # Draw order is fixed (views, mask, local boxes) so a step's randomness is reproducible.
        global_views = torch.cat([random_view(images, self.views, info, size) for _ in range(2)])
        keep, masked = global_masks(self.masks, b, info, images.device)
        with torch.no_grad():
            t_tokens = self.teacher(global_views)  # (2B, N, D)
            t_logits = list(self.teacher_head(t_tokens.mean(dim=1)).chunk(2))  # 2 x (B, K)
            t_patch = self.teacher_patch_head(t_tokens[:b])  # (B, N, K), global view 1

        visible = self.student(global_views[:b], masks=keep)  # (B, K_vis, D)
        pooled = [visible.mean(dim=1), self.student(global_views[b:]).mean(dim=1)]
        for _ in range(self.local_crops):
            source = random_view(images, self.views, info, size)
            box = random_token_box(grid, self.local_scale, b, info).to(images.device)
            pooled.append(self.student(source, masks=box).mean(dim=1))
        s_logits = list(self.head(torch.stack(pooled)).unbind(0))  # (2 + L) x (B, K)
        temps = self.temperatures(info.epoch)
        loss_dino = dino_loss(s_logits, t_logits, None if self.sinkhorn else self.center.center, *temps)

        predicted = self.predictor(visible, keep, masked)  # (B, M, D)
        loss_mim = self.mim_loss(self.patch_head(predicted), t_patch, masked, temps)

        if not self.sinkhorn:
            self.center.update(t_logits)
            self.patch_center.update(t_patch)
        out = {"loss": loss_dino + self.mim_weight * loss_mim, "dino": loss_dino, "mim": loss_mim}
        if self.koleo_weight > 0:
            out["koleo"] = sum(koleo_loss(gather_global(view)) for view in pooled[:2])
            out["loss"] = out["loss"] + self.koleo_weight * out["koleo"]
        return out

    def after_step(self, info: StepInfo) -> None:
        """EMA of the teacher encoder and both teacher heads, once per optimiser step."""
        momentum = ema_momentum(info.step, info.total_steps, self.ema, self.ema_ramp)
        for teacher, student in self.teachers():
            ema_update(teacher, student, momentum)

