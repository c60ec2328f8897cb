"""JEPA, VCR-JEPA and MoE-JEPA (Neuro-JEPA): predict the EMA teacher's features of masked tokens.

- ``jepa``: the student encodes the visible tokens, the predictor fills in the masked positions,
  and the loss is ``mean |z - h|^p / p`` against the teacher's layer-normed features of the full
  volume (stop-gradient). The teacher is an EMA of the student (momentum 0.998 -> 1.0), updated
  once per optimiser step.
- ``vcr_jepa``: adds the variance-covariance regulariser on
  ``cat([context_out, target_h.detach()], dim=tokens)``, where ``target_h`` is the teacher's
  layer-normed output at the predicted (masked) positions, so K + M = N tokens (official
  ``app/vjepa/train.py``): ``jepa + c * (alpha * var + beta * cov)``.
- ``moe_jepa``: the encoder's MLPs are sparse mixtures of experts every ``moe_every`` blocks and
  each volume's contrast (T1w / T2w / FLAIR) selects a learned modality embedding; the router's
  load-balancing loss is added with weight ``moe_aux_weight``.
"""

from __future__ import annotations

import torch

from neurossl.config import Config
from neurossl.losses import jepa_loss, layer_norm_targets, variance_covariance_loss
from neurossl.masks import gather_tokens
from neurossl.models import build_predictor
from neurossl.models.vit import modality_index
from neurossl.objectives.base import Objective, StepInfo
from neurossl.objectives.common import (
    ema_momentum,
    ema_update,
    encoder_from_config,
    global_masks,
    make_teacher,
    mask_generator_from_config,
)


class JEPA(Objective):
    """V-JEPA-style latent prediction; ``vcr`` and ``moe`` switch on the two variants."""

    name = "jepa"
    # paper section 5.2: "For JEPA downstream evaluations, we use the student encoder"
    # (official eval configs: checkpoint_key: encoder)
    export_key = "encoder"

    def __init__(self, cfg: Config, input_shape: tuple[int, int, int, int], vcr: bool = False,
                 moe: bool = False):
        super().__init__()
        o = cfg.objective
        self.modalities = tuple(o.embedding_modalities) if moe else ()
        self.student = encoder_from_config(cfg, input_shape, num_modalities=len(self.modalities), moe=moe)
        self.teacher = make_teacher(self.student)
        self.predictor = build_predictor(self.student, predictor_embed_dim=cfg.model.predictor_dim,
                                         depth=cfg.model.predictor_depth,
                                         num_heads=cfg.model.predictor_heads)
        self.masks = mask_generator_from_config(cfg.masking, self.student.grid_size)
        self.loss_p, self.ema, self.ema_ramp = o.loss_p, cfg.optim.ema, cfg.optim.ema_ramp
        self.vcr = (o.vcr_alpha, o.vcr_beta, o.vcr_coeff) if vcr else None
        self.moe_weight = o.moe_aux_weight if moe else 0.0
        self.name = "moe_jepa" if moe else "vcr_jepa" if vcr else "jepa"

    def modality_ids(self, batch: dict) -> torch.Tensor | None:
        """Per-volume row of the modality embedding (MoE-JEPA), ``(B,)`` long, or None."""
        if not self.modalities:
            return None
        return modality_index(batch.get("modality"), self.modalities, batch["image"].device)

    def forward(self, batch: dict[str, torch.Tensor], info: StepInfo) -> dict[str, torch.Tensor]:
        """``{"loss", "jepa"[, "var", "cov"][, "moe_aux"]}`` for ``batch["image"]`` ``(B, C, D, H, W)``."""
        images = batch["image"]
        modality = self.modality_ids(batch)
        keep, masked = global_masks(self.masks, images.shape[0], info, images.device)
        with torch.no_grad():
            target_h = gather_tokens(layer_norm_targets(self.teacher(images, modality=modality)),
                                     masked)  # (B, M, D)
        context = self.student(images, masks=keep, modality=modality)  # (B, K, D)
        pred = self.predictor(context, keep, masked)  # (B, M, D)
        loss_jepa = jepa_loss(pred, target_h, p=self.loss_p)
        losses = {"jepa": loss_jepa}
        total = loss_jepa
        if self.vcr is not None:
            alpha, beta, coeff = self.vcr
            var, cov = variance_covariance_loss(self.vcr_input(context, target_h))
            total = total + coeff * (alpha * var + beta * cov)
            losses.update(var=var, cov=cov)
        if self.moe_weight:
            aux = self.student.moe_aux_loss()
            total = total + self.moe_weight * aux
            losses["moe_aux"] = aux
        losses["loss"] = total
        return losses

    @staticmethod
    def vcr_input(context: torch.Tensor, target_h: torch.Tensor) -> torch.Tensor:
        """The tokens VCR regularises: ``(B, K, D)`` context and ``(B, M, D)`` masked teacher
        targets -> ``(B, K + M, D)`` = ``(B, N, D)`` (official ``torch.cat([zi, hi.detach()], dim=1)``)."""
        return torch.cat([context, target_h.detach()], dim=1).float()

    def after_step(self, info: StepInfo) -> None:
        """EMA update of the teacher, once per optimiser step."""
        momentum = ema_momentum(info.step, info.total_steps, self.ema, self.ema_ramp)
        ema_update(self.teacher, self.student, momentum)

    def monitor_kwargs(self, batch: dict) -> dict:
        """The contrasts of the monitored volumes (MoE-JEPA's modality embedding)."""
        return {"modality": self.modality_ids(batch)}
