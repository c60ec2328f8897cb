"""Learning checks of finished runs on held-out volumes: the downstream validation scans.

Pretraining reads only the ``pretrain`` partitions, so the downstream validation partitions hold
volumes no run has seen (test partitions stay untouched for the downstream comparison). Each run
is scored on those of its own input modalities (MRI contrasts, or CT for FM-CT's DINO-MIM) with
its own preprocessing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import torch

from neurossl.analysis.learning import learning_checks, reconstruction_quality
from neurossl.analysis.reconstruction import RECONSTRUCTING
from neurossl.analysis.runs import run_config
from neurossl.config import PreprocessConfig
from neurossl.data.cache import read_index
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.splits.files import read_splits


def held_out_scans(cache_dir: str | Path, splits_dir: str | Path, modalities: tuple[str, ...],
                   n: int) -> pd.DataFrame:
    """Up to ``n`` cached scans of ``modalities`` from the downstream validation partitions.

    The order is a hash of ``scan_uid`` (fixed, blind to labels and results), one scan per
    subject. Columns: ``scan_uid, subject_id, modality``.

    Raises:
        ValueError: no such scan (naming the modalities and the split folder).
    """
    splits = read_splits(splits_dir)
    val = set(splits.loc[splits["partition"] == "val", "scan_uid"])
    index = read_index(cache_dir)
    scans = index[(index["status"] == "ok") & index["scan_uid"].isin(val)
                  & index["modality"].isin(modalities)]
    if scans.empty:
        raise ValueError(f"no cached {'/'.join(modalities)} scan in the validation partitions of "
                         f"{splits_dir}: nothing held out to check the runs on")
    key = scans["scan_uid"].map(lambda uid: hashlib.sha1(str(uid).encode()).hexdigest())
    scans = scans.assign(key=key).sort_values("key").drop_duplicates("subject_id")
    return scans[["scan_uid", "subject_id", "modality"]].head(n).reset_index(drop=True)


def stack_volumes(cache_dir: str | Path, scans: pd.DataFrame, preprocess: PreprocessConfig) -> torch.Tensor:
    """The evaluation-mode items of ``scans`` stacked: ``(V, C, D, H, W)``."""
    data = CachedVolumeDataset(cache_dir, scans["scan_uid"].tolist(), train=False, preprocess=preprocess)
    return torch.stack([data[i]["image"] for i in range(len(data))])


def learning_tables(runs: dict[str, Path], cache_dir: str | Path, splits_dir: str | Path,
                    n_volumes: int = 48, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(checks, reconstruction)`` of every run on its held-out volumes.

    Args:
        runs: objective -> pretraining run folder (``config.yaml``, ``checkpoints/last.pt``).
        n_volumes: held-out volumes per run (one per subject; fewer where the validation
            partitions hold fewer of the run's modalities); the JEPA family's margins are small,
            so a few volumes' draw must not decide them.

    Returns:
        ``checks``: :func:`~neurossl.analysis.learning.learning_checks` rows of every run;
        ``reconstruction``: :func:`~neurossl.analysis.learning.reconstruction_quality` rows of the
        MAE / SL-MAE runs.
    """
    checks, reconstruction = [], []
    for name, run in runs.items():
        cfg = run_config(run)
        scans = held_out_scans(cache_dir, splits_dir, cfg.train.scan_modalities, n_volumes)
        images = stack_volumes(cache_dir, scans, cfg.preprocess)
        checks.append(learning_checks(run, images, scans["modality"].tolist(), seed))
        if name in RECONSTRUCTING:
            reconstruction.append(reconstruction_quality(run, images, seed))
    return (pd.concat(checks, ignore_index=True),
            pd.concat(reconstruction, ignore_index=True) if reconstruction else pd.DataFrame())
