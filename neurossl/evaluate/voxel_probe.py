"""A linear baseline on simple intensity features: is a task's label in the images at all?

Each volume ``(C, D, H, W)`` becomes, per channel, its average-pooled ``size^3`` cells (where
the intensity sits: enlarged ventricles, a lesion's region) and the quantiles of its brain voxels
(how much of it is bright or dark, wherever it is: a large lesion, lost tissue). Standardised
features feed an L2-regularised logistic regression whose strength is chosen by an inner
cross-validation on the training scans (log-loss). Nothing is learnt but one linear map, so:

- when it beats chance, the label is written in the images' coarse intensities and a network
  should learn it too;
- when a deep model does worse than it, the model (or its data budget) is the problem, not the
  data. It is the ``voxels`` baseline of ``neurossl evaluate`` and the learnability check of the
  demo cohort. Mixing contrasts (T1w, FLAIR, ...) in one task blurs both kinds of feature.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from neurossl.data.cache import read_index
from neurossl.data.dataset import select_entries
from neurossl.progress import tqdm

C_GRID = np.logspace(-3, 1, 5)  # inverse L2 strengths tried by the inner cross-validation
INNER_FOLDS = 3  # of that cross-validation; every class needs this many training scans
QUANTILES = np.linspace(0.01, 0.99, 25)  # of each channel's brain (non-zero) voxels


def volume_features(image: torch.Tensor, size: int) -> np.ndarray:
    """``(C, D, H, W)`` -> ``(C * (size^3 + 25),)``: pooled cells, then brain-voxel quantiles.

    Voxels outside the brain are 0 after preprocessing (skull stripping); a channel without any
    non-zero voxel gets zero quantiles.
    """
    image = image.float()
    cells = F.adaptive_avg_pool3d(image, size).flatten(1)
    quantiles = torch.zeros(image.shape[0], len(QUANTILES))
    levels = torch.as_tensor(QUANTILES, dtype=torch.float32)
    for c, channel in enumerate(image):
        brain = channel[channel != 0]
        if brain.numel():
            quantiles[c] = torch.quantile(brain, levels)
    return torch.cat([cells, quantiles], dim=1).flatten().numpy()


def standardise_brain(volume: np.ndarray) -> np.ndarray:
    """Z-score the non-zero (brain) voxels of a skull-stripped volume; the background stays 0."""
    brain = volume != 0
    if not brain.any():
        return volume
    values = volume[brain]
    out = np.zeros_like(volume)
    out[brain] = (values - values.mean()) / max(float(values.std()), 1e-6)
    return out


def cached_intensity_features(cache_dir: str | Path, scan_uids: list[str], size: int = 6) -> np.ndarray:
    """``(N, size^3 + 25)`` :func:`volume_features` of cached scans, in ``scan_uids`` order.

    Reads the cache's deterministic stage (RAS, cropped to the brain, 0 outside the mask),
    before the per-item slice-axis choice and resizing: a cell then covers about the same
    anatomy in every scan, whichever axis it was acquired along. A cache built with
    ``preprocess.intensity: official`` holds scanner units; its brain voxels are z-scored here so
    that the features compare scans as the ``brain`` rule's cache does.
    """
    if size < 1:
        raise ValueError(f"pooling size must be >= 1, got {size}")
    index = read_index(cache_dir)
    entries = select_entries(index[index["status"] == "ok"], list(scan_uids), cache_dir)
    rows = []
    rules = entries["intensity"] if "intensity" in entries else ["brain"] * len(entries)
    for file, rule in tqdm(list(zip(entries["file"], rules)), desc="intensity features", unit="scan",
                           leave=False):
        volume = np.load(Path(cache_dir) / file).astype(np.float32)
        if rule == "official":
            volume = standardise_brain(volume)
        rows.append(volume_features(torch.from_numpy(volume)[None], size))
    return np.stack(rows) if rows else np.zeros((0, size**3 + len(QUANTILES)), dtype=np.float32)


def voxel_probe(folds: int = INNER_FOLDS) -> Pipeline:
    """Standardise, then balanced logistic regression with C picked by ``folds``-fold CV."""
    logistic = LogisticRegression(class_weight="balanced", max_iter=5000)
    search = GridSearchCV(logistic, {"C": C_GRID}, cv=folds, scoring="neg_log_loss")
    return make_pipeline(StandardScaler(), search)


def fit_predict_voxels(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                       num_classes: int) -> np.ndarray:
    """Fit :func:`voxel_probe` on ``(N, F)`` / ``(N,)`` and return ``(M, num_classes)`` probabilities.

    Every class must occur in ``train_y`` at least :data:`INNER_FOLDS` times, so that the
    probabilities have one column per class; otherwise a ValueError says which are short.
    """
    counts = np.bincount(train_y, minlength=num_classes)
    if counts.min() < INNER_FOLDS:
        raise ValueError(f"the voxel probe needs >= {INNER_FOLDS} training scans of every class "
                         f"(inner cross-validation); class counts are {counts.tolist()}")
    probe = voxel_probe().fit(train_x, train_y)
    return probe.predict_proba(test_x)


def cross_validated_voxels(x: np.ndarray, y: np.ndarray, subjects: np.ndarray, num_classes: int,
                           folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold probabilities ``(N, num_classes)`` of the voxel probe on ``x`` ``(N, F)``.

    Folds are stratified by label and grouped by ``subjects`` ``(N,)``, so that every scan is
    predicted by a probe that saw no scan of its subject: the quick check that a labelled
    collection carries its label at all, using every subject once as test.
    """
    proba = np.zeros((len(y), num_classes))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y, groups=subjects):
        proba[test] = fit_predict_voxels(x[train], y[train], x[test], num_classes)
    return proba
