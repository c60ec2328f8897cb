"""The one rule for choosing the device a run computes on (training and evaluation alike)."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """The device for ``train.device``: ``auto`` is CUDA when visible, else the CPU.

    Args:
        requested: ``auto``, ``cpu`` or ``cuda``.
        local_rank: this process's GPU on its node (``torchrun``'s ``LOCAL_RANK``).

    Raises:
        RuntimeError: ``cuda`` was asked for and no GPU is visible (never a silent CPU run).
        ValueError: ``requested`` is not one of :data:`DEVICES`.
    """
    if requested not in DEVICES:
        raise ValueError(f"train.device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but no CUDA device is visible")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
