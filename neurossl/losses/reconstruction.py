"""Regression losses of MAE (pixels of masked patches) and JEPA (teacher features).

Both follow the official ``|x - y|^p / p`` form: ``p = 2`` is half the MSE, ``p = 1`` the L1
loss the official configs use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neurossl.masks import gather_tokens


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MAE's per-patch target normalisation: ``(x - mean) / sqrt(var + eps)`` over the last axis.

    ``var`` is unbiased, as in MAE (``Tensor.var`` default).
    """
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def abs_pow(diff: torch.Tensor, p: float) -> torch.Tensor:
    """``|diff| ** p`` element-wise; p = 1 (the official L1) and p = 2 skip the general ``pow``,
    which copies the tensor and costs a further pass in backward."""
    if p == 1:
        return diff.abs()
    if p == 2:
        return diff.square()
    return diff.abs().pow(p)


def masked_pixel_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    p: float = 2.0,
    norm_pix: bool = False,
) -> torch.Tensor:
    """``mean(|pred - target|^p) / p`` over the voxels of the masked patches.

    Args:
        pred: predicted patches, ``(B, N, P)`` for every token, or ``(B, M, P)`` for the masked
            tokens only (in the order of ``mask``'s indices).
        target: ``(B, N, P)`` patches of the input volume.
        mask: which patches count. ``(B, N)`` bool (True = masked; rows may differ in count, the
            mean is over all masked patches of the batch), ``(B, M)`` long indices, or None (every
            patch of ``pred``, which must then match ``target``).
        p: exponent (paper: 2, i.e. MSE / 2; official configs: 1).
        norm_pix: normalise each target patch by its own mean and variance first (MAE).

    Returns:
        Scalar tensor.
    """
    if norm_pix:
        target = normalize_patches(target)
    if mask is None:
        return abs_pow(pred - target, p).mean() / p
    if mask.dtype == torch.bool:
        if pred.shape != target.shape or mask.shape != pred.shape[:2]:
            raise ValueError("a boolean mask needs pred, target (B, N, P) and mask (B, N)")
        per_patch = abs_pow(pred - target, p).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1) / p
    target = gather_tokens(target, mask)
    if pred.shape[1] != mask.shape[1]:
        pred = gather_tokens(pred, mask)
    return abs_pow(pred - target, p).mean() / p


def layer_norm_targets(h: torch.Tensor) -> torch.Tensor:
    """V-JEPA's target normalisation: layer norm over the feature axis, no affine parameters."""
    return F.layer_norm(h, (h.shape[-1],))


def jepa_loss(pred: torch.Tensor, target: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """``mean(|pred - target|^p) / p`` between predicted and teacher features.

    Args:
        pred: ``(B, M, D)`` predictor outputs at the target positions.
        target: ``(B, M, D)`` teacher features there, already layer-normed by the caller
            (:func:`layer_norm_targets`); detached here, the teacher never gets a gradient.
        p: exponent (official 1: L1).
    """
    return abs_pow(pred - target.detach(), p).mean() / p
