"""A pretraining run folder read back whole: its resolved config and its objective's weights."""

from __future__ import annotations

from pathlib import Path

from neurossl.config import Config, load_config, read_yaml
from neurossl.objectives import build_objective
from neurossl.objectives.base import Objective
from neurossl.runtime.files import load_checkpoint


def run_config(run_dir: str | Path) -> Config:
    """The config a run trained with (its ``config.yaml``, resolved on its profile)."""
    config_file = Path(run_dir) / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml; is this a pretraining run folder?")
    return load_config(read_yaml(config_file).get("profile", "demo"), path=config_file)


def load_run_objective(run_dir: str | Path, input_shape: tuple[int, int, int, int]) -> tuple[Objective, Config]:
    """``(objective, cfg)`` of a run with its last checkpoint's weights, in eval mode.

    The checkpoint holds the whole objective (decoder, predictor, heads, teacher): the exported
    ``encoder.safetensors`` alone has nothing that predicts.

    Args:
        run_dir: pretraining run folder (``config.yaml``, ``checkpoints/last.pt``).
        input_shape: ``(C, D, H, W)`` of the volumes the run trained on.

    Raises:
        FileNotFoundError: no ``config.yaml`` or no ``checkpoints/last.pt`` in ``run_dir``.
    """
    cfg = run_config(run_dir)
    checkpoint = Path(run_dir) / "checkpoints" / "last.pt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{run_dir}: no checkpoints/last.pt (decoders, predictors and "
                                "teachers are only saved in training checkpoints)")
    objective = build_objective(cfg, input_shape)
    objective.load_state_dict(load_checkpoint(checkpoint)["objective"])
    return objective.eval(), cfg
