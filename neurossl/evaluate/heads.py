"""Classification heads on encoder tokens: V-JEPA's attentive probe and a linear probe.

Both take the encoder's tokens ``(B, N, D)`` and return logits ``(B, K)``. The attentive probe
learns which tokens matter (a glioma occupies a few percent of them, so mean pooling dilutes
it); the linear probe is the classic check of what mean-pooled features hold linearly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neurossl.models.layers import MLP


class CrossAttention(nn.Module):
    """Queries ``(B, Q, D)`` attend over tokens ``(B, N, D)`` -> ``(B, Q, D)``: multi-head
    attention with query, key / value (one ``kv`` layer) and output projections, as V-JEPA's
    attentive pooler.

    The keys and values are never formed token by token. A score ``q_h . (W_k y_n + b_k)`` is
    ``(W_k^T q_h) . y_n`` plus a term constant over tokens, which the softmax removes, and the
    output ``sum_n a_n (W_v y_n + b_v)`` is ``W_v (sum_n a_n y_n) + b_v``; so the layer projects
    the few queries onto the tokens' width instead of the many tokens onto the keys' and values'
    (the same function and parameters; the work per token falls from ``O(D^2)`` to
    ``O(D * heads * queries)``, so a probe over a whole volume's tokens is cheap enough to train
    many times on a CPU).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor,
                token_scale: torch.Tensor | None = None,
                token_shift: torch.Tensor | None = None) -> torch.Tensor:
        """``tokens`` enter as ``tokens * token_scale + token_shift`` when those ``(D,)`` are given
        (a LayerNorm's affine, folded in here so the scaled tokens are never formed)."""
        b, q_len, dim = queries.shape
        heads, width = self.num_heads, dim // self.num_heads
        w_k, w_v = self.kv.weight[:dim].reshape(heads, width, dim), self.kv.weight[dim:].reshape(heads, width, dim)
        q = self.q(queries).reshape(b, q_len, heads, width)
        reach = torch.einsum("bqhe,hed->bqhd", q, w_k) / math.sqrt(width)  # (B, Q, heads, D)
        if token_scale is not None:
            reach = reach * token_scale
        weights = torch.einsum("bqhd,bnd->bqhn", reach, tokens).softmax(dim=-1)
        pooled = torch.einsum("bqhn,bnd->bqhd", weights, tokens)  # (B, Q, heads, D)
        if token_scale is not None:
            pooled = pooled * token_scale
        if token_shift is not None:
            pooled = pooled + token_shift  # the weights sum to 1
        x = torch.einsum("bqhd,hed->bqhe", pooled, w_v)
        if self.kv.bias is not None:
            x = x + self.kv.bias[dim:].reshape(heads, width)
        return self.proj(x.reshape(b, q_len, dim))


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
        # norm1's affine is applied inside the attention (see CrossAttention)
        normed = F.layer_norm(tokens, self.norm1.normalized_shape, eps=self.norm1.eps)
        x = queries + self.attn(queries, normed, self.norm1.weight, self.norm1.bias)
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
