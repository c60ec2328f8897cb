"""MAE and SL-MAE: reconstruct masked tubelets; SL-MAE adds the amortised spectral loss.

SL-MAE's spectral term compares the log-magnitude high-pass spectra of the *mosaic* volume
(visible tubelets from the input, masked ones from the decoder) and of the input. It follows the
official code: ``(lambda / K) * spectral`` on every step, computed with gradient every
``spectral_every`` (K) steps and a cached constant without gradient in between;
``spectral_every=1`` is the plain version (see ``neurossl.losses.SpectralLossSchedule``).
"""

from __future__ import annotations

import torch

from neurossl.config import Config
from neurossl.losses import SpectralLossSchedule, masked_pixel_loss, spectral_loss
from neurossl.masks import indices_to_mask
from neurossl.models import build_decoder, patchify, unpatchify
from neurossl.objectives.base import Objective, StepInfo
from neurossl.objectives.common import encoder_from_config, global_masks, mask_generator_from_config


class MAE(Objective):
    """Masked autoencoder on tubelets; ``spectral=True`` makes it SL-MAE."""

    name = "mae"

    def __init__(self, cfg: Config, input_shape: tuple[int, int, int, int], spectral: bool = False):
        super().__init__()
        o = cfg.objective
        self.student = encoder_from_config(cfg, input_shape)
        self.decoder = build_decoder(self.student, decoder_embed_dim=cfg.model.decoder_dim,
                                     decoder_depth=cfg.model.decoder_depth,
                                     decoder_num_heads=cfg.model.decoder_heads)
        self.masks = mask_generator_from_config(cfg.masking, self.student.grid_size)
        self.loss_p, self.norm_pix, self.cutoff = o.loss_p, o.norm_pix, o.spectral_cutoff
        self.spectral = (
            SpectralLossSchedule(weight=o.spectral_weight, every=o.spectral_every,
                                 start_epoch=o.spectral_start_epoch,
                                 warmup_epochs=o.spectral_warmup_epochs)
            if spectral else None
        )
        if spectral:
            self.name = "slmae"

    def reconstruct(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Decoder output for every tubelet, ``(B, N, t*p*p*C)``, from the visible ones."""
        return self.decoder(self.student(images, masks=keep), keep)

    def mosaic(self, images: torch.Tensor, pred: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """``(B, C, D, H, W)``: visible tubelets from ``images``, masked ones from ``pred``."""
        patches = patchify(images, self.student.tubelet_size, self.student.patch_size)
        is_masked = indices_to_mask(masked, patches.shape[1]).unsqueeze(-1)
        mixed = torch.where(is_masked, pred.to(patches.dtype), patches)
        return unpatchify(mixed, self.student.grid_size, self.student.tubelet_size,
                          self.student.patch_size)

    def forward(self, batch: dict[str, torch.Tensor], info: StepInfo) -> dict[str, torch.Tensor]:
        """``{"loss", "pixel"[, "spectral"]}`` for ``batch["image"]`` ``(B, C, D, H, W)``."""
        images = batch["image"]
        keep, masked = global_masks(self.masks, images.shape[0], info, images.device)
        pred = self.reconstruct(images, keep)
        target = patchify(images, self.student.tubelet_size, self.student.patch_size)
        # a (B, N) boolean mask: weighting every patch costs less than gathering the masked ones
        # (and scattering their gradient back)
        is_masked = indices_to_mask(masked, target.shape[1])
        pixel = masked_pixel_loss(pred, target, is_masked, p=self.loss_p, norm_pix=self.norm_pix)
        losses = {"pixel": pixel}
        total = pixel
        if self.spectral is not None:
            term, spec = self.spectral(
                info.step, info.epoch,
                lambda: spectral_loss(self.mosaic(images, pred, masked).float(), images.float(),
                                      cutoff=self.cutoff))
            total = total + term.to(total.device)
            losses["spectral_term"] = term.detach().to(total.device)
        losses["loss"] = total
        return losses

    def get_extra_state(self) -> dict:
        return {"spectral": self.spectral.state_dict() if self.spectral is not None else None}

    def set_extra_state(self, state: dict) -> None:
        if self.spectral is not None and state.get("spectral") is not None:
            self.spectral.load_state_dict(state["spectral"])
