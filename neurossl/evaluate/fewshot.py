"""Few-shot sampling: ``k`` labelled training volumes per class (paper: 16 / 32 / 64).

Volumes are drawn from distinct subjects first (a subject's second visit adds less information
than a new subject), then, if a class has fewer subjects than ``k``, further visits of the
same subjects. A class with fewer than ``k`` volumes is an error, never a silent shortfall.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def sample_per_class(frame: pd.DataFrame, shots: int, seed: int) -> pd.DataFrame:
    """``shots`` rows of each class ``y`` of ``frame`` (columns ``subject_id, scan_uid, y``).

    Deterministic in ``seed``; rows keep their columns, ordered by class then draw.
    Raises ValueError naming the class when it has fewer than ``shots`` volumes.
    """
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    rng = np.random.default_rng(seed)
    picked = []
    for label, rows in frame.groupby("y", sort=True):
        if len(rows) < shots:
            raise ValueError(f"class {label} has {len(rows)} training volumes, fewer than "
                             f"{shots} shots")
        # a random order of rows in which each subject's first visit comes before any repeat
        order = rows.iloc[rng.permutation(len(rows))]
        visit = order.groupby("subject_id").cumcount()
        picked.append(order.iloc[np.argsort(visit.to_numpy(), kind="stable")[:shots]])
    return pd.concat(picked).reset_index(drop=True)


def sample_test(frame: pd.DataFrame, size: int, seed: int = 0) -> pd.DataFrame:
    """A fixed test set of ``size`` scans from ``frame`` (paper section 6.5: "Test sets ... each
    containing 500 samples"), the same for every shot count and draw.

    Whole subjects are taken in a random order (``seed``) until ``size`` scans are reached; the
    last subject's scans are cut to land on ``size`` exactly. ``size`` 0, or a frame of at most
    ``size`` scans, returns the frame unchanged (the run's results then report its true size).
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if size == 0 or len(frame) <= size:
        return frame.reset_index(drop=True)
    subjects = frame["subject_id"].drop_duplicates().to_numpy()
    order = {s: i for i, s in enumerate(np.random.default_rng(seed).permutation(subjects))}
    ranked = frame.assign(_rank=frame["subject_id"].map(order)).sort_values(["_rank", "scan_uid"], kind="stable")
    return ranked.head(size).drop(columns="_rank").reset_index(drop=True)
