"""Pieces every objective shares: building the encoder from the config, masks, the EMA teacher."""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

from neurossl.config import Config, ConfigError, MaskConfig, validate_masking
from neurossl.masks import build_mask_generator
from neurossl.models import build_encoder
from neurossl.runtime.schedules import linear


def encoder_from_config(cfg: Config, input_shape: tuple[int, int, int, int],
                        num_modalities: int = 0, moe: bool = False) -> nn.Module:
    """The one encoder, sized for volumes of ``input_shape = (C, D, H, W)``."""
    m = cfg.model
    overrides = {k: v for k, v in (("embed_dim", m.embed_dim), ("depth", m.depth),
                                   ("num_heads", m.num_heads)) if v}
    moe_cfg = None
    if moe:
        moe_cfg = {"num_experts": m.num_experts, "top_k": m.moe_top_k,
                   "capacity_factor": m.moe_capacity, "every": m.moe_every}
    channels, *spatial = input_shape
    return build_encoder(m.name, img_size=tuple(spatial), patch_size=m.patch_size,
                         tubelet_size=m.tubelet_size, in_chans=channels, drop_path=m.drop_path,
                         moe=moe_cfg, num_modalities=num_modalities,
                         uniform_power=m.uniform_power, **overrides)


# masking.sampling of random masking -> the generator of neurossl.masks
RANDOM_SAMPLINGS = {"paper": "random", "official": "official_random"}


def random_masking(cfg: MaskConfig) -> tuple[str, dict]:
    """Single-token masking of ``ratio`` of the tokens, as the paper's text or the official code."""
    return RANDOM_SAMPLINGS[cfg.sampling], {"mask_ratio": cfg.ratio}


def multiblock_masking(cfg: MaskConfig) -> tuple[str, dict]:
    """V-JEPA's boxes; the masked share follows from their sizes (``ratio`` is refused)."""
    return "multiblock", {"spatial_scale": cfg.spatial_scale, "aspect_ratio": cfg.aspect_ratio,
                          "depth_scale": cfg.depth_scale, "num_blocks": cfg.num_blocks}


# masking.kind -> (generator name, its arguments) from the masking section
MASKINGS = {"random": random_masking, "multiblock": multiblock_masking}


def mask_generator_from_config(cfg: MaskConfig, grid: tuple[int, int, int]):
    """The generator ``masking.kind`` names, for a token ``grid`` ``(T, Hp, Wp)``; an unknown kind
    or sampling is a :class:`ConfigError` naming the key and the valid values."""
    for key, value, valid in (("kind", cfg.kind, MASKINGS), ("sampling", cfg.sampling, RANDOM_SAMPLINGS)):
        if value not in valid:
            raise ConfigError(f"'masking.{key}' must be one of {', '.join(valid)}; got {value!r}")
    validate_masking(cfg)
    kind, settings = MASKINGS[cfg.kind](cfg)
    return build_mask_generator(kind, grid, **settings)


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student`` to be updated by :func:`ema_update` only."""
    teacher = copy.deepcopy(student)
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher = m * teacher + (1 - m) * student`` for every parameter."""
    t_params = [p for p in teacher.parameters()]
    s_params = [p.detach() for p in student.parameters()]
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)


def ema_momentum(step: int, total_steps: int, schedule: tuple[float, float], ramp: float = 1.0) -> float:
    """Teacher momentum at ``step``: linear from ``schedule[0]`` to ``schedule[1]`` (0.998 -> 1.0)
    over the first ``ramp`` share of the ``total_steps``, then ``schedule[1]`` (``optim.ema_ramp``;
    1.0, the releases' schedule, ramps over the whole run)."""
    return linear(step, max(1, round(total_steps * ramp)), schedule[0], schedule[1])


def global_masks(generator, batch: int, info, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks drawn for the global batch; this rank keeps its rows (see ``StepInfo.local_rows``)."""
    keep, masked = generator(batch * info.world_size, generator=info.generator)
    return info.local_rows(keep).to(device), info.local_rows(masked).to(device)


def gather_global(z: torch.Tensor) -> torch.Tensor:
    """``(B, P)`` rows of this rank -> ``(B * W, P)`` rows of every rank, gradient flowing back.

    Rows are ordered rank by rank (NT-Xent and KoLeo only need a consistent order). A loss of
    the gathered rows is the same on every rank; the gather's backward sums the ``W`` identical
    gradients onto each rank's rows and DDP's average divides by ``W`` again, so the update equals
    single-process training on the global batch.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return z
    return torch.cat(dist_nn.all_gather(z), dim=0)
