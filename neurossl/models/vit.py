"""The one 3-D Vision Transformer encoder shared by every objective (MAE, JEPA, SimCLR, DINO-MIM).

Input ``(B, C, D, H, W)``; tubelet tokens of ``tubelet_size x patch_size x patch_size`` voxels,
ordered depth-major ``(d, h, w)`` as in V-JEPA; a fixed 3-D sin-cos ``pos_embed``; pre-norm
blocks; a final ``norm``. Parameter names match V-JEPA's ``VisionTransformer`` so that its
checkpoints (the paper's official release included) load without renaming.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import torch
import torch.nn as nn

from neurossl.masks import gather_tokens
from neurossl.models.layers import (PatchEmbed3D, as_triple, build_blocks, grid_shape,
                                    init_weights, sincos_pos_embed_3d)
from neurossl.models.moe import MoEConfig, MoEMLP

ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    "vit_tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "vit_small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "vit_base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
    "vit_large": {"embed_dim": 1024, "depth": 24, "num_heads": 16},
}


def modality_index(names: Sequence[str] | None, modalities: Sequence[str],
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Each volume's row of an encoder's ``modality_embed``: ``names`` (B,) -> (B,) long.

    Args:
        names: the batch's contrasts (``batch["modality"]``), e.g. ``["T1w", "FLAIR"]``.
        modalities: the embedding's rows in order (``objective.embedding_modalities`` of the
            config the encoder was trained with).

    Raises:
        KeyError: the batch carries no contrasts.
        ValueError: a contrast has no row; the message lists the known ones.
    """
    if names is None:
        raise KeyError("this encoder has a modality embedding: the batch needs 'modality' "
                       "(the contrast of each volume)")
    unknown = sorted(set(names) - set(modalities))
    if unknown:
        raise ValueError(f"contrasts {unknown} have no modality embedding in this encoder "
                         f"(objective.embedding_modalities: {list(modalities)})")
    return torch.tensor([list(modalities).index(n) for n in names], device=device)


class VisionTransformer3D(nn.Module):
    """3-D ViT encoder: (B, C, D, H, W) -> tokens (B, N, embed_dim), or (B, K, embed_dim) when
    ``masks`` keeps K tokens.

    Args:
        img_size: ``(D, H, W)`` of the input volume, or one int for a cube.
        patch_size: in-plane token extent (H and W); tubelet_size: token extent in depth.
        moe: None (dense) or an :class:`MoEConfig` / mapping: which blocks use a sparse
            mixture-of-experts MLP; their load-balancing losses come from :meth:`moe_aux_loss`.
        num_modalities: > 0 adds a learned ``modality_embed`` row (chosen per volume by
            ``forward(..., modality=)``) to every token, for multi-contrast streams.
    """

    def __init__(self, img_size: int | tuple[int, int, int] = 160, patch_size: int = 8,
                 tubelet_size: int = 8, in_chans: int = 1, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 norm_eps: float = 1e-6, drop_path: float = 0.0, init_std: float = 0.02,
                 moe: MoEConfig | Mapping | None = None, num_modalities: int = 0,
                 uniform_power: bool = False):
        super().__init__()
        moe = MoEConfig.from_value(moe)
        self.img_size = as_triple(img_size)
        self.grid_size = grid_shape(self.img_size, patch_size, tubelet_size)
        self.patch_size, self.tubelet_size, self.in_chans = patch_size, tubelet_size, in_chans
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        self.config = {
            "img_size": list(self.img_size), "patch_size": patch_size, "tubelet_size": tubelet_size,
            "in_chans": in_chans, "embed_dim": embed_dim, "depth": depth, "num_heads": num_heads,
            "mlp_ratio": mlp_ratio, "qkv_bias": qkv_bias, "norm_eps": norm_eps,
            "drop_path": drop_path, "init_std": init_std,
            "moe": None if moe is None else asdict(moe), "num_modalities": num_modalities,
            "uniform_power": uniform_power,
        }
        self.uniform_power = uniform_power

        self.patch_embed = PatchEmbed3D(patch_size, tubelet_size, in_chans, embed_dim)
        pos_embed = sincos_pos_embed_3d(embed_dim, self.grid_size, uniform_power)
        self.pos_embed = nn.Parameter(pos_embed.unsqueeze(0), requires_grad=False)
        if num_modalities > 0:
            self.modality_embed = nn.Parameter(torch.zeros(num_modalities, embed_dim))
            nn.init.trunc_normal_(self.modality_embed, std=init_std)
        self.blocks = build_blocks(depth, embed_dim, num_heads, mlp_ratio, qkv_bias, norm_eps,
                                   drop_path, moe)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        init_weights(self, init_std)

    def prepare_tokens(self, x: torch.Tensor, modality: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a volume batch (B, C, D, H, W) into position-coded tokens (B, N, embed_dim)."""
        expected = (self.in_chans, *self.img_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"encoder expects input (B, {', '.join(map(str, expected))}) "
                             f"= (B, C, D, H, W), got {tuple(x.shape)}")
        x = self.patch_embed(x) + self.pos_embed
        if hasattr(self, "modality_embed"):
            if modality is None:
                raise ValueError("this encoder has a modality embedding: pass modality= (B,) indices")
            index = torch.as_tensor(modality, device=x.device).expand(x.shape[0])
            x = x + self.modality_embed[index].unsqueeze(1)
        elif modality is not None:
            raise ValueError("modality= given but the encoder was built with num_modalities=0")
        return x

    def forward(self, x: torch.Tensor, masks: torch.Tensor | list[torch.Tensor] | None = None,
                modality: torch.Tensor | None = None) -> torch.Tensor:
        """Encode ``x`` (B, C, D, H, W).

        ``masks``: indices of the tokens to KEEP, a LongTensor (B, K), or a list of them
        (V-JEPA style: the results are concatenated along the batch, (len(masks) * B, K, D)).
        The encoder then sees the visible tokens only. ``modality``: (B,) contrast indices or
        one int for the whole batch.
        Returns (B, N, embed_dim) without masks, (B, K, embed_dim) with.
        """
        x = self.prepare_tokens(x, modality)
        if masks is not None:
            masks = masks if isinstance(masks, (list, tuple)) else [masks]
            x = torch.cat([gather_tokens(x, m) for m in masks], dim=0)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def moe_aux_loss(self) -> torch.Tensor:
        """Mean load-balancing loss of the MoE blocks in the last forward (0 for a dense model)."""
        losses = [b.mlp.aux_loss for b in self.blocks
                  if isinstance(b.mlp, MoEMLP) and b.mlp.aux_loss is not None]
        if not losses:
            return self.pos_embed.new_zeros(())
        return torch.stack(losses).mean()


def build_encoder(name: str = "vit_base", **overrides: Any) -> VisionTransformer3D:
    """A preset (``vit_tiny`` / ``vit_small`` / ``vit_base`` / ``vit_large``) with any constructor
    argument overridden, e.g. ``build_encoder("vit_tiny", img_size=(16, 32, 32), embed_dim=48)``."""
    if name not in ENCODER_PRESETS:
        raise ValueError(f"unknown encoder '{name}'; presets: {', '.join(ENCODER_PRESETS)}")
    return VisionTransformer3D(**{**ENCODER_PRESETS[name], **overrides})
