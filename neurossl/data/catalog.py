"""Which scans a stage works on: the cohort's ``scans.tsv`` joined with a curation report.

Real datasets rarely come with our table, so a folder without ``scans.tsv`` is described from the
curation report alone (scan id = file name, subject unknown until a user's table supplies it).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neurossl.data.io import mask_beside
from neurossl.data.scans_table import read_scans_table

SCANS_TABLE = "scans.tsv"


def read_table(path: str | Path, sep: str = "\t") -> pd.DataFrame:
    """Read a TSV/CSV table with every column as text (labels such as ``NC`` stay strings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def read_scans(root: str | Path, table: str | Path | None = None) -> pd.DataFrame:
    """The scans table (``root/scans.tsv`` unless ``table`` is given), validated against the
    contract of :mod:`neurossl.data.scans_table`, with ``age`` as a number."""
    return read_scans_table(table if table is not None else Path(root) / SCANS_TABLE)


def scan_entries(root: str | Path, curation_report: str | Path | None = None,
                 table: str | Path | None = None) -> pd.DataFrame:
    """Scans to preprocess: one row per kept scan with ``scan_uid, path, mask_path`` and metadata.

    Args:
        root: data folder; paths in the result are relative to it.
        curation_report: CSV from ``neurossl curate``; when given, only ``kept`` files remain.
        table: the scans table when it is not ``root/scans.tsv``.
    Raises:
        FileNotFoundError: when neither ``scans.tsv`` nor a curation report describes the folder.
        ValueError: when the report keeps no file.
    """
    root = Path(root)
    has_table = table is not None or (root / SCANS_TABLE).is_file()
    if not has_table and curation_report is None:
        raise FileNotFoundError(f"{root} has no {SCANS_TABLE}; pass --curation REPORT to list its scans")
    if curation_report is None:
        return read_scans(root, table)
    report = read_table(curation_report, sep=",")
    kept = report[report["status"] == "kept"]
    if kept.empty:
        raise ValueError(f"{curation_report}: curation kept no file; nothing to preprocess")
    if has_table:
        scans = read_scans(root, table)
        return scans[scans["path"].isin(set(kept["path"]))].reset_index(drop=True)
    entries = pd.DataFrame({"path": kept["path"].to_numpy()})
    entries["scan_uid"] = [Path(p).name.split(".nii")[0] for p in entries["path"]]
    entries["mask_path"] = [mask_beside(root, p) for p in entries["path"]]
    return entries
