"""The split file format: names that encode (dataset, task, fold, partition), and reading.

A split folder holds one CSV per (dataset, task, fold, partition), each with the header
``subject_id,scan_uid``. The file name carries the key; every naming pattern of the paper's
release parses (see :func:`parse_split_name`). Files that are not ``*.csv`` (``splits.json``, a
README) are ignored; a ``*.csv`` whose name does not parse is an error naming it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pandas as pd

PARTITIONS = ("pretrain", "train", "val", "test")
COLUMNS = ("subject_id", "scan_uid")

_NAME = re.compile(
    r"^(?P<dataset>[a-z0-9]+)_"
    r"(?:(?P<pretrain>pretrain)"
    r"|down(?P<short>train|val|test)"
    r"|(?:downstream_)?(?:fold(?P<fold>\d+)_)?(?:(?P<task>[a-z0-9]+(?:_[a-z0-9]+)*?)_)?"
    r"(?P<partition>train|val|test))"
    r"_u?ids\.csv$"
)
_PATTERNS = (
    "{dataset}_pretrain_ids.csv",
    "{dataset}_down{train|val|test}_ids.csv",
    "{dataset}_[downstream_][fold{k}_][{task}_]{train|val|test}_ids.csv (or _uids.csv)",
)
_RESERVED_TASKS = frozenset({"pretrain", "downstream"})


class SplitError(ValueError):
    """A split folder, file or protocol is unusable; the message names the file or dataset."""


class SplitLeakageError(SplitError):
    """Subjects leak between partitions; the message names every subject and the files."""


class SplitName(NamedTuple):
    """The key a split file name encodes."""

    dataset: str
    task: str | None
    fold: int | None
    partition: str


def parse_split_name(name: str) -> SplitName:
    """Parse a split file name such as ``adni_downstream_fold0_nc_vs_ad_train_ids.csv``.

    Raises:
        SplitError: the name follows none of the accepted patterns (listed in the message).
    """
    match = _NAME.match(Path(name).name)
    if match is None or match["task"] in _RESERVED_TASKS:
        raise SplitError(
            f"split file name '{name}' does not parse; expected one of: " + "; ".join(_PATTERNS)
        )
    if match["pretrain"]:
        return SplitName(match["dataset"], None, None, "pretrain")
    if match["short"]:
        return SplitName(match["dataset"], None, None, match["short"])
    fold = int(match["fold"]) if match["fold"] is not None else None
    return SplitName(match["dataset"], match["task"], fold, match["partition"])


def split_file_name(
    dataset: str, partition: str, task: str | None = None, fold: int | None = None
) -> str:
    """The file name :func:`make_splits` writes for a key; it parses back to the same key."""
    if partition == "pretrain":
        name = f"{dataset}_pretrain_ids.csv"
    else:
        fold_part = f"fold{fold}_" if fold is not None else ""
        task_part = f"{task}_" if task else ""
        name = f"{dataset}_downstream_{fold_part}{task_part}{partition}_ids.csv"
    if parse_split_name(name) != SplitName(dataset, task, fold, partition):
        raise SplitError(f"dataset '{dataset}' / task '{task}' cannot be written as a file name")
    return name


def _read_one(path: Path) -> pd.DataFrame:
    """The two ID columns of one split CSV, as text; errors name the file."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise SplitError(f"{path}: empty file, expected the header subject_id,scan_uid") from exc
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise SplitError(
            f"{path}: missing column(s) {', '.join(missing)}; header is {', '.join(table.columns)}"
        )
    table = table[list(COLUMNS)]
    if table.empty:
        # An empty partition is always a bug upstream; reading it as "0 subjects" would hide it.
        raise SplitError(f"{path}: header only, the file lists no scans")
    blank = table[(table["subject_id"].str.strip() == "") | (table["scan_uid"].str.strip() == "")]
    if not blank.empty:
        rows = [int(i) + 1 for i in blank.index[:10]]
        raise SplitError(f"{path}: blank subject_id or scan_uid on data row(s) {rows}")
    return table


def read_splits(directory: str | Path) -> pd.DataFrame:
    """All split CSVs of a folder as one table.

    Returns:
        columns ``dataset, task, fold, partition, subject_id, scan_uid, file`` (``file`` is the
        CSV's name; ``task`` is None and ``fold`` is <NA> where the name carries none).
    Raises:
        FileNotFoundError: the folder does not exist.
        SplitError: no CSV in it, a name that does not parse, two files with the same key, a
            CSV without the ``subject_id`` / ``scan_uid`` columns, one without rows or with a
            blank ID (each naming the file).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"split folder not found: {directory}")
    paths = sorted(p for p in directory.glob("*.csv") if p.is_file())
    if not paths:
        raise SplitError(f"{directory}: no split CSV files (expected *_ids.csv)")
    keys: dict[SplitName, str] = {}
    frames = []
    for path in paths:
        key = parse_split_name(path.name)
        if key in keys:
            raise SplitError(f"{directory}: {keys[key]} and {path.name} both hold {key}")
        keys[key] = path.name
        table = _read_one(path)
        frames.append(table.assign(**key._asdict(), file=path.name))
    splits = pd.concat(frames, ignore_index=True)
    splits["fold"] = splits["fold"].astype("Int64")
    columns = ["dataset", "task", "fold", "partition", *COLUMNS, "file"]
    return splits[columns]
