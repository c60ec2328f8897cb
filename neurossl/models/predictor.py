"""JEPA predictor (V-JEPA style): a narrow ViT that predicts target-token features from context.

Context tokens are projected to the predictor width and given their position embeddings; one
learned mask token per target position, plus that position's embedding, is appended; the blocks
run over both; the outputs at the mask tokens are normed and projected back to the encoder width.
Parameter names match V-JEPA's ``VisionTransformerPredictor`` (``predictor_embed``,
``mask_tokens.i``, ``predictor_pos_embed``, ``predictor_blocks``, ``predictor_norm``,
``predictor_proj``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from neurossl.masks import gather_tokens
from neurossl.models.layers import (as_triple, build_blocks, grid_shape, init_weights,
                                    sincos_pos_embed_3d)


class PredictorViT(nn.Module):
    """(context tokens (B, K, embed_dim), their indices (B, K), target indices (B, M))
    -> predicted target features (B, M, embed_dim). Official config: 384 wide, 6 deep."""

    def __init__(self, img_size: int | tuple[int, int, int] = 160, patch_size: int = 8,
                 tubelet_size: int = 8, embed_dim: int = 768, predictor_embed_dim: int = 384,
                 depth: int = 6, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, norm_eps: float = 1e-6, num_mask_tokens: int = 1,
                 init_std: float = 0.02, uniform_power: bool = False):
        super().__init__()
        self.grid_size = grid_shape(as_triple(img_size), patch_size, tubelet_size)
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        # zero-initialised, as in V-JEPA; one per mask generator if several are used
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, predictor_embed_dim)) for _ in range(num_mask_tokens))
        pos_embed = sincos_pos_embed_3d(predictor_embed_dim, self.grid_size, uniform_power)
        self.predictor_pos_embed = nn.Parameter(pos_embed.unsqueeze(0), requires_grad=False)
        self.predictor_blocks = build_blocks(depth, predictor_embed_dim, num_heads, mlp_ratio,
                                             qkv_bias, norm_eps)
        self.predictor_norm = nn.LayerNorm(predictor_embed_dim, eps=norm_eps)
        self.predictor_proj = nn.Linear(predictor_embed_dim, embed_dim)
        init_weights(self, init_std)

    def forward(self, ctx_tokens: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor,
                mask_index: int = 0) -> torch.Tensor:
        """ctx_tokens (B, K, embed_dim) at token indices ctx_idx (B, K); tgt_idx (B, M)
        -> predictions (B, M, embed_dim) in the order of ``tgt_idx``."""
        batch, num_targets = tgt_idx.shape
        pos_embed = self.predictor_pos_embed.expand(batch, -1, -1)
        context = self.predictor_embed(ctx_tokens) + gather_tokens(pos_embed, ctx_idx)
        mask_token = self.mask_tokens[mask_index % len(self.mask_tokens)]
        targets = mask_token + gather_tokens(pos_embed, tgt_idx)  # (B, M, P)
        x = torch.cat([context, targets], dim=1)
        for block in self.predictor_blocks:
            x = block(x)
        return self.predictor_proj(self.predictor_norm(x[:, -num_targets:]))


def build_predictor(encoder: nn.Module, **overrides: Any) -> PredictorViT:
    """A predictor on ``encoder``'s token grid and width; ``overrides`` set the rest
    (defaults: the official 384 wide, 6 deep, 12 heads)."""
    return PredictorViT(img_size=encoder.img_size, patch_size=encoder.patch_size,
                        tubelet_size=encoder.tubelet_size, embed_dim=encoder.embed_dim,
                      **{"uniform_power": getattr(encoder, "uniform_power", False), **overrides})
