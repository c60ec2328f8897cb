"""The scans table (``scans.tsv``): the one contract between a user's data and every stage.

Every stage that needs to know what a scan is (preprocessing, splits, coverage, evaluation)
reads this table, and every builder (the demo cohort, ``neurossl scans bids``, ``neurossl scans
pattern``) writes it. This module is the one place that says what it holds:

- :data:`COLUMNS`: each column's name, whether it is required, its type, its allowed values
  and its meaning (``neurossl scans columns`` prints them);
- :func:`validate_scans`: every problem found, each naming the line, the column and the value;
- :func:`read_scans_table` / :func:`write_scans_table`: the only reader and writer.

The table is tab-separated, UTF-8, one row per scan, with a header. Paths are relative to the
data root (the folder given to ``neurossl curate`` / ``preprocess``), POSIX-style. Columns not
listed here are kept as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

# Modality names follow the BIDS anatomical suffixes; T1c (contrast-enhanced T1), ADC and DWI are
# UCSF-PDGM's other series (its released splits list them); CT is the FM-CT head-CT input.
# Pretraining and evaluation use the ones in train.scan_modalities.
MODALITIES = ("T1w", "T2w", "FLAIR", "PDw", "T2starw", "T1c", "ADC", "DWI", "CT")
# Class labels the downstream tasks use (neurossl.evaluate.tasks maps them to class ids);
# a user's own label values are mapped to these when the table is built (--map).
LABELS = ("NC", "MCI", "AD", "G2", "G3", "G4", "TD", "ASD", "ICH", "NOICH")
SEXES = ("M", "F")
# Dataset names are the split files' prefixes (adni_pretrain_ids.csv), hence no "_".
DATASET_NAME = re.compile(r"^[a-z0-9]+$")
NIFTI_NAME = re.compile(r"\.nii(\.gz)?$")
MAX_AGE = 120.0
MAX_SHOWN = 20  # problems listed in one error message; the count says how many more


@dataclass(frozen=True)
class Column:
    """One column of the contract.

    Attributes:
        name: header name.
        kind: ``id`` (non-blank text), ``text``, ``dataset``, ``choice``, ``number`` or ``path``.
        required: the header must carry it.
        blank_ok: an empty cell is allowed (it means "unknown" / "unlabelled").
        choices: allowed values of a ``choice`` column.
        doc: what it means, for users (printed by ``neurossl scans columns``).
    """

    name: str
    kind: str
    required: bool
    blank_ok: bool
    doc: str
    choices: tuple[str, ...] = ()


COLUMNS: tuple[Column, ...] = (
    Column("scan_uid", "id", True, False,
           "unique scan ID, the split files' scan_uid (ADNI/NACC image ID I328546, OASIS-3 "
           "OAS30001_d0129_T1w, UCSF-PDGM-0018_T1); unique over the whole table"),
    Column("subject_id", "id", True, False,
           "subject ID, the split files' subject_id (ADNI 002_S_0295); one dataset per subject"),
    Column("session", "text", True, True, "visit / session (bl, m06, ses-01, d0129); blank if unknown"),
    Column("dataset", "dataset", True, False,
           "dataset name, the split files' prefix: lower-case letters and digits (adni, scan, "
           "oasis3, ucsf, abide, ixi, ...)"),
    Column("modality", "choice", True, False, "contrast, BIDS suffix", MODALITIES),
    Column("label", "choice", True, True,
           "diagnostic class used by the tasks; blank = unlabelled (pretraining only)", LABELS),
    Column("age", "number", True, True, f"age in years at the scan, 0-{MAX_AGE:g}; blank if unknown"),
    Column("path", "path", True, False,
           "the NIfTI file, relative to the data root, POSIX separators, .nii or .nii.gz"),
    Column("sex", "choice", False, True, "M or F; blank if unknown", SEXES),
    Column("mask_path", "path", False, True,
           "brain mask (FSL BET's *_mask.nii.gz), relative to the data root; blank: none given"),
    Column("spacing", "text", False, True, "voxel spacing in mm as written (2x2x2), informative"),
    Column("orientation", "text", False, True, "stored axis code (LPS), informative"),
    Column("shape", "text", False, True, "stored shape (96x114x96), informative"),
)
BY_NAME = {c.name: c for c in COLUMNS}
REQUIRED = tuple(c.name for c in COLUMNS if c.required)


class ScansTableError(ValueError):
    """The scans table breaks the contract; the message names file, line, column and value."""


def _cell_problem(column: Column, value: str) -> str | None:
    """Why ``value`` is not allowed in ``column``, or None when it is."""
    if value == "":
        return None if column.blank_ok else "is blank"
    if column.kind == "id" and value != value.strip():
        return f"'{value}' has leading or trailing spaces"
    if column.kind == "dataset" and not DATASET_NAME.match(value):
        return f"'{value}' must be lower-case letters and digits only (it prefixes split file names)"
    if column.kind == "choice" and value not in column.choices:
        return f"'{value}' is not one of {', '.join(column.choices)}"
    if column.kind == "number":
        try:
            number = float(value)
        except ValueError:
            return f"'{value}' is not a number"
        if not 0.0 <= number <= MAX_AGE:
            return f"{value} is outside 0-{MAX_AGE:g}"
    if column.kind == "path":
        if "\\" in value or PurePosixPath(value).is_absolute() or ".." in PurePosixPath(value).parts:
            return f"'{value}' must be a relative POSIX path inside the data root"
        if column.name == "path" and not NIFTI_NAME.search(value):
            return f"'{value}' is not a .nii or .nii.gz file"
    return None


def _line(index: int) -> int:
    """File line of data row ``index`` (line 1 is the header)."""
    return int(index) + 2


def _cell_problems(table: pd.DataFrame) -> list[str]:
    problems = []
    present = [BY_NAME[c] for c in table.columns if c in BY_NAME]
    for index, row in table.iterrows():
        for column in present:
            problem = _cell_problem(column, row[column.name])
            if problem:
                uid = row.get("scan_uid", "")
                problems.append(f"line {_line(index)} (scan_uid '{uid}'), column '{column.name}': {problem}")
    return problems


def _duplicate_problems(table: pd.DataFrame, column: str) -> list[str]:
    values = table[column]
    repeated = values[values.duplicated(keep=False) & (values != "")]
    return [
        f"column '{column}': '{value}' appears on lines {', '.join(str(_line(i)) for i in rows.index)}"
        for value, rows in repeated.groupby(repeated, sort=True)
    ]


def _subject_problems(table: pd.DataFrame) -> list[str]:
    """A subject in two datasets could reach pretraining through one and a test set through another."""
    spread = table.groupby("subject_id")["dataset"].unique()
    return [
        f"column 'dataset': subject '{subject}' is in several datasets ({', '.join(sorted(names))})"
        for subject, names in spread.items()
        if len(names) > 1
    ]


def validate_scans(table: pd.DataFrame, source: str = "scans table") -> pd.DataFrame:
    """Check a table read as text against :data:`COLUMNS`; return it with ``age`` as float.

    Raises:
        ScansTableError: listing every problem (missing columns first; then per cell the file
            line, the scan_uid, the column and the value; then duplicated ``scan_uid`` / ``path``
            and subjects in two datasets).
    """
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ScansTableError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"the header is: {', '.join(map(str, table.columns))}"
        )
    table = table.fillna("").astype(str)
    problems = _cell_problems(table)
    problems += _duplicate_problems(table, "scan_uid") + _duplicate_problems(table, "path")
    problems += _subject_problems(table)
    if problems:
        more = f"\n  ... and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
        raise ScansTableError(
            f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:MAX_SHOWN]) + more
        )
    return table.assign(age=pd.to_numeric(table["age"].replace("", None), errors="coerce"))


def read_scans_table(path: str | Path) -> pd.DataFrame:
    """Read and validate a ``scans.tsv``; every column is text except ``age`` (float, NaN if blank).

    Raises:
        FileNotFoundError: no such file.
        ScansTableError: the table breaks the contract (see :func:`validate_scans`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scans table not found: {path}")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise ScansTableError(f"{path}: empty file, expected a header line") from exc
    except pd.errors.ParserError as exc:
        raise ScansTableError(f"{path}: not a tab-separated table ({exc})") from exc
    return validate_scans(table, str(path))


def write_scans_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Validate and write ``table`` as TSV: contract columns first, in contract order."""
    text = table.copy()
    if "age" in text:
        text["age"] = [("" if pd.isna(a) or a == "" else f"{float(a):g}") for a in text["age"]]
    validate_scans(text, str(path))
    order = [c.name for c in COLUMNS if c.name in text.columns]
    order += [c for c in text.columns if c not in BY_NAME]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    text[order].to_csv(partial, sep="\t", index=False, lineterminator="\n")
    partial.replace(path)
    return path


def describe_columns() -> str:
    """The contract as text, one column per line (``neurossl scans columns``)."""
    lines = ["column        required  blank ok  meaning"]
    for c in COLUMNS:
        allowed = f" [{', '.join(c.choices)}]" if c.choices else ""
        lines.append(f"{c.name:<13} {'yes' if c.required else 'no':<9} "
                     f"{'yes' if c.blank_ok else 'no':<9} {c.doc}{allowed}")
    return "\n".join(lines)
