"""Projection heads of the joint-embedding objectives: SimCLR's projector and DINO's prototype head.

Neither uses BatchNorm. SimCLR's projector traditionally has one, but BatchNorm makes the loss of
a volume depend on the rest of its (per-rank) batch, needs SyncBatchNorm under DDP to match a
single process, and behaves differently in ``eval()``; LayerNorm keeps every row independent, so
the two views can share one encoder pass and DDP equals single-process training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _init_linear(module: nn.Module) -> None:
    """DINO's initialisation: truncated normal (std 0.02) weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ProjectionHead(nn.Module):
    """SimCLR projector ``(..., in_dim) -> (..., out_dim)``: Linear -> LayerNorm -> ReLU -> Linear."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, out_dim))
        _init_linear(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DINOHead(nn.Module):
    """DINO head ``(..., in_dim) -> (..., out_dim)`` prototype logits.

    A 3-layer GELU MLP to an L2-normalised bottleneck, then a weight-normalised linear layer
    without bias whose weight norm is fixed to 1 (DINO's ``norm_last_layer=True``, which its
    authors found stabilises training): each logit is the cosine between the bottleneck and one
    of ``out_dim`` prototypes, so logits lie in ``[-1, 1]`` before the temperature.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, bottleneck_dim))
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        _init_linear(self)
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)
        return z @ F.normalize(self.prototypes, dim=-1).T
