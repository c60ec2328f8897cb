"""What every scans-table builder returns and writes: the table plus what did not match.

Builders (:mod:`~neurossl.data.scans_bids`, :mod:`~neurossl.data.scans_pattern`, then
:mod:`~neurossl.data.scans_labels`) never drop an input silently: a file whose name gives no
IDs, a file in an excluded folder, a scan without a label row, a label row without a scan, each
becomes a row of ``unmatched`` (``source, item, reason``), written beside the table as
``<table stem>_unmatched.tsv`` and summarised on the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neurossl.data.curate import find_files
from neurossl.config import CurationConfig
from neurossl.data.scans_table import write_scans_table

UNMATCHED_COLUMNS = ("source", "item", "reason")


@dataclass
class BuildResult:
    """A scans table (contract columns, text) and the inputs that did not make it in."""

    table: pd.DataFrame
    unmatched: list[dict] = field(default_factory=list)

    def note(self, source: str, item: str, reason: str) -> None:
        self.unmatched.append({"source": source, "item": item, "reason": reason})

    def unmatched_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.unmatched, columns=list(UNMATCHED_COLUMNS))


def nifti_files(root: Path) -> list[str]:
    """Scan files under ``root`` (brain masks and sidecars excluded), relative POSIX paths, sorted."""
    found = find_files(root, CurationConfig())
    return sorted(p.relative_to(root).as_posix() for p in found.scans)


def keep_first_uid(result: BuildResult, source: str) -> None:
    """Keep the first row (by path) of each scan_uid; note the others (the same image downloaded
    twice is common, and two rows of one scan_uid would break the contract)."""
    table = result.table.sort_values("path", ignore_index=True)
    repeated = table["scan_uid"].duplicated()
    first = table[~repeated].set_index("scan_uid")["path"]
    for row in table[repeated].itertuples(index=False):
        result.note(source, row.path, f"duplicate scan_uid {row.scan_uid}; kept {first[row.scan_uid]}")
    result.table = table[~repeated].reset_index(drop=True)


def write_build(result: BuildResult, out: str | Path) -> tuple[Path, Path]:
    """Validate and write the table and ``<stem>_unmatched.tsv`` beside it; returns both paths."""
    table_path = write_scans_table(result.table, out)
    unmatched_path = table_path.with_name(f"{table_path.stem}_unmatched.tsv")
    result.unmatched_table().to_csv(unmatched_path, sep="\t", index=False, lineterminator="\n")
    return table_path, unmatched_path


def format_build(result: BuildResult) -> str:
    """Counts of the table (per dataset, modality, label) and of the unmatched inputs by reason."""
    table = result.table
    lines = [f"{len(table)} scans of {table['subject_id'].nunique()} subjects"]
    labels = table["label"].replace("", "(unlabelled)")
    for (dataset, label), n in table.assign(label=labels).groupby(["dataset", "label"]).size().items():
        lines.append(f"  {dataset:<10} {label:<14} {n:>6}")
    unmatched = result.unmatched_table()
    lines.append(f"{len(unmatched)} input(s) not matched")
    kinds = unmatched["reason"].str.replace(r"(duplicate scan_uid).*", r"\1", regex=True)
    for (source, reason), n in unmatched.assign(reason=kinds).groupby(["source", "reason"]).size().items():
        lines.append(f"  {source}: {reason}: {n}")
    return "\n".join(lines)
