"""Schedules as pure functions of the optimiser step.

Every schedule is evaluated at the optimiser step (not the micro-batch): with gradient
accumulation the learning rate, weight decay and EMA momentum advance once per update. The
official JEPA loop advanced them per micro-batch; to reproduce it, multiply ``total_steps`` and
``warmup_steps`` by the accumulation factor and pass the micro-batch counter instead.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, start: float, peak: float,
                  final: float) -> float:
    """Linear warm-up ``start -> peak`` over ``warmup_steps``, then cosine ``peak -> final``."""
    if step < warmup_steps:
        return start + (peak - start) * step / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final + 0.5 * (peak - final) * (1.0 + math.cos(math.pi * progress))


def cosine(step: int, total_steps: int, start: float, final: float) -> float:
    """Cosine from ``start`` at step 0 to ``final`` at ``total_steps`` (weight decay)."""
    progress = min(1.0, step / max(1, total_steps))
    return final + 0.5 * (start - final) * (1.0 + math.cos(math.pi * progress))


def linear(step: int, total_steps: int, start: float, final: float) -> float:
    """Linear from ``start`` to ``final`` over ``total_steps`` (EMA momentum 0.998 -> 1.0)."""
    progress = min(1.0, step / max(1, total_steps))
    return start + (final - start) * progress
