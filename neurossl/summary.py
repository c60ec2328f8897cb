"""A printable account of what the data stages of a run folder produced.

``make demo`` ends with it, so a newcomer sees the cohort, the curation outcome, the cache and the
split audit in one screen.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neurossl.data.catalog import SCANS_TABLE, read_scans, read_table


def _section(title: str, body: str) -> str:
    return f"\n## {title}\n\n{body.rstrip()}\n"


def cohort_table(scans: pd.DataFrame) -> pd.DataFrame:
    """Subjects and scans per dataset and label, plus modalities and orientations per dataset."""
    labelled = scans.assign(label=scans["label"].replace("", "-"))
    counts = labelled.groupby(["dataset", "label"]).agg(
        subjects=("subject_id", "nunique"), scans=("scan_uid", "count")
    )
    return counts.reset_index()


def folder_size_mb(path: Path) -> float:
    """Total size of the files below ``path`` in MB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def summarize_run(run_dir: str | Path, splits_dir: str | Path | None = None) -> str:
    """Markdown summary of ``run_dir``'s ``cohort/``, ``curation.csv``, ``cache/`` and a split audit."""
    from neurossl.data.curate import summarize_report
    from neurossl.splits.audit import audit_splits, format_audit

    run_dir = Path(run_dir)
    parts = [f"# neurossl data summary: {run_dir}"]
    cohort = run_dir / "cohort"
    if (cohort / SCANS_TABLE).is_file():
        scans = read_scans(cohort)
        body = cohort_table(scans).to_markdown(index=False)
        mods = pd.crosstab(scans["dataset"], scans["modality"]).to_markdown()
        orient = pd.crosstab(scans["dataset"], scans["orientation"]).to_markdown()
        parts.append(_section("Cohort", f"{body}\n\nModalities\n\n{mods}\n\nStored orientations\n\n{orient}"))
    report = run_dir / "curation.csv"
    if report.is_file():
        parts.append(_section("Curation", summarize_report(read_table(report, sep=","))))
    cache = run_dir / "cache"
    if (cache / "index.csv").is_file():
        index = read_table(cache / "index.csv", sep=",")
        parts.append(_section("Cache", f"{len(index)} volumes, {folder_size_mb(cache):.1f} MB in {cache}"))
    if splits_dir is not None:
        parts.append(_section("Splits", format_audit(audit_splits(splits_dir))))
    return "\n".join(parts)
