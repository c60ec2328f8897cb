"""Load encoders from any checkpoint we meet, strictly; export them as safetensors with provenance.

``load_encoder`` reads a torch checkpoint (``.pt`` / ``.pth`` / ``.tar``), an exported
``.safetensors`` file (its JSON sidecar gives the config and a checksum) or an in-memory dict.
Training checkpoints of the V-JEPA family hold ``encoder`` and ``target_encoder`` state dicts
whose keys carry wrapper prefixes (``module.backbone.`` for DDP around V-JEPA's multi-mask
wrapper, ``module.`` for DDP, ``_orig_mod.`` for ``torch.compile``); they are stripped and the
weights then loaded strictly. Any missing, unexpected or mis-shaped key is an error that names it:
never a silent partial load.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.nn as nn

from neurossl.models.vit import VisionTransformer3D, build_encoder
from neurossl.runtime.files import atomic_path, sha256_file

WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")
STATE_DICT_KEYS = ("target_encoder", "encoder", "model", "state_dict")  # auto-detection order
PROVENANCE_KEYS = ("objective", "steps", "data", "git_commit")


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded as asked; the message says which keys or file are at fault."""


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove leading wrapper prefixes (``module.backbone.`` etc.) from every key."""
    stripped = {}
    for name, value in state.items():
        while name.startswith(WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        stripped[name] = value
    return stripped


def select_state_dict(checkpoint: Mapping[str, Any], key: str | None = None) -> Mapping[str, Any]:
    """The encoder's state dict inside ``checkpoint``: ``checkpoint[key]``; with ``key=None`` the
    first of ``target_encoder``, ``encoder``, ``model``, ``state_dict`` present, else the
    checkpoint itself when it is a plain state dict."""
    if key is not None:
        if key not in checkpoint:
            raise CheckpointError(f"checkpoint has no '{key}'; its top-level keys: {sorted(checkpoint)}")
        return checkpoint[key]
    for candidate in STATE_DICT_KEYS:
        if isinstance(checkpoint.get(candidate), Mapping):
            return checkpoint[candidate]
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise CheckpointError(f"no encoder state dict found; top-level keys: {sorted(checkpoint)}; "
                          f"pass key= to choose one")


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state)`` after checking every name and shape; raises
    :class:`CheckpointError` listing all missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    mis_shaped = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                        for k in own.keys() & state.keys() if state[k].shape != own[k].shape)
    if missing or unexpected or mis_shaped:
        lines = ["checkpoint does not match the encoder (nothing was loaded):"]
        for title, names in (("missing", missing), ("unexpected", unexpected),
                             ("shape mismatch", mis_shaped)):
            if names:
                lines.append(f"  {title} ({len(names)}): " + ", ".join(names))
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state, strict=True)


def sidecar_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def read_safetensors(path: Path, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Tensors of an exported encoder and its sidecar (None if there is none). With a sidecar
    the file's sha256 must match the recorded one; a bare safetensors file is not verified."""
    sidecar = sidecar_path(path)
    info = json.loads(sidecar.read_text()) if sidecar.exists() else None
    if info is not None and verify:
        actual = sha256_file(path)
        if actual != info.get("sha256"):
            raise CheckpointError(f"checksum mismatch for {path}: the file's sha256 is {actual}, "
                                  f"{sidecar.name} records {info.get('sha256')}; the weights are "
                                  f"corrupted or were modified after export")
    try:
        return safetensors.torch.load_file(str(path), device="cpu"), info
    except (OSError, safetensors.SafetensorError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from error


def load_encoder(source: str | Path | Mapping[str, Any],
                 model_or_config: nn.Module | Mapping[str, Any] | None = None,
                 key: str | None = None) -> nn.Module:
    """Load encoder weights strictly and return the encoder.

    Args:
        source: a torch checkpoint path, a ``.safetensors`` path (with its ``.json`` sidecar,
            whose checksum is verified), or an in-memory checkpoint / state dict.
        model_or_config: the encoder to load into; or the constructor arguments of a
            :class:`VisionTransformer3D` (``encoder.config``; with a ``name`` key, a preset of
            :func:`build_encoder` plus overrides); None: the config of the safetensors sidecar.
        key: which state dict of a training checkpoint (``target_encoder``, ``encoder``, ...);
            None picks ``target_encoder`` first (see :func:`select_state_dict`).
    """
    sidecar = None
    if isinstance(source, Mapping):
        checkpoint = source
    elif Path(source).suffix == ".safetensors":
        checkpoint, sidecar = read_safetensors(Path(source))
    else:
        try:
            checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise CheckpointError(
                f"{source} holds objects other than tensors and plain containers, which are not "
                f"unpickled for safety; if you trust the file, pass "
                f"torch.load(path, weights_only=False) to load_encoder instead") from error
        except (OSError, RuntimeError, EOFError) as error:
            raise CheckpointError(f"cannot read checkpoint {source}: {error}") from error
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    state = strip_prefixes(select_state_dict(checkpoint, key))

    if model_or_config is None:
        if sidecar is None or sidecar.get("config") is None:
            raise CheckpointError("no config to build the encoder from: pass model_or_config "
                                  "(an encoder or its constructor arguments)")
        model_or_config = sidecar["config"]
    if isinstance(model_or_config, nn.Module):
        model = model_or_config
    elif "name" in model_or_config:
        model = build_encoder(**model_or_config)
    else:
        model = VisionTransformer3D(**model_or_config)
    load_state_dict_strict(model, state)
    return model


def save_encoder(model: nn.Module, path: str | Path, meta: Mapping[str, Any]) -> Path:
    """Export ``model``'s weights to ``<path>.safetensors`` and a ``<path>.json`` sidecar holding
    its config, ``meta`` (provenance: at least objective, steps, data, git_commit; a value may
    be None when unknown) and the sha256 of the weights file. Both are written atomically.
    Returns the weights path."""
    absent = [k for k in PROVENANCE_KEYS if k not in meta]
    if absent:
        raise ValueError(f"meta lacks provenance keys {absent}; give each (None when unknown)")
    weights = Path(path)
    if weights.suffix != ".safetensors":
        weights = weights.with_name(weights.name + ".safetensors")
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        safetensors.torch.save_file(tensors, str(tmp))
    info = {"format": "neurossl-encoder/1", "weights": weights.name, "sha256": sha256_file(weights),
            "config": getattr(model, "config", None), "meta": dict(meta),
            "torch_version": torch.__version__}
    text = json.dumps(info, indent=2, sort_keys=True)
    with atomic_path(sidecar_path(weights)) as tmp:
        tmp.write_text(text + "\n")
    return weights
