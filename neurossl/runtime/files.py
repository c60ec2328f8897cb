"""Files written whole or not at all, and their checksums."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """``with atomic_path(final) as tmp``: write ``tmp``; on success it replaces ``final``.

    The temporary file sits in ``final``'s folder (the rename stays on one file system) and is
    flushed to disk before the rename, so a process killed at any instant leaves either the old
    or the new file under ``final``, never a torn one; after an error the temporary is removed
    and the error propagates.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (hex), read in chunks of ``chunk`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (``neurossl.train.checkpoint``) with its tensors on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=False)
