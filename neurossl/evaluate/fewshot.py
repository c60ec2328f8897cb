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
