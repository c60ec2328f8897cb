"""Mean-pooled frozen-encoder features per scan, kept on disk between processes.

Evaluation encodes every labelled scan with each frozen encoder; the embedding analysis
(notebook 04) needs the mean-pooled tokens of the same scans. :class:`FeatureStore` keeps them
in ``<root>/<encoder name>-<key>.npz`` (arrays ``keys``: the scans' cache keys, ``features``:
``(N, D)`` float32), so the analysis reads what evaluation computed instead of encoding again.

A file's key hashes what determines the features apart from the scan: the encoder's weights
(for a random twin, its architecture, the seed it is drawn with and the torch version) and the
per-item preprocessing that feeds it. Rows are looked up by the scan's cache key (the hash of its
source file and preprocessing, ``index.csv``'s ``key``), so a retrained encoder or a rebuilt
cache never reads stale rows: it finds none and encodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from neurossl.config import PreprocessConfig
from neurossl.evaluate.backbones import EncoderSpec
from neurossl.models.checkpoint_io import sidecar_path
from neurossl.runtime.files import atomic_path, sha256_file


def encoder_key(spec: EncoderSpec, preprocess: PreprocessConfig) -> str:
    """16 hex digits naming the features of ``spec`` fed by ``preprocess``."""
    if spec.name == "random":
        sidecar = json.loads(sidecar_path(spec.path).read_text()) if sidecar_path(spec.path).is_file() else {}
        weights = {"random_twin_of": sidecar.get("config"), "torch": torch.__version__}
    else:
        weights = {"sha256": sha256_file(spec.path)}
    identity = {"weights": weights, "modalities": list(spec.modalities),
                "preprocess": dataclasses.asdict(preprocess)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


class FeatureStore:
    """Pooled features of frozen encoders under ``root`` (created on first write)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, spec: EncoderSpec, preprocess: PreprocessConfig) -> Path:
        return self.root / f"{spec.name}-{encoder_key(spec, preprocess)}.npz"

    def read(self, spec: EncoderSpec, preprocess: PreprocessConfig) -> dict[str, np.ndarray]:
        """Cache key -> ``(D,)`` features stored for ``spec`` (empty when none are)."""
        return self._load(self.path(spec, preprocess))

    @staticmethod
    def _load(path: Path) -> dict[str, np.ndarray]:
        if not path.is_file():
            return {}
        try:
            with np.load(path) as stored:
                return dict(zip(stored["keys"].tolist(), stored["features"]))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{path}: unreadable feature store file ({err}); delete it and the "
                             "features are computed again") from err

    def add(self, spec: EncoderSpec, preprocess: PreprocessConfig, rows: dict[str, np.ndarray]) -> Path:
        """Merge ``rows`` (cache key -> ``(D,)``) into ``spec``'s file, written atomically."""
        path = self.path(spec, preprocess)  # hashes the encoder's weights: once per call
        merged = {**self._load(path), **rows}
        keys = sorted(merged)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=np.array(keys),
                         features=np.stack([np.asarray(merged[k], dtype=np.float32) for k in keys]))
        return path


def cache_feature_store(cache_dir: str | Path) -> FeatureStore:
    """The store beside a preprocessing cache, ``<cache_dir>/features``, where evaluation and the
    embedding analysis of that cache's scans meet."""
    return FeatureStore(Path(cache_dir) / "features")
