"""Collapse statistics for every objective (logged and checked, never optimised).

A collapsed encoder maps everything to (nearly) one vector. The effective rank of a handful of
POOLED embeddings cannot tell that from similar inputs: eight demo brains are near-identical, so
their pooled embeddings are too, even for a healthy encoder. :func:`collapse_stats` therefore
also scores the encoder's PATCH tokens of those volumes together, ``(V * N, D)``: a healthy
encoder gives different positions and tissues different tokens (high rank) however alike the
brains are, a collapsed one does not (rank near 1). The centred token rank subtracts the mean
token first: a component every token shares (an offset a healthy encoder may carry) lowers the
uncentred rank but not the centred one, so the centred rank is the one that decides collapse.
:func:`collapse_monitor` is the one monitor the objectives log (``Objective.monitor``);
:mod:`neurossl.analysis.learning` judges the centred rank of an exported encoder on held-out
volumes.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def effective_rank(z: torch.Tensor, centre: bool = False, rtol: float = 1e-4) -> float:
    """Effective rank (Roy & Vetterli, 2007): ``exp(H(p))`` with ``p = s / sum(s)``.

    ``s`` are the singular values of ``z`` as given (not centred, as in RankMe). A non-zero
    matrix scores in ``[1, min(N, D)]``: ``D`` for an orthogonal ``(D, D)`` matrix, 1 for a rank-1
    one; a zero matrix scores 0.

    With ``centre`` the mean row is subtracted first: a vector shared by every row (a large
    constant component) then no longer counts, so a low uncentred rank with a high centred one
    means tokens that differ around a common offset, not tokens that are alike. Centred, the
    statistic no longer sees scale, so variation below ``rtol`` of ``z``'s largest singular value
    (before centring) counts as none: a collapsed encoder plus rounding noise scores 0, not the
    rank of its noise.

    Args:
        z: ``(N, D)`` embeddings (N samples or tokens).
    """
    if z.ndim != 2:
        raise ValueError(f"effective_rank expects (N, D), got {tuple(z.shape)}")
    z = z.double()
    if centre:
        scale = torch.linalg.matrix_norm(z, ord=2)
        s = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True))
        s = s[s > rtol * scale]
    else:
        s = torch.linalg.svdvals(z)
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


@torch.no_grad()
def collapse_stats(tokens: torch.Tensor) -> dict[str, float]:
    """Collapse statistics of an encoder's output tokens for ``V`` volumes.

    Args:
        tokens: ``(V, N, D)`` patch tokens.

    Returns:
        ``token_rank``: effective rank of all ``V * N`` tokens together (1 when every token is
        the same vector, whatever the inputs); ``centred_token_rank``: the same after subtracting
        the mean token (0 when every token is the same vector, 1 when tokens vary along one
        direction only); ``pooled_rank``: effective rank of the ``(V, D)``
        mean-pooled embeddings; ``pooled_std``: their mean per-dimension std over the volumes.
    """
    if tokens.ndim != 3:
        raise ValueError(f"collapse_stats expects (V, N, D) tokens, got {tuple(tokens.shape)}")
    tokens = tokens.float()
    pooled, flat = tokens.mean(dim=1), tokens.reshape(-1, tokens.shape[-1])
    return {"token_rank": effective_rank(flat),
            "centred_token_rank": effective_rank(flat, centre=True),
            "pooled_rank": effective_rank(pooled),
            "pooled_std": float(per_dim_std(pooled).mean()) if tokens.shape[0] > 1 else 0.0}


@torch.no_grad()
def collapse_monitor(networks: dict[str, nn.Module], images: torch.Tensor,
                     **kwargs) -> dict[str, float]:
    """:func:`collapse_stats` of each named encoder on ``images`` ``(B, C, D, H, W)``.

    Returns ``{"<name>_token_rank", "<name>_centred_token_rank", "<name>_pooled_rank",
    "<name>_pooled_std", ...}``;
    ``kwargs`` go to every encoder (e.g. ``modality=``).
    """
    out = {}
    for name, net in networks.items():
        stats = collapse_stats(net(images, **kwargs))
        out.update({f"{name}_{key}": value for key, value in stats.items()})
    return out
