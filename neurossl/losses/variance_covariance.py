"""VCR-JEPA's variance-covariance regulariser (the official formula, VICReg-style).

The official code applies it to ``cat([context_encoder_out, target_h.detach()], dim=1)``, a
``(B, N, D)`` tensor of tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def variance_covariance_loss(x: torch.Tensor, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Variance hinge and covariance penalty of token features.

    - variance: ``mean(relu(1 - sqrt(var_b(x) + eps)))`` with ``var_b`` the unbiased variance
      over the batch axis, averaged over token positions and channels;
    - covariance: the ``B * N`` tokens as samples, centred, ``C = x^T x / (B N - 1)`` (D x D),
      ``sum(offdiag(C)^2) / D``.

    Args:
        x: ``(B, N, D)`` features, ``B >= 2``. Computed in float32 at least.

    Returns:
        ``(var, cov)`` scalar tensors.
    """
    if x.ndim != 3:
        raise ValueError(f"variance_covariance_loss expects (B, N, D), got {tuple(x.shape)}")
    b, n, d = x.shape
    if b < 2:
        raise ValueError("variance_covariance_loss needs B >= 2: the variance is taken over the batch")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    std = torch.sqrt(x.var(dim=0) + eps)
    var = F.relu(1.0 - std).mean()
    samples = x.reshape(b * n, d)
    samples = samples - samples.mean(dim=0, keepdim=True)
    cov_matrix = samples.T @ samples / (b * n - 1)
    off_diagonal = cov_matrix - torch.diag(torch.diagonal(cov_matrix))
    cov = off_diagonal.pow(2).sum() / d
    return var, cov


def vcr_total(
    jepa: torch.Tensor,
    var: torch.Tensor,
    cov: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 0.1,
    c: float = 1.0,
) -> torch.Tensor:
    """VCR-JEPA objective: ``jepa + c * (alpha * var + beta * cov)`` (official alpha 1, beta 0.1)."""
    return jepa + c * (alpha * var + beta * cov)
