"""How much of a split a user's copy of the data covers, per split file; refuse a run below a bar.

A released split names scans by the datasets' own IDs; a user's download always lacks some (it
differs by date and by QC). Each scan a split file names is followed through the stages:

=================  ==============================================================
stage              the scan ...
=================  ==============================================================
``not_in_table``   has no row in the scans table (never downloaded, or not matched)
``missing_file``   has a row whose ``path`` is not a file under the data root
``rejected``       was rejected by curation (the reason code is kept), or not curated
``not_cached``     passed curation but has no ``ok`` row in the preprocessing cache
``cached``         is usable
=================  ==============================================================

The report counts per file: ``named`` (distinct scans the file lists), ``on_disk``, ``kept`` (by
curation) and ``cached``; ``coverage = cached / named``. :func:`check_coverage` refuses a run
when a file it uses falls below ``min_coverage``, naming the files and why. A split that gives a
scan another subject than the scans table does is an error, because every leakage check works on
subjects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurossl.data.cache import read_index
from neurossl.data.curate import read_report
from neurossl.data.scans_table import read_scans_table
from neurossl.splits.files import SplitError, read_splits

STAGES = ("not_in_table", "missing_file", "rejected", "not_cached", "cached")
COUNTS = ("named", "on_disk", "kept", "cached")
REPORT_FILE = "coverage.csv"
MISSING_FILE = "coverage_missing.csv"
MAX_SHOWN = 10


class CoverageError(ValueError):
    """A run would use split files its data cover too little; the message names them and why."""


@dataclass
class Coverage:
    """Per-file counts (``table``) and the stage of every named scan (``scans``)."""

    table: pd.DataFrame
    scans: pd.DataFrame

    @property
    def usable(self) -> set[str]:
        """scan_uids that are cached and may be used."""
        return set(self.scans.loc[self.scans["stage"] == "cached", "scan_uid"])


def check_subjects(splits: pd.DataFrame, scans: pd.DataFrame) -> None:
    """Refuse a split that names one scan with two subject IDs, in the split or against the table.

    Raises:
        SplitError: naming the scan_uid, the subject IDs and the files.
    """
    problems = []
    owners = splits.groupby("scan_uid")["subject_id"].nunique()
    shared = splits[splits["scan_uid"].isin(owners[owners > 1].index)]
    for uid, rows in shared.groupby("scan_uid"):
        places = rows[["subject_id", "file"]].drop_duplicates().itertuples(index=False)
        problems.append(f"scan_uid {uid} is listed under two subject IDs: "
                        + ", ".join(f"{s} in {f}" for s, f in places))
    table_subject = scans.set_index("scan_uid")["subject_id"]
    named = splits.drop_duplicates(["scan_uid", "subject_id", "file"])
    theirs = named["scan_uid"].map(table_subject)
    clash = named[theirs.notna() & (theirs != named["subject_id"])]
    for row in clash.itertuples(index=False):
        problems.append(f"{row.file}: scan_uid {row.scan_uid} is subject {row.subject_id} in the "
                        f"split but subject {table_subject[row.scan_uid]} in the scans table")
    if problems:
        more = f"\n  ... and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
        raise SplitError(f"{len(problems)} scan(s) with conflicting subject IDs (subject-level "
                         "checks would be wrong):\n  " + "\n  ".join(problems[:MAX_SHOWN]) + more)


def _stages(splits: pd.DataFrame, scans: pd.DataFrame, root: Path, curation: pd.DataFrame | None,
            index: pd.DataFrame) -> pd.DataFrame:
    """One row per (file, scan_uid) with its ``stage`` and a ``reason`` detail."""
    named = splits.drop_duplicates(["file", "scan_uid"]).reset_index(drop=True)
    paths = named["scan_uid"].map(scans.set_index("scan_uid")["path"])
    on_disk = pd.Series([isinstance(p, str) and (root / p).is_file() for p in paths])
    if curation is None:
        verdict = pd.Series(["kept"] * len(named))
    else:
        by_path = curation.set_index("path")
        status, reason = paths.map(by_path["status"]), paths.map(by_path["reason"])
        verdict = status.where(status != "rejected", reason.fillna("")).fillna("not curated")
    ok = set(index.loc[index["status"] == "ok", "scan_uid"])
    failed = index[index["status"] != "ok"].set_index("scan_uid")["reason"]
    stage, reason = [], []
    for i, uid in enumerate(named["scan_uid"]):
        if not isinstance(paths[i], str):
            stage.append("not_in_table"), reason.append("no row in the scans table")
        elif not on_disk[i]:
            stage.append("missing_file"), reason.append(f"{paths[i]} is not a file")
        elif verdict[i] != "kept":
            stage.append("rejected"), reason.append(verdict[i])
        elif uid not in ok:
            why = f"preprocessing failed: {failed[uid]}" if uid in failed.index else "not in the cache"
            stage.append("not_cached"), reason.append(why)
        else:
            stage.append("cached"), reason.append("")
    return named.assign(path=paths.fillna(""), stage=stage, reason=reason)


def _counts(stages: pd.DataFrame) -> pd.DataFrame:
    """Per file: named / on_disk / kept / cached and the coverage fraction."""
    rank = stages["stage"].map(STAGES.index)
    table = stages.assign(
        named=1,
        on_disk=(rank >= STAGES.index("rejected")).astype(int),
        kept=(rank >= STAGES.index("not_cached")).astype(int),
        cached=(rank == STAGES.index("cached")).astype(int),
    ).groupby("file", sort=True)[list(COUNTS)].sum().reset_index()
    table["coverage"] = table["cached"] / table["named"]
    return table


def coverage_report(splits: pd.DataFrame, scans: pd.DataFrame, root: str | Path,
                    curation: pd.DataFrame | None, index: pd.DataFrame) -> Coverage:
    """Follow every scan the split files name through table, disk, curation and cache.

    Args:
        splits: rows of :func:`~neurossl.splits.files.read_splits` (the files a run uses).
        scans: the validated scans table; ``path`` relative to ``root``.
        root: the data root.
        curation: the curation report (``path, status, reason``), or None when not curated
            (then every file on disk counts as kept).
        index: the preprocessing cache's index (``scan_uid, status, reason``).
    Raises:
        SplitError: a scan under two subject IDs (see :func:`check_subjects`).
    """
    check_subjects(splits, scans)
    stages = _stages(splits, scans, Path(root), curation, index)
    return Coverage(_counts(stages), stages)


def _why(stages: pd.DataFrame) -> str:
    """``3 not_in_table (e.g. I1), 1 rejected: file_too_small`` for one file's unusable scans."""
    lost = stages[stages["stage"] != "cached"]
    lost = lost.assign(order=lost["stage"].map(STAGES.index)).sort_values(["order", "reason", "scan_uid"])
    parts = []
    for (_, stage, reason), rows in lost.groupby(["order", "stage", "reason"], sort=False):
        label = reason if stage in ("rejected", "not_cached") else stage
        parts.append(f"{len(rows)} {label} (e.g. {', '.join(rows['scan_uid'].head(3))})")
    return "; ".join(parts)


def check_coverage(coverage: Coverage, min_coverage: float) -> None:
    """Raise :class:`CoverageError` naming every file whose coverage is below ``min_coverage``."""
    low = coverage.table[coverage.table["coverage"] < min_coverage]
    if low.empty:
        return
    lines = [
        f"{row.file}: {row.cached} of {row.named} scans usable ({row.coverage:.1%}): "
        + _why(coverage.scans[coverage.scans["file"] == row.file])
        for row in low.itertuples(index=False)
    ]
    raise CoverageError(
        f"refusing to start: {len(low)} split file(s) below the minimum coverage {min_coverage:.0%} "
        "(lower it with --min-coverage, or add the missing scans):\n  " + "\n  ".join(lines)
    )


def format_coverage(coverage: Coverage) -> str:
    """The per-file counts as an aligned text table with a total line."""
    table = coverage.table
    header = ["file", *COUNTS, "coverage"]
    rows = [[r.file, *(str(getattr(r, c)) for c in COUNTS), f"{r.coverage:.1%}"] for r in table.itertuples()]
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [header, *rows]]
    return "\n".join(lines)


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    # every torchrun rank writes the same content; os.replace keeps the file whole
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def write_coverage(coverage: Coverage, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``coverage.csv`` (per file) and ``coverage_missing.csv`` (every unusable scan)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report, missing = out_dir / REPORT_FILE, out_dir / MISSING_FILE
    _atomic_csv(coverage.table.round({"coverage": 4}), report)
    lost = coverage.scans[coverage.scans["stage"] != "cached"]
    _atomic_csv(lost[["file", "subject_id", "scan_uid", "path", "stage", "reason"]], missing)
    return report, missing


def pretrain_files(splits: pd.DataFrame, datasets: tuple[str, ...] = ()) -> pd.DataFrame:
    """The pretraining files' rows, of ``datasets`` only when given (a run's ``train.datasets``)."""
    rows = splits[splits["partition"] == "pretrain"]
    return rows[rows["dataset"].isin(datasets)] if datasets else rows


def task_files(splits: pd.DataFrame, keys: list[tuple[str, str | None]]) -> pd.DataFrame:
    """The downstream files' rows of each ``(dataset, split task)``; task None: files without one."""
    down = splits[splits["partition"] != "pretrain"]
    chosen = pd.Series(False, index=down.index)
    for dataset, task in keys:
        same_task = down["task"].isna() if task is None else down["task"] == task
        chosen |= (down["dataset"] == dataset) & same_task
    return down[chosen]


def split_coverage(splits_dir: str | Path, scans_table: str | Path, cache_dir: str | Path,
                   curation: str | Path | None = None, root: str | Path | None = None,
                   select=None) -> Coverage:
    """:func:`coverage_report` from files: the split folder (``select(splits)`` picks the files a
    run uses), the scans table, the cache and the curation report; ``root`` defaults to the
    scans table's folder."""
    splits = read_splits(splits_dir)
    if select is not None:
        splits = select(splits)
    if splits.empty:
        raise SplitError(f"{splits_dir}: none of its split files is used by this run")
    scans = read_scans_table(scans_table)
    report = read_report(curation) if curation is not None else None
    root = Path(root) if root is not None else Path(scans_table).parent
    return coverage_report(splits, scans, root, report, read_index(cache_dir))
