"""Downstream tasks: which split files, which labels, which classes.

A task names a dataset and a task of the split folder (``<dataset>_downstream[_foldK]_<task>_
<partition>_ids.csv``) and maps the dataset's label strings to class indices. The demo tasks
mirror the paper's: Alzheimer's (NC vs AD, NC vs MCI; 5-fold CV), glioma grade (2 vs 3/4 and
3-class) and autism (ASD vs TD). Folds and partitions always come through
:func:`~neurossl.splits.audit.load_partition`, which refuses a leaking split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurossl.splits.audit import load_partition
from neurossl.splits.files import read_splits

PARTITIONS = ("train", "val", "test")


@dataclass(frozen=True)
class Task:
    """A classification task over one dataset's downstream splits.

    Attributes:
        name: the task's name in results (``cognition_nc_vs_ad``).
        dataset, split_task: the split files' dataset and task fields (``split_task`` None: the
            files name no task, as the release's ``abide_downtrain_ids.csv``).
        classes: display names of the classes, index = class id.
        labels: dataset label string -> class id (labels absent here are not part of the task).
    """

    name: str
    dataset: str
    split_task: str | None
    classes: tuple[str, ...]
    labels: tuple[tuple[str, int], ...]

    @property
    def label_map(self) -> dict[str, int]:
        return dict(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("cognition_nc_vs_ad", "cognition", "nc_vs_ad", ("NC", "AD"), (("NC", 0), ("AD", 1))),
    Task("cognition_nc_vs_mci", "cognition", "nc_vs_mci", ("NC", "MCI"), (("NC", 0), ("MCI", 1))),
    Task("glioma_grade2_vs_34", "glioma", "grade2_vs_34", ("grade 2", "grade 3/4"),
         (("G2", 0), ("G3", 1), ("G4", 1))),
    Task("glioma_multiclass", "glioma", "multiclass", ("grade 2", "grade 3", "grade 4"),
         (("G2", 0), ("G3", 1), ("G4", 2))),
    Task("autism_asd_vs_td", "autism", "asd_vs_td", ("TD", "ASD"), (("TD", 0), ("ASD", 1))),
)}
# The paper's tasks on the released split files, for users' own data (their scans.tsv labels
# follow neurossl.data.scans_table.LABELS).
PAPER_TASKS: dict[str, Task] = {t.name: t for t in (
    Task("adni_nc_vs_ad", "adni", "nc_vs_ad", ("NC", "AD"), (("NC", 0), ("AD", 1))),
    Task("adni_nc_vs_mci", "adni", "nc_vs_mci", ("NC", "MCI"), (("NC", 0), ("MCI", 1))),
    Task("scan_nc_vs_ad", "scan", "nc_vs_ad", ("NC", "AD"), (("NC", 0), ("AD", 1))),
    Task("scan_nc_vs_mci", "scan", "nc_vs_mci", ("NC", "MCI"), (("NC", 0), ("MCI", 1))),
    Task("ucsf_grade2_vs_34", "ucsf", "grade2_vs_34", ("grade 2", "grade 3/4"),
         (("G2", 0), ("G3", 1), ("G4", 1))),
    Task("ucsf_multiclass", "ucsf", "multiclass", ("grade 2", "grade 3", "grade 4"),
         (("G2", 0), ("G3", 1), ("G4", 2))),
    Task("abide_asd_vs_td", "abide", None, ("TD", "ASD"), (("TD", 0), ("ASD", 1))),
)}


def get_task(name: str) -> Task:
    """The demo or paper task called ``name``, or a ValueError listing the known ones."""
    known = {**TASKS, **PAPER_TASKS}
    if name not in known:
        raise ValueError(f"unknown task '{name}'; choose one of {', '.join(known)}")
    return known[name]


def task_folds(task: Task, splits_dir: str | Path) -> list[int | None]:
    """The folds the split folder holds for ``task`` (``[None]`` for a single held-out split)."""
    splits = read_splits(splits_dir)
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
