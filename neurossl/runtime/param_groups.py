"""AdamW parameter groups: the one no-decay rule of pretraining and downstream fitting.

As in the official MAE and I-JEPA recipes, weight decay shrinks weight matrices only: biases,
norm scales and the learned tokens and embeddings that stand for a position, a role or a
modality (``pos_embed``, ``cls_token``, ``mask_token``, ``query_tokens``, ``modality_embed``)
are not decayed, since pulling them towards zero erases what they encode rather than
regularising a mapping.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

NO_DECAY_NAMES = ("pos_embed", "mask_token", "cls_token", "query_tokens", "modality_embed")


def decays(name: str, param: nn.Parameter) -> bool:
    """True when weight decay applies to parameter ``name`` (see the module docstring)."""
    if param.ndim <= 1 or name.endswith(".bias"):
        return False
    return not any(token in name for token in NO_DECAY_NAMES)


def param_groups(model: nn.Module, lr_scales: Mapping[str, float] | None = None) -> list[dict]:
    """AdamW groups of ``model``'s trainable parameters, one per (lr factor, decay or not).

    Args:
        model: the module whose ``named_parameters`` are grouped.
        lr_scales: parameter-name prefix -> learning-rate factor (the first matching prefix
            wins; 1.0 when none matches), e.g. ``{"encoder.": 0.1}`` when fine-tuning.

    Returns:
        Groups ``{"params", "lr_scale", "apply_decay", "weight_decay"}``; groups without decay
        start (and stay) at ``weight_decay`` 0, the schedule sets it on the others.
    """
    lr_scales = lr_scales or {}
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = next((s for prefix, s in lr_scales.items() if name.startswith(prefix)), 1.0)
        groups.setdefault((scale, decays(name, param)), []).append(param)
    return [{"params": params, "lr_scale": scale, "apply_decay": decay,
             **({} if decay else {"weight_decay": 0.0})}
            for (scale, decay), params in groups.items()]
