"""Collapse monitor statistics for joint-embedding training (logged, never optimised)."""

from __future__ import annotations

import torch


@torch.no_grad()
def effective_rank(z: torch.Tensor) -> float:
    """Effective rank (Roy & Vetterli, 2007): ``exp(H(p))`` with ``p = s / sum(s)``.

    ``s`` are the singular values of ``z`` as given (not centred, as in RankMe). A non-zero
    matrix scores in ``[1, min(N, D)]``: ``D`` for an orthogonal ``(D, D)`` matrix, 1 for a rank-1
    one; a zero matrix scores 0.

    Args:
        z: ``(N, D)`` embeddings (N samples or tokens).
    """
    if z.ndim != 2:
        raise ValueError(f"effective_rank expects (N, D), got {tuple(z.shape)}")
    s = torch.linalg.svdvals(z.double())
    if s.sum() == 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]  # 0 log 0 = 0
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def per_dim_std(z: torch.Tensor) -> torch.Tensor:
    """Unbiased std of each feature over every sample: ``(..., D)`` -> ``(D,)``.

    A dimension whose std falls towards 0 has collapsed to a constant.
    """
    return z.reshape(-1, z.shape[-1]).float().std(dim=0)
