"""Self-supervised objectives: each turns a batch into a dict of named losses.

Adding an objective means adding a file and one entry in :data:`OBJECTIVES`; the trainer is shared.
"""

from __future__ import annotations

from functools import partial

from neurossl.config import Config
from neurossl.objectives.base import Objective, StepInfo
from neurossl.objectives.dino_mim import DINOMIM
from neurossl.objectives.jepa import JEPA
from neurossl.objectives.mae import MAE
from neurossl.objectives.simclr import SimCLR

OBJECTIVES = {
    "mae": MAE,
    "slmae": partial(MAE, spectral=True),
    "jepa": JEPA,
    "vcr_jepa": partial(JEPA, vcr=True),
    "simclr": SimCLR,
    "dino_mim": DINOMIM,
    "moe_jepa": partial(JEPA, moe=True),
}


def build_objective(cfg: Config, input_shape: tuple[int, int, int, int]) -> Objective:
    """The objective ``cfg.objective.name`` for volumes of shape ``(C, D, H, W)``."""
    name = cfg.objective.name
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective '{name}'; choose one of {', '.join(sorted(OBJECTIVES))}")
    objective = OBJECTIVES[name](cfg, input_shape)
    objective.set_export_key(cfg.objective.export_encoder)
    return objective


__all__ = ["OBJECTIVES", "Objective", "StepInfo", "build_objective"]
