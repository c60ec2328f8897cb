"""Loss functions of every objective, each a plain function or a small module testable alone.

- ``spectral``: SL-MAE spectral loss, high-pass mask, amortisation schedule;
- ``reconstruction``: MAE masked pixel loss, JEPA feature loss, target normalisation;
- ``variance_covariance``: VCR-JEPA variance / covariance regulariser;
- ``contrastive``: SimCLR NT-Xent;
- ``distillation``: DINO / iBOT self-distillation losses and teacher centering;
- ``koleo``: DINOv2's KoLeo regulariser (spreads embeddings over the sphere);
- ``collapse``: effective rank, per-dimension std and the one collapse monitor of every objective.
"""

from neurossl.losses.collapse import collapse_monitor, collapse_stats, effective_rank, per_dim_std
from neurossl.losses.contrastive import nt_xent
from neurossl.losses.distillation import (Centering, dino_loss, masked_token_distillation_loss,
                                          sinkhorn_knopp)
from neurossl.losses.koleo import koleo_loss
from neurossl.losses.reconstruction import (
    jepa_loss,
    layer_norm_targets,
    masked_pixel_loss,
    normalize_patches,
)
from neurossl.losses.spectral import (
    SpectralLossSchedule,
    high_pass_mask,
    spectral_loss,
    standardize_volumes,
)
from neurossl.losses.variance_covariance import variance_covariance_loss, vcr_total

__all__ = [
    "Centering",
    "SpectralLossSchedule",
    "collapse_monitor",
    "collapse_stats",
    "dino_loss",
    "effective_rank",
    "high_pass_mask",
    "jepa_loss",
    "koleo_loss",
    "layer_norm_targets",
    "masked_pixel_loss",
    "masked_token_distillation_loss",
    "sinkhorn_knopp",
    "normalize_patches",
    "nt_xent",
    "per_dim_std",
    "spectral_loss",
    "standardize_volumes",
    "variance_covariance_loss",
    "vcr_total",
]
