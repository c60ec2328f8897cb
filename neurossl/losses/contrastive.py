"""SimCLR's NT-Xent loss (3D-Neuro-SimCLR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy over the ``2B`` embeddings of two views.

    Each of the ``2B`` samples is an anchor whose positive is the other view of the same volume
    and whose negatives are the other ``2B - 2`` samples; similarities are cosine similarities
    divided by ``temperature``, the anchor itself is excluded from the softmax, and the loss is
    the mean of ``-log softmax`` at the positive over all ``2B`` anchors.

    Args:
        z1: ``(B, D)`` projections of view 1.
        z2: ``(B, D)`` projections of view 2 (row i = the same volume as row i of ``z1``).
        temperature: softmax temperature.

    Returns:
        Scalar tensor.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"nt_xent expects two (B, D) tensors of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}"
        )
    b = z1.shape[0]
    if b < 2:
        raise ValueError("nt_xent needs B >= 2 volumes per batch: with B = 1 there are no negatives")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    self_pairs = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    positives = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(logits, positives)
