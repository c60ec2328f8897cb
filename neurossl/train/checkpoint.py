"""Atomic training checkpoints and the random-number state that exact resume needs.

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed over
its final name, so a run killed at any instant leaves either the previous or the new checkpoint,
never a torn one. The newest ``keep`` step checkpoints are kept.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurossl.runtime.files import atomic_path

STEP_FILE = re.compile(r"^step_(\d{8})\.pt$")


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from: Python, NumPy, torch CPU and CUDA."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through :func:`~neurossl.runtime.files.atomic_path`."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def step_checkpoints(folder: str | Path) -> list[Path]:
    """Step checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if STEP_FILE.match(p.name))


def save_step_checkpoint(state: dict[str, Any], folder: str | Path, step: int, keep: int) -> Path:
    """Write ``step_XXXXXXXX.pt`` atomically, point ``last.pt`` at it, prune to ``keep`` files."""
    path = atomic_save(state, Path(folder) / f"step_{step:08d}.pt")
    link = Path(folder) / "last.pt"
    tmp_link = link.with_name(".last.pt.tmp")
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(path.name)
    os.replace(tmp_link, link)
    for old in step_checkpoints(folder)[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete step checkpoint in ``folder`` (``None`` when there is none)."""
    found = step_checkpoints(folder)
    return found[-1] if found else None
