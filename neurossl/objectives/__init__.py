"""Self-supervised objectives: each turns a batch into a dict of named losses.

Adding an objective means adding a file and one entry in :data:`OBJECTIVES`; the trainer is shared.
The registry names each objective's module, class and keyword arguments and imports the module
only when an objective is built, so reading the names (the CLI's ``--help``, config validation)
does not load torch and the models.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neurossl.config import Config
    from neurossl.objectives.base import Objective

# name -> (module in neurossl.objectives, class, keyword arguments)
OBJECTIVES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mae": ("mae", "MAE", {}),
    "slmae": ("mae", "MAE", {"spectral": True}),
    "jepa": ("jepa", "JEPA", {}),
    "vcr_jepa": ("jepa", "JEPA", {"vcr": True}),
    "simclr": ("simclr", "SimCLR", {}),
    "dino_mim": ("dino_mim", "DINOMIM", {}),
    "moe_jepa": ("jepa", "JEPA", {"moe": True}),
}


def build_objective(cfg: Config, input_shape: tuple[int, int, int, int]) -> Objective:
    """The objective ``cfg.objective.name`` for volumes of shape ``(C, D, H, W)``."""
    name = cfg.objective.name
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective '{name}'; choose one of {', '.join(sorted(OBJECTIVES))}")
    module, cls, kwargs = OBJECTIVES[name]
    objective = getattr(import_module(f"neurossl.objectives.{module}"), cls)(cfg, input_shape, **kwargs)
    objective.set_export_key(cfg.objective.export_encoder)
    return objective


def __getattr__(name: str):
    """``Objective`` and ``StepInfo`` on first use (they import torch)."""
    if name in ("Objective", "StepInfo"):
        return getattr(import_module("neurossl.objectives.base"), name)
    raise AttributeError(f"module 'neurossl.objectives' has no attribute {name!r}")


__all__ = ["OBJECTIVES", "Objective", "StepInfo", "build_objective"]
