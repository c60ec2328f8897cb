"""AdamW with parameter groups and the per-step learning-rate / weight-decay schedules."""

from __future__ import annotations

import torch
from torch import nn

from neurossl.config import OptimConfig
from neurossl.runtime.param_groups import param_groups
from neurossl.runtime.schedules import cosine, warmup_cosine


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; lr and weight decay are set each step by :func:`apply_schedules`.

    ``optim.predictor_lr_scale`` multiplies the rate of the parameters under ``model.predictor``.

    The fused implementation (one kernel over all parameters, CPU and CUDA): on the CPU torch
    otherwise steps each of the ~100 tensors of a small ViT with ~10 small ops apiece (demo MAE:
    9.0 ms against 1.7 ms per step).
    """
    scales = {"predictor.": cfg.predictor_lr_scale}
    return torch.optim.AdamW(param_groups(model, scales), lr=cfg.lr, betas=cfg.betas,
                             weight_decay=cfg.weight_decay, fused=True)


def apply_schedules(optimizer: torch.optim.Optimizer, cfg: OptimConfig, step: int, total: int,
                    warmup: int) -> tuple[float, float]:
    """Set this optimiser step's learning rate and weight decay; returns ``(lr, wd)``."""
    lr = warmup_cosine(step, total, warmup, cfg.start_lr, cfg.lr, cfg.final_lr)
    wd = cosine(step, total, cfg.weight_decay, cfg.final_weight_decay)
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
        if group["apply_decay"]:
            group["weight_decay"] = wd
    return lr, wd
