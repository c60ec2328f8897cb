"""Downstream tasks: which split files, which labels, which classes.

The tasks themselves (:class:`~neurossl.tasks.Task`, :data:`~neurossl.tasks.TASKS`,
:data:`~neurossl.tasks.PAPER_TASKS`) live in the one catalogue, :mod:`neurossl.tasks`, which the
splits read too; this module reads a task's folds and labelled partitions.
Folds and partitions always come through
:func:`~neurossl.splits.audit.load_partition`, which refuses a leaking split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neurossl.splits.audit import audited_folder, load_partition
from neurossl.tasks import Task

PARTITIONS = ("train", "val", "test")


def task_folds(task: Task, splits_dir: str | Path) -> list[int | None]:
    """The folds the split folder holds for ``task`` (``[None]`` for a single held-out split)."""
    splits, _, _ = audited_folder(Path(splits_dir))
    down = splits[(splits["dataset"] == task.dataset) & (splits["partition"] != "pretrain")]
    same_task = down["task"].isna() if task.split_task is None else down["task"] == task.split_task
    rows = down[same_task]
    if rows.empty:
        raise ValueError(f"{splits_dir}: no downstream split files for {task.dataset} task "
                         f"'{task.split_task}' (task {task.name})")
    folds = sorted(rows["fold"].dropna().astype(int).unique().tolist())
    return folds or [None]


def labelled(frame: pd.DataFrame, labels: pd.Series, task: Task, where: str) -> pd.DataFrame:
    """``frame`` (subject_id, scan_uid) with the class id ``y`` of each scan.

    ``labels`` maps scan_uid -> label string (the cache index's ``label``). A scan without a
    label of this task is an error naming it: a split that lists it is not this task's split.
    """
    known = frame["scan_uid"].map(labels)
    y = known.map(task.label_map)
    bad = frame.loc[y.isna(), "scan_uid"].tolist()
    if bad:
        found = sorted(set(known[y.isna()].fillna("<not cached>").astype(str)))
        raise ValueError(f"{where}: {len(bad)} scans have no label of task {task.name} "
                         f"({', '.join(found)}), e.g. {bad[:3]}")
    return frame.assign(y=y.astype(np.int64).to_numpy())


def fold_partitions(task: Task, splits_dir: str | Path, fold: int | None,
                    labels: pd.Series, usable: set[str] | None = None) -> dict[str, pd.DataFrame]:
    """``{"train", "val", "test"} -> DataFrame(subject_id, scan_uid, y)`` of one fold.

    ``usable``: the scans a coverage report found cached (:mod:`neurossl.data.coverage`); the
    others, already reported there, are left out. Without it every listed scan must be cached.
    Refuses (raises ``SplitLeakageError``) when the dataset's splits leak subjects.
    """
    parts = {}
    for partition in PARTITIONS:
        frame = load_partition(splits_dir, task.dataset, partition, task.split_task, fold)
        if usable is not None:
            frame = frame[frame["scan_uid"].isin(usable)].reset_index(drop=True)
        parts[partition] = labelled(frame, labels, task, f"{splits_dir} {task.name} fold {fold} {partition}")
    return parts
