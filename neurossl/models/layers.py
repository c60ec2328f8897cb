"""Transformer building blocks shared by the encoder, the JEPA predictor and the MAE decoder.

Parameter names follow the V-JEPA / timm convention (``patch_embed.proj``, ``norm1``, ``attn.qkv``,
``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``) so that V-JEPA-family checkpoints load without
renaming. Tokens are ordered depth-major, ``(d, h, w)``, as ``Conv3d(...).flatten(2)`` gives them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from neurossl.models.moe import ExpertLinear, MoEConfig, MoEMLP


def as_triple(size: int | tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    """``160 -> (160, 160, 160)``; a ``(D, H, W)`` sequence is returned as a tuple of ints."""
    if isinstance(size, int):
        return (size, size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 3:
        raise ValueError(f"img_size must be an int or (D, H, W), got {size}")
    return size


def grid_shape(img_size: int | tuple[int, int, int], patch_size: int,
               tubelet_size: int) -> tuple[int, int, int]:
    """Token grid ``(D / tubelet, H / patch, W / patch)``; a clear error if a size does not divide."""
    depth, height, width = as_triple(img_size)
    for name, extent, step in (("depth", depth, tubelet_size), ("height", height, patch_size),
                               ("width", width, patch_size)):
        if step < 1 or extent < step or extent % step:
            raise ValueError(
                f"volume {name} {extent} is not a positive multiple of its token extent {step} "
                f"(img_size={(depth, height, width)}, patch_size={patch_size}, "
                f"tubelet_size={tubelet_size}); crop or resize the volume to a multiple")
    return (depth // tubelet_size, height // patch_size, width // patch_size)


def patchify(x: torch.Tensor, tubelet_size: int, patch_size: int) -> torch.Tensor:
    """Volumes (B, C, D, H, W) -> tubelets (B, N, t * p * p * C).

    Tokens come in the patch embedding's depth-major order; inside a tubelet the voxels are
    ordered (t, p, p, C), channels last, as in MAE.
    """
    batch, chans = x.shape[:2]
    gd, gh, gw = grid_shape(tuple(x.shape[2:]), patch_size, tubelet_size)
    x = x.reshape(batch, chans, gd, tubelet_size, gh, patch_size, gw, patch_size)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, gd, gh, gw, t, p, p, C)
    return x.reshape(batch, gd * gh * gw, tubelet_size * patch_size * patch_size * chans)


def unpatchify(x: torch.Tensor, grid_size: tuple[int, int, int], tubelet_size: int,
               patch_size: int) -> torch.Tensor:
    """Exact inverse of :func:`patchify`: (B, N, t * p * p * C) -> (B, C, D, H, W)."""
    batch, tokens, values = x.shape
    gd, gh, gw = grid_size
    chans, rest = divmod(values, tubelet_size * patch_size * patch_size)
    if tokens != gd * gh * gw or rest:
        raise ValueError(f"cannot unpatchify {tuple(x.shape)} into grid {grid_size} of "
                         f"{tubelet_size} x {patch_size} x {patch_size} tubelets")
    x = x.reshape(batch, gd, gh, gw, tubelet_size, patch_size, patch_size, chans)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, gd, t, gh, p, gw, p)
    return x.reshape(batch, chans, gd * tubelet_size, gh * patch_size, gw * patch_size)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """``[sin(p w_i), cos(p w_i)]`` with ``w_i = 10000^(-2i / dim)``: positions (M,) -> (M, dim)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.double().reshape(-1, 1) * omega
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_pos_embed_3d(dim: int, grid: tuple[int, int, int], uniform_power: bool = False) -> torch.Tensor:
    """Fixed 3-D sin-cos position embedding of V-JEPA, ``(gd * gh * gw, dim)`` float32.

    Channels are concatenated ``[depth, height, width]``; row ``k`` belongs to token ``k`` of the
    depth-major order. By default half of them encode depth and a quarter each height and width;
    ``uniform_power`` (the official release's setting) gives each axis ``2 * ceil(dim / 6)``
    channels and keeps the first ``dim``.
    """
    d, h, w = torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij")
    if uniform_power:
        part = 2 * math.ceil(dim / 6)
        embed = torch.cat([sincos_1d(part, d), sincos_1d(part, h), sincos_1d(part, w)], dim=1)
        return embed[:, :dim].float()
    if dim % 8:
        raise ValueError(f"a 3-D sin-cos embedding needs a width divisible by 8, got {dim}")
    embed = torch.cat([sincos_1d(dim // 2, d), sincos_1d(dim // 4, h), sincos_1d(dim // 4, w)], dim=1)
    return embed.float()


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: (B, C, D, H, W) -> (B, N, embed_dim), tokens depth-major.

    The weights are V-JEPA's ``Conv3d`` (kernel = stride = tubelet), so checkpoints load as they
    are; the forward pass applies them as one matmul over the flattened tubelets, which gives the
    same result and is far cheaper than the convolution's backward on CPUs (7x on a 64^3 batch).
    """

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=self.kernel, stride=self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, p, _ = self.kernel
        weight = self.proj.weight  # (D, C, t, p, p)
        if weight.shape[1] > 1:  # in patchify's (t, p, p, C) voxel order
            # (with one channel both orders agree, and skipping the permute keeps the gradient
            # in the weight's own strides, the layout DDP's gradient buckets expect)
            weight = weight.permute(0, 2, 3, 4, 1)
        return F.linear(patchify(x, t, p), weight.flatten(1), self.proj.bias)


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class MLP(nn.Module):
    """``fc1 -> GELU -> fc2``: (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per sample with probability ``p`` in training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    ``moe`` replaces the dense MLP by a sparse mixture of experts (:class:`MoEMLP`). With
    ``checkpointed`` set, a forward that autograd records keeps only the block's input and
    recomputes the rest in backward (``torch.utils.checkpoint``, RNG state preserved, so drop
    path draws the same): a block's activation memory for ~1/3 more compute.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 norm_eps: float = 1e-6, drop_path: float = 0.0, moe: MoEConfig | None = None):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        if moe is None:
            self.mlp = MLP(dim, hidden)
        else:
            self.mlp = MoEMLP(dim, hidden, moe.num_experts, moe.top_k, moe.capacity_factor)
        self.drop_path = DropPath(drop_path)
        self.checkpointed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointed and torch.is_grad_enabled():
            return checkpoint(self.residuals, x, use_reentrant=False)
        return self.residuals(x)

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        """The block's computation: (B, N, D) -> (B, N, D)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def build_blocks(depth: int, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 norm_eps: float, drop_path: float = 0.0, moe: MoEConfig | None = None) -> nn.ModuleList:
    """``depth`` blocks; stochastic depth rising linearly to ``drop_path``; MoE where ``moe`` says."""
    rates = torch.linspace(0, drop_path, depth).tolist()
    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio, qkv_bias, norm_eps, rates[i],
              moe if moe is not None and moe.applies_to(i) else None)
        for i in range(depth))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """V-JEPA / MAE initialisation: truncated normal for linear and conv weights, zero biases,
    unit LayerNorms; each residual output projection scaled by ``1 / sqrt(2 * layer)``."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d, ExpertLinear)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    blocks = [b for b in module.modules() if isinstance(b, Block)]
    for layer, block in enumerate(blocks):
        with torch.no_grad():
            block.attn.proj.weight.div_(math.sqrt(2.0 * (layer + 1)))
            fc2 = block.mlp.experts.fc2 if isinstance(block.mlp, MoEMLP) else block.mlp.fc2
            fc2.weight.div_(math.sqrt(2.0 * (layer + 1)))
