"""Audit and load subject-level splits: counts per partition, leakage checks, a safe loader.

The audit counts distinct subjects and scans and looks for the two kinds of leakage that inflate
downstream scores: a subject in two partitions of one (dataset, task, fold), and a subject of a
dataset both in its pretraining file and in any of its downstream files. Training code goes
through :func:`load_partition`, which audits first and refuses a leaking split.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from neurossl.splits.files import (
    COLUMNS,
    PARTITIONS,
    SplitError,
    SplitLeakageError,
    read_splits,
)

# Values that real releases use when the subject is not known (MOOD: "Unknown"); counted as
# given, but flagged because subject-level checks cannot separate such scans.
PLACEHOLDER_IDS = frozenset({"unknown", "na", "n/a", "none", "nan", "null", "-"})


class Leak(NamedTuple):
    """One subject found in two places it must not be.

    ``kind`` is ``within-split`` (two partitions of one dataset / task / fold) or
    ``pretrain-downstream`` (task and fold then describe the downstream file).
    """

    kind: str
    dataset: str
    task: str | None
    fold: int | None
    subject_id: str
    partitions: tuple[str, str]
    files: tuple[str, str]

    def __str__(self) -> str:
        where = " ".join(
            [self.dataset, self.task or "-", f"fold {self.fold}" if self.fold is not None else "-"]
        )
        return (
            f"[{self.kind}] subject {self.subject_id} ({where}): "
            f"{self.partitions[0]} ({self.files[0]}) and {self.partitions[1]} ({self.files[1]})"
        )


@dataclass
class AuditResult:
    """What :func:`audit_splits` found.

    Attributes:
        table: distinct subjects / scans per ``dataset, task, fold, partition, file``.
        totals: per dataset, distinct subjects / scans in pretraining and in the union of all its
            downstream files (the numbers of the paper's Table 1).
        leaks: every leak found, empty when the split is clean.
        notes: observations that are not leaks (placeholder subject IDs, a scan listed under
            two subject IDs, a subject in the test partition of several folds).
        directory: the audited folder.
    """

    table: pd.DataFrame
    totals: pd.DataFrame
    leaks: list[Leak]
    notes: list[str] = field(default_factory=list)
    directory: Path | None = None


def _with_keys(splits: pd.DataFrame) -> pd.DataFrame:
    """Add ``task_key`` / ``fold_key`` group keys without missing values ("" / -1: none)."""
    return splits.assign(
        task_key=splits["task"].fillna(""), fold_key=splits["fold"].fillna(-1).astype(int)
    )


def _task_or_none(task: str) -> str | None:
    return task or None


def _fold_or_none(fold: int) -> int | None:
    return int(fold) if fold >= 0 else None


def _count_table(keyed: pd.DataFrame) -> pd.DataFrame:
    """Distinct subjects / scans per file, in reading order: pretraining first, then by task."""
    table = (
        keyed.groupby(["dataset", "task_key", "fold_key", "partition", "file"], sort=False)
        .agg(subjects=("subject_id", "nunique"), scans=("scan_uid", "nunique"))
        .reset_index()
    )
    table["_order"] = table["partition"].map(PARTITIONS.index)
    table["_down"] = table["partition"] != "pretrain"
    order = ["dataset", "_down", "task_key", "fold_key", "_order"]
    table = table.sort_values(order, ignore_index=True)
    table["task"] = pd.Series([_task_or_none(t) for t in table["task_key"]], dtype=object)
    table["fold"] = table["fold_key"].map(_fold_or_none).astype("Int64")
    return table[["dataset", "task", "fold", "partition", "subjects", "scans", "file"]]


def _totals(splits: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: distinct subjects / scans in pretraining and in all downstream files."""
    stage = splits["partition"].where(splits["partition"] == "pretrain", "downstream")
    counts = (
        splits.assign(stage=stage)
        .groupby(["dataset", "stage"])
        .agg(subjects=("subject_id", "nunique"), scans=("scan_uid", "nunique"))
        .unstack("stage", fill_value=0)
    )
    columns = {}
    for stage_name in ("pretrain", "downstream"):
        for what in ("subjects", "scans"):
            present = (what, stage_name) in counts.columns
            columns[f"{stage_name}_{what}"] = counts[(what, stage_name)] if present else 0
    return pd.DataFrame(columns, index=counts.index).astype(int).reset_index()


def _within_split_leaks(keyed: pd.DataFrame) -> list[Leak]:
    """Subjects in two partitions of one (dataset, task, fold)."""
    group = ["dataset", "task_key", "fold_key", "subject_id"]
    down = keyed[keyed["partition"] != "pretrain"].drop_duplicates([*group, "partition"])
    spread = down.groupby(group)["partition"].transform("nunique")
    leaks = []
    for (dataset, task, fold, subject), rows in down[spread > 1].groupby(group):
        places = sorted(zip(rows["partition"], rows["file"]), key=lambda p: PARTITIONS.index(p[0]))
        for (part_a, file_a), (part_b, file_b) in itertools.combinations(places, 2):
            leaks.append(
                Leak("within-split", dataset, _task_or_none(task), _fold_or_none(fold), subject,
                     (part_a, part_b), (file_a, file_b))
            )
    return leaks


def _pretrain_downstream_leaks(keyed: pd.DataFrame) -> list[Leak]:
    """Subjects of a dataset both in its pretraining file and in any of its downstream files."""
    is_pre = keyed["partition"] == "pretrain"
    pre = keyed.loc[is_pre, ["dataset", "subject_id", "file"]]
    pre = pre.drop_duplicates(["dataset", "subject_id"])
    down = keyed[~is_pre].drop_duplicates(["dataset", "file", "subject_id"])
    both = down.merge(pre, on=["dataset", "subject_id"], suffixes=("", "_pre"))
    both = both.sort_values(["dataset", "subject_id", "task_key", "fold_key", "file"])
    return [
        Leak("pretrain-downstream", row.dataset, _task_or_none(row.task_key),
             _fold_or_none(row.fold_key), row.subject_id, ("pretrain", row.partition),
             (row.file_pre, row.file))
        for row in both.itertuples(index=False)
    ]


def _placeholder_notes(keyed: pd.DataFrame) -> list[str]:
    """Subject IDs such as ``Unknown`` that stand for many unrelated scans."""
    placeholder = keyed[keyed["subject_id"].str.strip().str.lower().isin(PLACEHOLDER_IDS)]
    return [
        f"{dataset}: placeholder subject_id '{subject}' stands for {rows['scan_uid'].nunique()} "
        f"scans ({', '.join(sorted(rows['file'].unique()))}); they count as one subject and "
        "subject-level checks cannot separate them"
        for (dataset, subject), rows in placeholder.groupby(["dataset", "subject_id"])
    ]


def _shared_scan_notes(keyed: pd.DataFrame) -> list[str]:
    """Scans listed under two subject IDs: a leak of those would escape a subject-level check."""
    owners = keyed.groupby(["dataset", "scan_uid"])["subject_id"].nunique()
    return [
        f"{dataset}: {len(shared)} scan_uid(s) listed under more than one subject_id, e.g. "
        f"{shared.index[0][1]}; subject-level checks cannot see a leak of these scans"
        for dataset, shared in owners[owners > 1].groupby(level="dataset")
    ]


def _repeated_test_notes(keyed: pd.DataFrame) -> list[str]:
    """Subjects tested in several folds of one task: not a leak, but the folds are not a CV."""
    tests = keyed[(keyed["partition"] == "test") & (keyed["fold_key"] >= 0)]
    folds = tests.drop_duplicates(["dataset", "task_key", "fold_key", "subject_id"])
    repeated = folds.groupby(["dataset", "task_key", "subject_id"]).size()
    return [
        f"{dataset} {task or '-'}: {len(subjects)} subject(s) in the test partition of several "
        f"folds, e.g. {subjects.index[0][2]} (cross-validation folds overlap)"
        for (dataset, task), subjects in repeated[repeated > 1].groupby(level=[0, 1])
    ]


def _audit(splits: pd.DataFrame, directory: Path | None) -> AuditResult:
    keyed = _with_keys(splits)
    leaks = _within_split_leaks(keyed) + _pretrain_downstream_leaks(keyed)
    notes = _placeholder_notes(keyed) + _shared_scan_notes(keyed) + _repeated_test_notes(keyed)
    return AuditResult(_count_table(keyed), _totals(splits), leaks, notes, directory)


def audit_splits(directory: str | Path) -> AuditResult:
    """Count subjects / scans of every split file in ``directory`` and find subject leakage.

    Checks: no subject in two partitions of one (dataset, task, fold); no subject of a dataset
    both in its pretraining file and in any of its downstream files. Counts are of distinct
    ``subject_id`` and distinct ``scan_uid``. Errors of :func:`read_splits` propagate.
    """
    directory = Path(directory)
    return _audit(read_splits(directory), directory)


def _fold_label(folds: pd.Series) -> str:
    """``0-4`` for consecutive folds, else a comma list; ``-`` without folds."""
    values = sorted({int(f) for f in folds.dropna()})
    if not values:
        return "-"
    if values == list(range(values[0], values[-1] + 1)) and len(values) > 1:
        return f"{values[0]}-{values[-1]}"
    return ",".join(str(v) for v in values)


def _display_rows(result: AuditResult) -> list[list[str]]:
    """One row per dataset / task / partition (folds side by side) plus a downstream union row."""
    rows = []
    table = result.table.assign(task_key=result.table["task"].fillna(""))
    totals = result.totals.set_index("dataset")
    for dataset, per_dataset in table.groupby("dataset", sort=False):
        for (task, partition), group in per_dataset.groupby(["task_key", "partition"], sort=False):
            rows.append([
                dataset, task or "-", partition, _fold_label(group["fold"]),
                " / ".join(str(v) for v in group["subjects"]),
                " / ".join(str(v) for v in group["scans"]),
            ])
        if (per_dataset["partition"] != "pretrain").any():
            total = totals.loc[dataset]
            rows.append([
                dataset, "downstream (all folds)", "all", _fold_label(per_dataset["fold"]),
                str(total["downstream_subjects"]), str(total["downstream_scans"]),
            ])
    return rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |"
        for row in [header, ["-" * w for w in widths], *rows]
    ]
    return "\n".join(lines)


def format_audit(result: AuditResult) -> str:
    """The audit as text: a Markdown table of counts, then the leaks, then any notes.

    Rows with folds list one value per fold (``a / b / c``); each dataset with downstream files
    ends with a ``downstream (all folds)`` row counting distinct subjects / scans over all of them.
    """
    header = ["dataset", "task", "partition", "folds", "subjects", "scans"]
    parts = [_markdown(header, _display_rows(result))]
    if result.leaks:
        subjects = {(leak.dataset, leak.subject_id) for leak in result.leaks}
        parts.append(f"LEAKAGE: {len(result.leaks)} leak(s), {len(subjects)} subject(s):")
        parts.append("\n".join(f"  {leak}" for leak in result.leaks))
    else:
        parts.append("Leakage: none (no subject in two partitions of a split, none in both "
                     "pretraining and downstream of a dataset).")
    if result.notes:
        parts.append("Notes:\n" + "\n".join(f"  - {note}" for note in result.notes))
    return "\n\n".join(parts)


def _leak_message(leaks: list[Leak], directory: Path | None, action: str) -> str:
    subjects = sorted({leak.subject_id for leak in leaks})
    where = f" in {directory}" if directory is not None else ""
    return (
        f"{action}: {len(leaks)} subject leak(s){where} involving {len(subjects)} subject(s): "
        + ", ".join(subjects) + "\n" + "\n".join(f"  {leak}" for leak in leaks)
    )


def assert_no_leakage(splits: str | Path | AuditResult) -> AuditResult:
    """Audit a split folder (or take an audit result) and raise if any subject leaks.

    Returns:
        the audit result when the split is clean.
    Raises:
        SplitLeakageError: naming every leaked subject and the files involved.
    """
    result = splits if isinstance(splits, AuditResult) else audit_splits(splits)
    if result.leaks:
        raise SplitLeakageError(_leak_message(result.leaks, result.directory, "split leakage"))
    return result


# Folder fingerprint -> (splits, audit, keyed splits). An evaluation loads a partition per task,
# fold and encoder; reading and auditing every CSV of the folder each time dominated its cost.
_AUDITED: dict[tuple, tuple[pd.DataFrame, AuditResult, pd.DataFrame]] = {}


def _fingerprint(directory: Path) -> tuple[str, str]:
    """What identifies a folder's split CSVs: its path and a digest of each CSV's name and bytes
    (reading the bytes is cheap; parsing and auditing them is not)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in directory.glob("*.csv") if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return str(directory.resolve()), digest.hexdigest()


def audited_folder(directory: Path) -> tuple[pd.DataFrame, AuditResult, pd.DataFrame]:
    """``(read_splits(directory), its audit, the splits with task_key / fold_key)``, read again
    only when a CSV of the folder is added, removed or changed. Callers must not modify the
    returned frames (they are shared by every later call). A missing folder fingerprints as
    empty, is never cached, and ``read_splits`` names it."""
    key = _fingerprint(directory)
    if key not in _AUDITED:
        splits = read_splits(directory)
        if len(_AUDITED) >= 8:
            _AUDITED.pop(next(iter(_AUDITED)))
        _AUDITED[key] = (splits, _audit(splits, directory), _with_keys(splits))
    return _AUDITED[key]


def load_partition(
    directory: str | Path,
    dataset: str,
    partition: str,
    task: str | None = None,
    fold: int | None = None,
) -> pd.DataFrame:
    """The ``subject_id, scan_uid`` rows of one split file, after auditing the whole folder.

    This is the entry point for training code. It refuses (raises) when the audit finds any leak
    involving ``dataset`` - in any of its tasks or folds - so that a run given a leaking split
    stops before it starts, naming the subjects. ``task`` / ``fold`` select the file and must be
    None exactly where the file name carries none (pretraining files, ABIDE-style names).

    Raises:
        SplitLeakageError: the dataset's splits leak; names subjects and files.
        SplitError: no file for the requested key (the message lists the dataset's files), or
            the file lists no scans.
    """
    if partition not in PARTITIONS:
        raise SplitError(f"partition must be one of {', '.join(PARTITIONS)}, got '{partition}'")
    directory = Path(directory)
    splits, result, keyed = audited_folder(directory)
    leaks = [leak for leak in result.leaks if leak.dataset == dataset]
    if leaks:
        action = f"refusing to load {dataset} {partition} from a leaking split"
        raise SplitLeakageError(_leak_message(leaks, directory, action))
    wanted = (dataset, partition, task or "", -1 if fold is None else fold)
    chosen = keyed[(keyed[["dataset", "partition", "task_key", "fold_key"]] == wanted).all(axis=1)]
    if chosen.empty:
        available = sorted(splits.loc[splits["dataset"] == dataset, "file"].unique())
        raise SplitError(
            f"{directory}: no split file for dataset={dataset} partition={partition} task={task} "
            f"fold={fold}; files of this dataset: {', '.join(available) or 'none'}"
        )
    rows = chosen[list(COLUMNS)].drop_duplicates().sort_values(list(COLUMNS))
    return rows.reset_index(drop=True)
