"""Subject-level splits: write the paper's protocol for a scans table (``neurossl splits make``).

The protocol (paper section 3; defaults in :class:`~neurossl.config.SplitConfig`), per dataset:

- ``cv`` (cognition, ADNI-like): labelled subjects split into pretraining (85%) and a downstream
  pool (15%, stratified by label); each task (``nc_vs_ad``, ``nc_vs_mci``) takes the pool's
  subjects with its labels and runs 5-fold stratified cross-validation; in fold k, test = fold k,
  val = a stratified ``val_fraction`` of the rest, train = the remainder. Subjects without a task
  label go to pretraining.
- ``holdout`` (glioma, autism, ich): downstream only, never pretraining; one stratified 70 / 15 / 15
  train / val / test partition of the subjects, shared by all of the dataset's tasks.
- ``pretrain`` (pool, headct): every subject to pretraining.

Everything is decided per subject and every scan follows its subject. Stratification uses one
label per subject: the label of its latest session. Small cohorts: a held-out set is raised to
one subject per label where the rest keeps one of each too; a split that still cannot be
stratified (a label with one subject) falls back to a random one with a warning; a task with
fewer subjects of a label than folds (a test fold would miss that label) or a partition that
would be empty is an error naming the dataset, task and counts. Warnings are also recorded in
``splits.json``.

Roles and tasks come from the one task catalogue, :mod:`neurossl.tasks`; a task's files are
named by its ``split_task``. Reading and auditing live in :mod:`neurossl.splits.files` / :mod:`neurossl.splits.audit`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from neurossl.config import ConfigError, SplitConfig
from neurossl.splits.files import SplitError, parse_split_name, split_file_name
from neurossl.tasks import DEMO_ROLES, TASKS, Task, dataset_tasks

MANIFEST = "splits.json"
ROLES = ("cv", "holdout", "pretrain")


@dataclass(frozen=True)
class DatasetProtocol:
    """How one dataset is split: ``role`` is ``cv``, ``holdout`` or ``pretrain``; ``tasks`` are
    catalogue tasks (:class:`neurossl.tasks.Task`) whose ``split_task`` names the files."""

    role: str
    tasks: tuple[Task, ...] = ()


def protocol_from(roles: Mapping[str, str], catalogue: Mapping[str, Task] = TASKS) -> Mapping[str, DatasetProtocol]:
    """Each dataset of ``roles`` with its role and the catalogue's tasks over it (a task that
    names no split task, as the release's ABIDE files, cannot be written and is refused)."""
    protocol = {}
    for name, role in roles.items():
        tasks = dataset_tasks(name, catalogue)
        unnamed = [t.name for t in tasks if t.split_task is None]
        if unnamed:
            raise SplitError(f"dataset {name}: task(s) {unnamed} name no split task; cannot write their files")
        protocol[name] = DatasetProtocol(role, tasks if role != "pretrain" else ())
    return MappingProxyType(protocol)


DEMO_PROTOCOL: Mapping[str, DatasetProtocol] = protocol_from(DEMO_ROLES)

# One split: (task or None, fold or None, partition) -> sorted subject IDs.
Assignment = dict[tuple[str | None, int | None, str], list[str]]


class SplitWarning(UserWarning):
    """A small-cohort fallback (an unstratified split, scans left out of a task)."""


def _warn(notes: list[str], message: str) -> None:
    """Warn now and keep the message for the manifest (small-cohort fallbacks are never silent)."""
    notes.append(message)
    warnings.warn(message, SplitWarning, stacklevel=3)


def _round(x: float) -> int:
    """Round half up (Python's round() goes to even, which makes 4.5 -> 4)."""
    return int(math.floor(x + 0.5))


def _check_config(cfg: SplitConfig) -> None:
    if not 0 < cfg.downstream_fraction < 1:
        raise ConfigError(
            f"splits.downstream_fraction must be in (0, 1), got {cfg.downstream_fraction}"
        )
    if not 0 < cfg.val_fraction < 1:
        raise ConfigError(f"splits.val_fraction must be in (0, 1), got {cfg.val_fraction}")
    if cfg.folds < 2:
        raise ConfigError(f"splits.folds must be at least 2, got {cfg.folds}")
    fractions = cfg.holdout_fractions
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(
            f"splits.holdout_fractions must be three positive numbers summing to 1, got {fractions}"
        )


def _normalised_scans(scans: pd.DataFrame, protocol: Mapping[str, DatasetProtocol]) -> pd.DataFrame:
    """IDs and labels as stripped text; refuse tables where a subject-level split is ambiguous."""
    missing = [c for c in ("scan_uid", "subject_id", "dataset", "label") if c not in scans.columns]
    if missing:
        raise SplitError(f"scans table lacks column(s) {', '.join(missing)}")
    ids = ("scan_uid", "subject_id", "dataset")
    for column in ids:
        if scans[column].isna().any() or (scans[column].astype(str).str.strip() == "").any():
            raise SplitError(f"scans table has blank values in '{column}'")
    text = {c: scans[c].astype(str).str.strip() for c in ids}
    scans = scans.assign(**text, label=scans["label"].fillna("").astype(str).str.strip())
    duplicated = scans.loc[scans["scan_uid"].duplicated(), "scan_uid"]
    if not duplicated.empty:
        raise SplitError(f"scan_uid not unique in the scans table, e.g. {sorted(duplicated)[:5]}")
    per_subject = scans.groupby("subject_id")["dataset"].nunique()
    shared = sorted(per_subject[per_subject > 1].index)
    if shared:
        # A subject in two datasets could reach pretraining through one, a test set through another.
        raise SplitError(f"subject(s) in more than one dataset: {', '.join(shared[:10])}")
    unknown = sorted(set(scans["dataset"]) - set(protocol))
    if unknown:
        raise SplitError(
            f"no split protocol for dataset(s) {', '.join(unknown)}; known: {', '.join(protocol)}"
        )
    for name, rule in protocol.items():
        if rule.role not in ROLES:
            raise SplitError(f"dataset {name}: role must be one of {ROLES}, got '{rule.role}'")
    return scans


def _session_order(sessions: pd.Series) -> pd.Series:
    """Sort key for sessions: numeric where every value is a number, text otherwise."""
    numeric = pd.to_numeric(sessions, errors="coerce")
    return numeric if numeric.notna().all() else sessions.astype(str)


def subject_labels(scans: pd.DataFrame) -> pd.Series:
    """One label per subject: the label at its latest session ("" when it has none).

    Returns:
        a Series of labels indexed by subject_id, sorted by subject_id.
    """
    labelled = scans.assign(label=scans["label"].fillna("").astype(str).str.strip())
    labelled = labelled[labelled["label"] != ""]
    if "session" in labelled.columns:
        labelled = labelled.assign(_order=_session_order(labelled["session"]))
        labelled = labelled.sort_values(["subject_id", "_order", "scan_uid"], kind="stable")
    else:
        labelled = labelled.sort_values(["subject_id", "scan_uid"], kind="stable")
    latest = labelled.groupby("subject_id")["label"].last()
    subjects = pd.Index(sorted(scans["subject_id"].unique()), name="subject_id")
    return latest.reindex(subjects, fill_value="")


def _holdout(
    ids: np.ndarray, labels: np.ndarray, n_hold: int, seed: int, where: str, notes: list[str]
) -> tuple[list[str], list[str]]:
    """Split ``ids`` into (kept, held-out ``n_hold``), stratified by label when possible."""
    n, counts = len(ids), dict(sorted(Counter(labels).items()))
    if not 1 <= n_hold <= n - 1:
        raise SplitError(f"{where}: cannot hold out {n_hold} of {n} subject(s) {counts}")
    # A small held-out set still gets one subject of every label where the rest keeps one too
    # (a validation set of one label has no AUC); sklearn also needs 2+ subjects per label.
    if len(counts) <= n - len(counts):
        n_hold = min(max(n_hold, len(counts)), n - len(counts))
    can_stratify = min(counts.values()) >= 2 and len(counts) <= min(n_hold, n - n_hold)
    if not can_stratify:
        _warn(notes, f"{where}: too few subjects to stratify {counts}; "
                     f"holding out {n_hold} of {n} at random")
    stratify = labels if can_stratify else None
    kept, held = train_test_split(ids, test_size=n_hold, stratify=stratify, random_state=seed)
    return sorted(kept), sorted(held)


def _cv_test_folds(
    ids: np.ndarray, labels: np.ndarray, folds: int, seed: int, where: str
) -> list[list[str]]:
    """Stratified k-fold test sets; every label must reach every test fold."""
    counts = dict(sorted(Counter(labels).items()))
    if len(counts) < 2 or min(counts.values()) < folds:
        raise SplitError(
            f"{where}: subjects per label {counts} in the downstream pool, but {folds} folds need "
            f"at least {folds} of each of two or more labels; add subjects, raise "
            "splits.downstream_fraction or lower splits.folds"
        )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [sorted(ids[test]) for _, test in cv.split(ids, labels)]


def _cv_assignment(labels: pd.Series, rule: DatasetProtocol, cfg: SplitConfig, name: str,
                   notes: list[str]) -> Assignment:
    """Pretraining / downstream pool, then per task k-fold train / val / test."""
    task_labels = {label for task in rule.tasks for label in task.split_labels}
    usable = labels[labels.isin(task_labels)]
    n_down = max(1, _round(cfg.downstream_fraction * len(usable)))
    pretrain, pool = _holdout(usable.index.to_numpy(), usable.to_numpy(), n_down, cfg.seed,
                              f"{name} downstream pool", notes)
    unlabelled = labels[~labels.isin(task_labels)].index
    assignment: Assignment = {(None, None, "pretrain"): sorted([*pretrain, *unlabelled])}
    pooled = labels[pool]
    for task in rule.tasks:
        members = pooled[pooled.isin(task.split_labels)]
        where = f"{name}/{task.split_task}"
        ids, member_labels = members.index.to_numpy(), members.to_numpy()
        tests = _cv_test_folds(ids, member_labels, cfg.folds, cfg.seed, where)
        for fold, test in enumerate(tests):
            rest = members.drop(test)
            n_val = max(1, _round(cfg.val_fraction * len(rest)))
            train, val = _holdout(rest.index.to_numpy(), rest.to_numpy(), n_val, cfg.seed,
                                  f"{where} fold {fold} val", notes)
            assignment.update({(task.split_task, fold, "train"): train, (task.split_task, fold, "val"): val,
                               (task.split_task, fold, "test"): test})
    return assignment


def _holdout_assignment(labels: pd.Series, rule: DatasetProtocol, cfg: SplitConfig, name: str,
                        notes: list[str]) -> Assignment:
    """One stratified train / val / test partition, written once per task."""
    task_labels = {label for task in rule.tasks for label in task.split_labels}
    usable = labels[labels.isin(task_labels)]
    if len(usable) < len(labels):
        _warn(notes, f"{name}: {len(labels) - len(usable)} subject(s) without a task label are "
                     "left out (downstream-only dataset, never pretraining)")
    _, val_fraction, test_fraction = cfg.holdout_fractions
    n_test = max(1, _round(test_fraction * len(usable)))
    n_val = max(1, _round(val_fraction * len(usable)))
    rest, test = _holdout(usable.index.to_numpy(), usable.to_numpy(), n_test, cfg.seed,
                          f"{name} test", notes)
    rest_labels = usable[rest]
    train, val = _holdout(rest_labels.index.to_numpy(), rest_labels.to_numpy(), n_val, cfg.seed,
                          f"{name} val", notes)
    assignment: Assignment = {}
    for task in rule.tasks:
        for partition, subjects in (("train", train), ("val", val), ("test", test)):
            members = sorted(s for s in subjects if labels[s] in task.split_labels)
            assignment[(task.split_task, None, partition)] = members
    return assignment


def _assign(scans: pd.DataFrame, name: str, rule: DatasetProtocol, cfg: SplitConfig,
            notes: list[str]) -> Assignment:
    labels = subject_labels(scans)
    if rule.role == "pretrain":
        return {(None, None, "pretrain"): list(labels.index)}
    if rule.role == "cv":
        return _cv_assignment(labels, rule, cfg, name, notes)
    return _holdout_assignment(labels, rule, cfg, name, notes)


def _task_scans(scans: pd.DataFrame, subjects: list[str], task: Task | None) -> pd.DataFrame:
    """The scans of ``subjects``, sorted; in a task file only the scans carrying a task label."""
    rows = scans[scans["subject_id"].isin(subjects)]
    if task is not None:
        # A converter's scans from another diagnosis (or unlabelled ones) cannot serve this task.
        rows = rows[rows["label"].isin(task.split_labels)]
    rows = rows[["subject_id", "scan_uid"]]
    return rows.sort_values(["subject_id", "scan_uid"], ignore_index=True)


def _warn_left_out(scans: pd.DataFrame, assignment: Assignment, task: Task, name: str,
                   notes: list[str]) -> None:
    """Say how many scans of a task's subjects carry another label and stay out of its files."""
    subjects = {s for (t, _, _), members in assignment.items() if t == task.split_task for s in members}
    rows = scans[scans["subject_id"].isin(subjects)]
    left_out = int((~rows["label"].isin(task.split_labels)).sum())
    if left_out:
        _warn(notes, f"{name}/{task.split_task}: {left_out} scan(s) of its subjects carry another or no "
                     "label and are left out of its files (and out of pretraining)")


def _split_tables(scans: pd.DataFrame, cfg: SplitConfig, protocol: Mapping[str, DatasetProtocol],
                  notes: list[str]) -> dict[str, pd.DataFrame]:
    """File name -> its ``subject_id, scan_uid`` rows, for every dataset of the table."""
    tables: dict[str, pd.DataFrame] = {}
    for name in sorted(scans["dataset"].unique()):
        rule = protocol[name]
        rows = scans[scans["dataset"] == name]
        assignment = _assign(rows, name, rule, cfg, notes)
        tasks = {task.split_task: task for task in rule.tasks}
        for task in rule.tasks:
            _warn_left_out(rows, assignment, task, name, notes)
        for (task_name, fold, partition), subjects in assignment.items():
            if not subjects:
                where = f"{name} task={task_name} fold={fold}"
                raise SplitError(f"{where}: empty {partition} partition")
            file = split_file_name(name, partition, task_name, fold)
            tables[file] = _task_scans(rows, subjects, tasks.get(task_name))
    return tables


def _manifest(tables: dict[str, pd.DataFrame], cfg: SplitConfig,
              protocol: Mapping[str, DatasetProtocol], notes: list[str]) -> str:
    """``splits.json``: the settings, the protocol used, counts per file and any warnings."""
    datasets = sorted({parse_split_name(f).dataset for f in tables})
    content = {
        "format": "one CSV per (dataset, task, fold, partition), header subject_id,scan_uid",
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "protocol": {name: dataclasses.asdict(protocol[name]) for name in datasets},
        "files": {
            file: {"subjects": int(t["subject_id"].nunique()), "scans": len(t)}
            for file, t in tables.items()
        },
        "warnings": notes,
    }
    return json.dumps(content, indent=2, sort_keys=True) + "\n"


def make_splits(
    scans: pd.DataFrame,
    out_dir: str | Path,
    cfg: SplitConfig,
    protocol: Mapping[str, DatasetProtocol] = DEMO_PROTOCOL,
) -> list[Path]:
    """Write the paper's subject-level split protocol for a scans table into ``out_dir``.

    Args:
        scans: one row per scan with at least ``scan_uid, subject_id, dataset, label`` (and
            ``session``, used to pick a subject's latest label); an empty label means unlabelled.
        out_dir: created if needed. Existing CSVs of the same names are overwritten; any other
            ``*.csv`` there is an error (a stale split from another setting would mix in).
        cfg: seed, fractions and folds.
        protocol: role and tasks per dataset; the default covers the demo cohort.
    Returns:
        the CSV paths written, sorted; ``splits.json`` (settings, counts, warnings) is written too.
        Same input and seed -> byte-identical files.
    Raises:
        SplitError: an unusable table (missing columns, duplicated scan_uid, a subject in two
            datasets, a dataset without protocol) or a cohort too small for the protocol.
        ConfigError: fractions or folds out of range.
    """
    _check_config(cfg)
    scans = _normalised_scans(scans, protocol)
    notes: list[str] = []
    tables = _split_tables(scans, cfg, protocol, notes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = sorted(p.name for p in out_dir.glob("*.csv") if p.name not in tables)
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise SplitError(f"{out_dir} holds CSVs this split would not write ({shown}); remove "
                         "them or choose an empty folder")
    paths = []
    for file, table in sorted(tables.items()):
        path = out_dir / file
        table.to_csv(path, index=False, lineterminator="\n")
        paths.append(path)
    (out_dir / MANIFEST).write_text(_manifest(tables, cfg, protocol, notes))
    return paths
