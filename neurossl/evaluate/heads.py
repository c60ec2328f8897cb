"""Classification heads on encoder tokens: V-JEPA's attentive probe and a linear probe.

Both take the encoder's tokens ``(B, N, D)`` and return logits ``(B, K)``. The attentive probe
learns which tokens matter (a glioma occupies a few percent of them, so mean pooling dilutes
it); the linear probe is the classic check of what mean-pooled features hold linearly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neurossl.models.layers import MLP


class CrossAttention(nn.Module):
    """Queries ``(B, Q, D)`` attend over tokens ``(B, N, D)`` -> ``(B, Q, D)``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, q_len, dim = queries.shape
        heads = self.num_heads
        q = self.q(queries).reshape(b, q_len, heads, dim // heads).transpose(1, 2)
        k, v = self.kv(tokens).reshape(b, tokens.shape[1], 2, heads, dim // heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, Q, D / heads)
        return self.proj(x.transpose(1, 2).reshape(b, q_len, dim))


class AttentiveProbe(nn.Module):
    """V-JEPA's attentive classifier: learnable queries cross-attend over all tokens (one block
    of cross-attention + MLP), the queries are averaged, then a linear layer.

    ``(B, N, D)`` tokens -> ``(B, num_classes)`` logits.
    """

    def __init__(self, dim: int, num_classes: int, num_heads: int = 4, num_queries: int = 1,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, dim))
        nn.init.trunc_normal_(self.query_tokens, std=0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(tokens.shape[0], -1, -1)
        x = queries + self.attn(queries, self.norm1(tokens))
        x = x + self.mlp(self.norm2(x))
        return self.linear(x.mean(dim=1))


class LinearProbe(nn.Module):
    """Mean-pooled tokens -> linear layer: ``(B, N, D)`` -> ``(B, num_classes)``."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(tokens.mean(dim=1))


def build_head(kind: str, dim: int, num_classes: int, num_heads: int = 4,
               num_queries: int = 1) -> nn.Module:
    """``attentive`` or ``linear`` probe for tokens of width ``dim``."""
    if kind == "attentive":
        heads = num_heads if dim % num_heads == 0 else 1
        return AttentiveProbe(dim, num_classes, heads, num_queries)
    if kind == "linear":
        return LinearProbe(dim, num_classes)
    raise ValueError(f"unknown probe head '{kind}'; choose attentive or linear")
