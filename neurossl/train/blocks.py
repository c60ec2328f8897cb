"""How the trainer runs the transformer blocks: compiled, and with activation checkpointing.

Both act on every :class:`~neurossl.models.layers.Block` of an objective (encoders, EMA
teachers, predictors, decoders), which hold nearly all of a step's work and activation memory,
and both keep parameter names, so checkpoints, resume and exported encoders are an eager run's.
"""

from __future__ import annotations

import torch

from neurossl.config import ConfigError
from neurossl.models.layers import Block


def transformer_blocks(model: torch.nn.Module) -> list[Block]:
    """Every :class:`Block` inside ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, Block)]


def compile_blocks(model: torch.nn.Module, backend: str) -> int:
    """Compile every transformer block of ``model`` in place; returns how many.

    Blocks rather than the whole objective: each objective's glue (masking, gathers, EMA,
    losses) stays eager, and ``Module.compile`` keeps parameter names (no ``_orig_mod.``).
    ``backend`` "none" compiles nothing; otherwise a name from ``torch.compiler.list_backends``.
    """
    if backend == "none":
        return 0
    if backend not in torch.compiler.list_backends(exclude_tags=()):  # debug ones included
        raise ConfigError(f"'train.compile' must be 'none' or a torch.compile backend such as "
                          f"{', '.join(torch.compiler.list_backends())}, got '{backend}'")
    blocks = transformer_blocks(model)
    for block in blocks:
        block.compile(backend=backend)
    return len(blocks)


def checkpoint_blocks(model: torch.nn.Module, enabled: bool) -> int:
    """Set activation checkpointing of every transformer block of ``model``; returns how many.

    A checkpointed block keeps only its input for backward and recomputes the rest there: the
    activation memory of a step falls to about one ``(B, N, D)`` tensor per block, for ~1/3
    more compute. Unlike gradient accumulation it keeps the whole batch in each loss, which
    SimCLR's negatives, DINO's centre and VCR-JEPA's statistics depend on.
    """
    blocks = transformer_blocks(model)
    for block in blocks:
        block.checkpointed = bool(enabled)
    return len(blocks) if enabled else 0
