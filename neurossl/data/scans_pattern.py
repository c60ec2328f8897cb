"""Scans table from a plain folder: IDs taken from each file's path by a regular expression.

For downloads that are not BIDS, such as ADNI's from LONI IDA, whose files look like
``ADNI/002_S_0295/MPRAGE/2006-04-18_08_20_30.0/S13408/ADNI_002_S_0295_MR_MPRAGE_br_raw_..._I118671.nii``.
The pattern is searched in the path relative to the root (so folder names can be used) and
names its parts with groups: ``scan_uid`` and ``subject_id`` are required; ``session`` and
``modality`` are optional. :data:`ADNI_PATTERN` is the one for ADNI / NACC-SCAN / PPMI image IDs.

The modality comes from the ``modality`` group, else from ``contrasts``: ``(keyword, modality)``
pairs tried in order, the first keyword found in the file name (case-insensitive) wins, as the
official release cleans SCAN's contrasts (``FLAIR`` before ``T2``, since ``T2_FLAIR`` holds
both); a file that matches none is reported, not guessed. Without either, every file gets the
``modality`` argument.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from neurossl.data.io import mask_beside
from neurossl.data.scans_build import BuildResult, keep_first_uid, nifti_files

# ADNI / PPMI (LONI IDA): ..._<subject 002_S_0295>_..._I<image id>.nii[.gz]
ADNI_PATTERN = r"(?P<subject_id>\d{3}_S_\d{4})_.*_(?P<scan_uid>I\d+)\.nii(\.gz)?$"
REQUIRED_GROUPS = ("scan_uid", "subject_id")
SOURCE = "files"


def compile_pattern(pattern: str) -> re.Pattern:
    """Compile ``pattern``; it must name the groups ``scan_uid`` and ``subject_id``."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"--pattern '{pattern}' is not a regular expression ({exc})") from exc
    missing = [g for g in REQUIRED_GROUPS if g not in regex.groupindex]
    if missing:
        raise ValueError(f"--pattern '{pattern}' lacks the named group(s) "
                         + ", ".join(f"(?P<{g}>...)" for g in missing))
    return regex


def modality_of(name: str, contrasts: tuple[tuple[str, str], ...]) -> str | None:
    """The modality of the first ``(keyword, modality)`` whose keyword is in ``name``, or None."""
    lowered = name.lower()
    return next((modality for keyword, modality in contrasts if keyword.lower() in lowered), None)


def scans_from_pattern(root: str | Path, pattern: str, dataset: str, modality: str = "T1w",
                       contrasts: tuple[tuple[str, str], ...] = ()) -> BuildResult:
    """One row per NIfTI under ``root`` whose relative path matches ``pattern``.

    Files that do not match (or, with ``contrasts``, whose name holds no keyword) are noted as
    unmatched, never dropped silently; a scan_uid found twice keeps its first path and notes the
    others.
    """
    root = Path(root)
    regex = compile_pattern(pattern)
    rows, result = [], BuildResult(pd.DataFrame())
    for path in nifti_files(root):
        match = regex.search(path)
        if match is None:
            result.note(SOURCE, path, "path does not match --pattern")
            continue
        groups = match.groupdict()
        kind = groups.get("modality") or (modality_of(Path(path).name, contrasts) if contrasts else modality)
        if kind is None:
            result.note(SOURCE, path, "no --contrast keyword in the file name")
            continue
        rows.append({
            "scan_uid": groups["scan_uid"], "subject_id": groups["subject_id"],
            "session": groups.get("session") or "", "dataset": dataset, "modality": kind,
            "label": "", "age": "", "path": path, "mask_path": mask_beside(root, path),
        })
    if not rows:
        raise ValueError(f"{root}: no NIfTI file's path matches --pattern '{pattern}' "
                         f"({len(result.unmatched)} files looked at)")
    result.table = pd.DataFrame(rows)
    keep_first_uid(result, SOURCE)
    return result
