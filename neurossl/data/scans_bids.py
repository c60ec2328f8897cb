"""Scans table from a BIDS tree: entities in file names, ``participants.tsv``, ``*_scans.tsv``.

A scan is an image ``sub-<label>[/ses-<label>]/anat/sub-<label>[_ses-<label>][_<key>-<value>...]
_<suffix>.nii[.gz]`` whose suffix is a modality of the contract (T1w, T2w, FLAIR, PDw,
T2starw; OASIS-3's ``T2star`` counts as T2starw). Its IDs:

- ``subject_id`` / ``session``: the ``sub`` / ``ses`` values without their keys;
- ``scan_uid``: the file name's stem without the ``sub-`` / ``ses-`` keys, which is how the paper's
  release names OASIS-3 scans (``sub-OAS30001_ses-d0129_run-01_T1w`` -> ``OAS30001_d0129_run-01_T1w``).

Metadata: ``participants.tsv`` (``participant_id``, ``age``, ``sex`` and the label column named
by the caller); a ``*_scans.tsv`` row (``filename`` relative to its folder) overrides age and
label per scan. Images in other datatype folders (``fmap``, ``func``, ``dwi``, ``swi``, ``perf``,
...) or with another suffix (``angio``, ``T1map``, ...) are noted as unmatched, not dropped
silently.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pandas as pd

from neurossl.data.io import mask_beside
from neurossl.data.scans_build import BuildResult, nifti_files
from neurossl.data.scans_labels import map_values
from neurossl.data.scans_table import MODALITIES

ENTITY = re.compile(r"^(?P<key>[a-zA-Z0-9]+)-(?P<value>[a-zA-Z0-9]+)$")
SCAN_DATATYPE = "anat"
SOURCE = "bids"
SEX_CODES = {"m": "M", "male": "M", "f": "F", "female": "F"}
# Suffixes some BIDS conversions write for a contract modality (OASIS-3's T2*-weighted scans)
SUFFIX_ALIASES = {"T2star": "T2starw"}


def parse_bids_name(name: str) -> tuple[dict[str, str], str]:
    """``sub-01_ses-02_run-1_T1w.nii.gz`` -> (``{"sub": "01", "ses": "02", "run": "1"}``, ``"T1w"``).

    Raises:
        ValueError: the name is not ``key-value_..._suffix.nii[.gz]`` starting with ``sub-``.
    """
    stem = re.sub(r"\.nii(\.gz)?$", "", name)
    *pairs, suffix = stem.split("_")
    entities = {}
    for pair in pairs:
        match = ENTITY.match(pair)
        if match is None:
            raise ValueError(f"'{pair}' is not a BIDS key-value entity")
        entities[match["key"]] = match["value"]
    if "sub" not in entities or not pairs or stem.split("_")[0] != f"sub-{entities['sub']}":
        raise ValueError("a BIDS file name starts with sub-<label>")
    return entities, suffix


def bids_scan_uid(name: str) -> str:
    """The release's scan_uid of a BIDS file name: stem without the ``sub-`` / ``ses-`` keys."""
    stem = re.sub(r"\.nii(\.gz)?$", "", name)
    return re.sub(r"(^|_)(sub|ses)-", r"\1", stem)


def _labels(values: pd.Series, mapping: dict[str, str] | None, where: str) -> pd.Series:
    """Label values mapped to class labels (as they are when no mapping is given)."""
    return map_values(values, mapping, where) if mapping else values.str.strip()


def _participants(root: Path, label_column: str | None, mapping: dict[str, str] | None) -> pd.DataFrame:
    """``participants.tsv`` indexed by subject (without ``sub-``): ``age, sex, label`` as text."""
    path = root / "participants.tsv"
    if not path.is_file():
        if label_column:
            raise FileNotFoundError(f"{path}: not found, but --label-column {label_column} was given")
        return pd.DataFrame(columns=["age", "sex", "label"])
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    wanted = ["participant_id"] + ([label_column] if label_column else [])
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; header: {', '.join(table.columns)}")
    out = pd.DataFrame(index=table["participant_id"].str.removeprefix("sub-"))
    out["age"] = table["age"].to_numpy() if "age" in table else ""
    sex = table["sex"].str.strip().str.lower().map(SEX_CODES).fillna("") if "sex" in table else ""
    out["sex"] = sex.to_numpy() if "sex" in table else ""
    where = f"{path}, column '{label_column}'"
    out["label"] = _labels(table[label_column], mapping, where).to_numpy() if label_column else ""
    return out


def _scans_tsv_rows(root: Path, label_column: str | None, mapping: dict[str, str] | None) -> dict[str, dict]:
    """Per-scan metadata from every ``*_scans.tsv``: relative image path -> {age, label}."""
    rows = {}
    for path in sorted(root.glob("sub-*/**/*_scans.tsv")):
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if "filename" not in table.columns:
            raise ValueError(f"{path}: a BIDS scans file needs a 'filename' column; header: {', '.join(table.columns)}")
        folder = path.parent.relative_to(root).as_posix()
        if label_column in table.columns:
            table[label_column] = _labels(table[label_column], mapping, f"{path}, column '{label_column}'")
        for row in table.to_dict("records"):
            extra = {k: row[k] for k in ("age",) if row.get(k, "") != ""}
            if label_column and row.get(label_column, "") != "":
                extra["label"] = row[label_column]
            rows[f"{folder}/{row['filename']}"] = extra
    return rows


def _scan_row(path: str, root: Path, dataset: str, people: pd.DataFrame, per_scan: dict) -> dict:
    """The table row of one image (raises ValueError with the reason it is not a scan)."""
    parts = PurePosixPath(path)
    if parts.parent.name != SCAN_DATATYPE:
        raise ValueError(f"datatype folder '{parts.parent.name}' is not {SCAN_DATATYPE}")
    entities, suffix = parse_bids_name(parts.name)
    suffix = SUFFIX_ALIASES.get(suffix, suffix)
    if suffix not in MODALITIES:
        raise ValueError(f"suffix '{suffix}' is not a modality of the contract ({', '.join(MODALITIES)})")
    subject = entities["sub"]
    person = people.loc[subject].to_dict() if subject in people.index else {"age": "", "sex": "", "label": ""}
    row = {"scan_uid": bids_scan_uid(parts.name), "subject_id": subject, "session": entities.get("ses", ""),
           "dataset": dataset, "modality": suffix, **person, "path": path, "mask_path": mask_beside(root, path)}
    return row | per_scan.get(path, {})


def scans_from_bids(root: str | Path, dataset: str, label_column: str | None = None,
                    mapping: dict[str, str] | None = None) -> BuildResult:
    """One row per anatomical image of a BIDS tree (see the module docstring).

    ``label_column`` names the label column of ``participants.tsv`` / ``*_scans.tsv``;
    ``mapping`` maps its values to class labels (an unmapped value is an error naming the line).

    Raises:
        FileNotFoundError / ValueError: no usable image, or a participants / scans file without
            the columns it needs (naming the file).
    """
    root = Path(root)
    people = _participants(root, label_column, mapping)
    per_scan = _scans_tsv_rows(root, label_column, mapping)
    rows, result = [], BuildResult(pd.DataFrame())
    for path in nifti_files(root):
        try:
            rows.append(_scan_row(path, root, dataset, people, per_scan))
        except ValueError as exc:
            result.note(SOURCE, path, str(exc))
    if not rows:
        raise FileNotFoundError(f"{root}: no anatomical BIDS image ({len(result.unmatched)} files looked at)")
    subjects = {r["subject_id"] for r in rows}
    for subject in sorted(set(people.index) - subjects):
        result.note(SOURCE, f"participants.tsv sub-{subject}", "participant without an anatomical image")
    result.table = pd.DataFrame(rows)
    return result
