"""Join a user's label table (CSV) to a scans table: diagnosis labels and ages.

The label table is keyed by image ID (``--on scan_uid=IMAGEUID``, ADNI's IDA collection CSV
``Image Data ID``) or by subject and visit (``--on subject_id=PTID --on session=VISCODE``,
ADNIMERGE). Its label values are mapped to the tasks' classes (``--map CN=NC --map Dementia=AD``;
``--map EMCI=`` maps a value to unlabelled). A label value without a mapping is an error naming
the line, so a typo never turns a patient into "unlabelled". Scans without a row and rows
without a scan are reported as unmatched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurossl.data.scans_build import BuildResult
from neurossl.data.scans_table import LABELS

KEYS = ("scan_uid", "subject_id", "session")
SOURCE = "labels"


@dataclass(frozen=True)
class LabelSpec:
    """How to read a label table.

    Attributes:
        path: the CSV (or ``.tsv``).
        on: ``(scans column, label-table column)`` pairs forming the join key.
        label: the column holding the label values.
        mapping: label value -> class label of :data:`~neurossl.data.scans_table.LABELS`
            ("" = unlabelled).
        age: the column holding the age in years, or None.
    """

    path: Path
    on: tuple[tuple[str, str], ...]
    label: str
    mapping: tuple[tuple[str, str], ...]
    age: str | None = None


def parse_pairs(items: list[str], what: str) -> tuple[tuple[str, str], ...]:
    """``["CN=NC", "EMCI="]`` -> pairs; errors name the option and the item."""
    pairs = []
    for item in items:
        if "=" not in item:
            raise ValueError(f"{what} '{item}' is not of the form A=B")
        left, right = item.split("=", 1)
        pairs.append((left.strip(), right.strip()))
    return tuple(pairs)


def _check_spec(spec: LabelSpec, header: list[str]) -> None:
    for ours, _ in spec.on:
        if ours not in KEYS:
            raise ValueError(f"--on {ours}=...: the scans side of a key must be one of {', '.join(KEYS)}")
    wanted = [theirs for _, theirs in spec.on] + [spec.label] + ([spec.age] if spec.age else [])
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"{spec.path}: missing column(s) {', '.join(missing)}; "
                         f"the header is: {', '.join(header)}")
    bad = sorted({to for _, to in spec.mapping if to and to not in LABELS})
    if bad:
        raise ValueError(f"--map targets {', '.join(bad)} are not class labels ({', '.join(LABELS)})")


def map_values(values: pd.Series, mapping: dict[str, str], where: str) -> pd.Series:
    """Map label values (index = data row, line = index + 2) to class labels; blank stays blank.

    Raises:
        ValueError: naming ``where`` and the lines of values without a mapping.
    """
    values = values.str.strip()
    unmapped = values[(values != "") & ~values.isin(mapping)]
    if not unmapped.empty:
        lines = ", ".join(f"line {i + 2} '{v}'" for i, v in unmapped.head(5).items())
        raise ValueError(f"{where}: {len(unmapped)} label value(s) without a --map entry ({lines}); "
                         f"map each value to one of {', '.join(LABELS)} or to nothing (VALUE=) "
                         "for unlabelled")
    return values.map(mapping).fillna("")


def read_labels(spec: LabelSpec) -> pd.DataFrame:
    """The label table as ``<scans key columns>, label, age`` (text), one row per key.

    Raises:
        ValueError: naming the file, line and column of a missing column, an unmapped label
            value or a key given twice.
    """
    sep = "\t" if spec.path.suffix == ".tsv" else ","
    raw = pd.read_csv(spec.path, sep=sep, dtype=str, keep_default_na=False)
    _check_spec(spec, list(raw.columns))
    table = pd.DataFrame({ours: raw[theirs].str.strip() for ours, theirs in spec.on})
    keys = list(table.columns)
    table["label"] = map_values(raw[spec.label], dict(spec.mapping), f"{spec.path}, column '{spec.label}'")
    table["age"] = raw[spec.age].str.strip() if spec.age else ""
    repeated = table[table.duplicated(keys, keep=False)]
    if not repeated.empty:
        first = repeated.groupby(keys).head(2)
        raise ValueError(f"{spec.path}: key ({', '.join(t for _, t in spec.on)}) not unique, e.g. "
                         + " and ".join(f"line {i + 2}" for i in first.index[:2]))
    return table


def join_labels(result: BuildResult, spec: LabelSpec) -> BuildResult:
    """Set ``label`` (and ``age``) of each scan from its label-table row; note non-matches."""
    labels = read_labels(spec)
    keys = [ours for ours, _ in spec.on]
    scans = result.table.drop(columns=["label"] + (["age"] if spec.age else []))
    joined = scans.merge(labels, on=keys, how="left", indicator=True)
    for row in joined[joined["_merge"] == "left_only"].itertuples(index=False):
        result.note(SOURCE, row.path, f"no row in {spec.path.name} for "
                    + ", ".join(f"{k}={getattr(row, k)}" for k in keys) + " (left unlabelled)")
    used = labels.merge(scans[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    for row in used[used["_merge"] == "left_only"].itertuples(index=False):
        key = ", ".join(f"{k}={getattr(row, k)}" for k in keys)
        result.note(SOURCE, key, f"row of {spec.path.name} matches no scan")
    fill = {"label": ""} | ({"age": ""} if spec.age else {})
    result.table = joined.drop(columns="_merge").fillna(fill)
    return result
