"""MAE decoder; the voxel <-> token helpers ``patchify`` / ``unpatchify`` live in ``layers``.

The decoder is MAE's light transformer: visible tokens are projected to the decoder width,
scattered back to their positions among learned mask tokens, given the decoder's own fixed
position embedding, run through a few blocks and mapped to the voxels of each tubelet.
Parameter names follow MAE's ``models_mae.py`` (``decoder_embed``, ``mask_token``,
``decoder_pos_embed``, ``decoder_blocks``, ``decoder_norm``, ``decoder_pred``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from neurossl.models.layers import as_triple, build_blocks, grid_shape, init_weights, sincos_pos_embed_3d


class MAEDecoder(nn.Module):
    """(visible tokens (B, K, embed_dim), their indices (B, K)) -> voxel predictions for every
    token (B, N, t * p * p * C), in :func:`patchify` order. Official: 6 blocks, 384 wide."""

    def __init__(self, img_size: int | tuple[int, int, int] = 160, patch_size: int = 8,
                 tubelet_size: int = 8, in_chans: int = 1, embed_dim: int = 768,
                 decoder_embed_dim: int = 384, decoder_depth: int = 6, decoder_num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, norm_eps: float = 1e-6,
                 init_std: float = 0.02, uniform_power: bool = False):
        super().__init__()
        self.grid_size = grid_shape(as_triple(img_size), patch_size, tubelet_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        pos_embed = sincos_pos_embed_3d(decoder_embed_dim, self.grid_size, uniform_power)
        self.decoder_pos_embed = nn.Parameter(pos_embed.unsqueeze(0), requires_grad=False)
        self.decoder_blocks = build_blocks(decoder_depth, decoder_embed_dim, decoder_num_heads,
                                           mlp_ratio, qkv_bias, norm_eps)
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=norm_eps)
        self.decoder_pred = nn.Linear(decoder_embed_dim,
                                      tubelet_size * patch_size * patch_size * in_chans)
        init_weights(self, init_std)
        nn.init.normal_(self.mask_token, std=init_std)

    def forward(self, x: torch.Tensor, keep_idx: torch.Tensor,
                num_tokens: int | None = None) -> torch.Tensor:
        """x (B, K, embed_dim) encoded visible tokens at indices keep_idx (B, K)
        -> (B, N, t * p * p * C). ``num_tokens``, if given, must equal the grid's N."""
        if num_tokens is not None and num_tokens != self.num_patches:
            raise ValueError(f"decoder built for {self.num_patches} tokens, asked for {num_tokens}")
        x = self.decoder_embed(x)  # (B, K, P)
        batch, _, width = x.shape
        full = self.mask_token.to(x.dtype).expand(batch, self.num_patches, width)
        x = full.scatter(1, keep_idx.unsqueeze(-1).expand(-1, -1, width), x)  # unshuffle
        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))


def build_decoder(encoder: nn.Module, **overrides: Any) -> MAEDecoder:
    """An MAE decoder on ``encoder``'s grid, width and channels; ``overrides`` set the rest
    (defaults: the official 6 blocks, 384 wide, 12 heads)."""
    return MAEDecoder(img_size=encoder.img_size, patch_size=encoder.patch_size,
                      tubelet_size=encoder.tubelet_size, in_chans=encoder.in_chans,
                      embed_dim=encoder.embed_dim,
                      **{"uniform_power": getattr(encoder, "uniform_power", False), **overrides})
