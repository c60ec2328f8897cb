"""AdamW with parameter groups and the per-step learning-rate / weight-decay schedules."""

from __future__ import annotations

import torch
from torch import nn

from neurossl.config import OptimConfig
from neurossl.train.schedules import cosine, warmup_cosine

NO_DECAY_NAMES = ("pos_embed", "mask_token", "cls_token", "query_tokens", "modality_embed")


def param_groups(model: nn.Module) -> list[dict]:
    """Two groups: weights with decay; biases, norms and position / mask tokens without."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.endswith(".bias") or any(k in name for k in NO_DECAY_NAMES)
        (no_decay if skip else decay).append(param)
    return [
        {"params": decay, "apply_decay": True},
        {"params": no_decay, "apply_decay": False, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; lr and weight decay are set each step by :func:`apply_schedules`.

    The fused implementation (one kernel over all parameters, CPU and CUDA): on the CPU torch
    otherwise steps each of the ~100 tensors of a small ViT with ~10 small ops apiece (demo MAE:
    9.0 ms against 1.7 ms per step).
    """
    return torch.optim.AdamW(param_groups(model), lr=cfg.lr, betas=cfg.betas,
                             weight_decay=cfg.weight_decay, fused=True)


def apply_schedules(optimizer: torch.optim.Optimizer, cfg: OptimConfig, step: int, total: int,
                    warmup: int) -> tuple[float, float]:
    """Set this optimiser step's learning rate and weight decay; returns ``(lr, wd)``."""
    lr = warmup_cosine(step, total, warmup, cfg.start_lr, cfg.lr, cfg.final_lr)
    wd = cosine(step, total, cfg.weight_decay, cfg.final_weight_decay)
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group["apply_decay"]:
            group["weight_decay"] = wd
    return lr, wd
