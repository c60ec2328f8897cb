"""The one catalogue of downstream tasks, read by the splits (:mod:`neurossl.splits.make`) and by
evaluation (:mod:`neurossl.evaluate.tasks`).

A :class:`Task` names a dataset and the task field of its split files
(``<dataset>_downstream[_foldK]_<split_task>_<partition>_ids.csv``) and maps the dataset's label
strings to class indices. The demo tasks mirror the paper's: Alzheimer's (NC vs AD, NC vs MCI;
5-fold CV), glioma grade (2 vs 3/4 and 3-class), autism (ASD vs TD), plus a head-CT task
(intracranial haemorrhage present / absent) for FM-CT's CT encoder. :data:`DEMO_ROLES` says how
each demo dataset is split; :func:`protocol` joins roles and tasks for :func:`make_splits`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MR_INPUT, CT_INPUT = "MR", "CT"


@dataclass(frozen=True)
class Task:
    """A classification task over one dataset's downstream splits.

    Attributes:
        name: the task's name in results (``cognition_nc_vs_ad``).
        dataset, split_task: the split files' dataset and task fields (``split_task`` None: the
            files name no task, as the release's ``abide_downtrain_ids.csv``).
        classes: display names of the classes, index = class id.
        labels: dataset label string -> class id (labels absent here are not part of the task).
        input: ``"MR"`` or ``"CT"``: the kind of scan the task feeds. CT tasks feed the HU
            windows of ``preprocess.ct_windows`` (one channel each), so only encoders pretrained
            on CT are probed on them.
    """

    name: str
    dataset: str
    split_task: str | None
    classes: tuple[str, ...]
    labels: tuple[tuple[str, int], ...]
    input: str = MR_INPUT

    @property
    def label_map(self) -> dict[str, int]:
        return dict(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def split_labels(self) -> tuple[str, ...]:
        """The subject labels whose subjects take part in this task's split files."""
        return tuple(label for label, _ in self.labels)


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("cognition_nc_vs_ad", "cognition", "nc_vs_ad", ("NC", "AD"), (("NC", 0), ("AD", 1))),
    Task("cognition_nc_vs_mci", "cognition", "nc_vs_mci", ("NC", "MCI"), (("NC", 0), ("MCI", 1))),
    Task("glioma_grade2_vs_34", "glioma", "grade2_vs_34", ("grade 2", "grade 3/4"),
         (("G2", 0), ("G3", 1), ("G4", 1))),
    Task("glioma_multiclass", "glioma", "multiclass", ("grade 2", "grade 3", "grade 4"),
         (("G2", 0), ("G3", 1), ("G4", 2))),
    Task("autism_asd_vs_td", "autism", "asd_vs_td", ("TD", "ASD"), (("TD", 0), ("ASD", 1))),
    Task("headct_ich", "ich", "ich", ("no haemorrhage", "haemorrhage"), (("NOICH", 0), ("ICH", 1)),
         CT_INPUT),
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
# How each demo dataset is split (neurossl.splits.make): ``cv`` (pretraining share + k-fold
# downstream), ``holdout`` (downstream only, one train / val / test split) or ``pretrain``.
DEMO_ROLES: Mapping[str, str] = MappingProxyType({
    "cognition": "cv", "glioma": "holdout", "autism": "holdout", "ich": "holdout",
    "pool": "pretrain", "headct": "pretrain",
})


def get_task(name: str) -> Task:
    """The demo or paper task called ``name``, or a ValueError listing the known ones."""
    known = {**TASKS, **PAPER_TASKS}
    if name not in known:
        raise ValueError(f"unknown task '{name}'; choose one of {', '.join(known)}")
    return known[name]


def dataset_tasks(dataset: str, catalogue: Mapping[str, Task] = TASKS) -> tuple[Task, ...]:
    """The catalogue's tasks over ``dataset``, in catalogue order."""
    return tuple(t for t in catalogue.values() if t.dataset == dataset)
