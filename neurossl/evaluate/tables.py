"""Tidy downstream results and the paper's tables built from them.

One CSV row per (encoder, objective, task, mode, fold, seed, metric) with its value; every run
appends its rows, and the analysis reads them back: ``append_results`` -> ``read_results`` ->
``summarise`` (mean ± std over folds and seeds) -> ``paper_table`` -> ``write_table`` (CSV,
Markdown, LaTeX).
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

RESULT_COLUMNS = ("encoder", "objective", "task", "mode", "fold", "seed", "metric", "value")
SUMMARY_KEYS = ("encoder", "objective", "task", "mode", "metric")
MODE_ORDER = ("frozen", "finetune")
MISSING = "–"


def check_columns(columns, where: str) -> None:
    """Raise ValueError naming missing and extra columns unless they are ``RESULT_COLUMNS``."""
    missing = [c for c in RESULT_COLUMNS if c not in columns]
    extra = [c for c in columns if c not in RESULT_COLUMNS]
    if missing or extra:
        raise ValueError(
            f"{where}: missing columns {missing}, unexpected columns {extra}; "
            f"expected exactly {list(RESULT_COLUMNS)}"
        )


def append_results(path, rows) -> Path:
    """Append result rows (list of dicts or DataFrame) to the CSV at ``path``; return the path.

    The header is written only when the file is new or empty; an existing header must be
    ``RESULT_COLUMNS``. Columns are written in ``RESULT_COLUMNS`` order whatever their input order.
    """
    path = Path(path)
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty and frame.columns.empty:
        frame = pd.DataFrame(columns=list(RESULT_COLUMNS))
    check_columns(list(frame.columns), "append_results rows")
    is_new = not path.exists() or path.stat().st_size == 0
    if not is_new:
        check_columns(_csv_header(path), f"existing {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.loc[:, list(RESULT_COLUMNS)].to_csv(path, mode="a", header=is_new, index=False)
    return path


def _csv_header(path: Path) -> list[str]:
    """The first row of a CSV file."""
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def read_results(path) -> pd.DataFrame:
    """Read a results CSV written by ``append_results``; ``value`` as float.

    Text columns are kept verbatim (an empty objective stays "" rather than becoming nan, so that
    grouping does not drop it).
    """
    text = [c for c in RESULT_COLUMNS if c not in ("fold", "seed", "value")]
    frame = pd.read_csv(
        path,
        dtype={c: str for c in text},
        keep_default_na=False,
        na_values={"value": ["", "nan", "NaN"]},
    )
    check_columns(list(frame.columns), f"read_results {path}")
    return frame.astype({"value": float})


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; 0 for a single value) and n over folds and seeds.

    ``df``: result rows. Returns one row per (encoder, objective, task, mode, metric) in order of
    first appearance with columns ``SUMMARY_KEYS + (mean, std, n)``; n counts non-nan values.
    Warns when rows repeat a (..., fold, seed, metric) key, as appending a run twice does.
    """
    check_columns(list(df.columns), "summarise")
    _warn_duplicates(df)
    grouped = df.groupby(list(SUMMARY_KEYS), sort=False, dropna=False)["value"]
    summary = grouped.agg(mean="mean", std="std", n="count").reset_index()
    summary["std"] = summary["std"].where(summary["n"] > 1, 0.0)
    return summary


def _warn_duplicates(df: pd.DataFrame) -> None:
    """Warn when several rows share every key column; they would all be averaged."""
    keys = [c for c in RESULT_COLUMNS if c != "value"]
    repeated = df.duplicated(subset=keys, keep=False)
    if repeated.any():
        warnings.warn(
            f"{int(repeated.sum())} result rows repeat the same {keys} (a run appended twice?); "
            "all of them enter the mean",
            stacklevel=3,
        )


def paper_table(df: pd.DataFrame, metric="roc_auc", method_col="encoder", digits=3):
    """Paper table of ``metric``: rows = methods, columns = (mode, task), cells "mean ± std".

    A cell of a single result (one held-out split, one seed) shows the mean alone: it has no
    spread over folds, and its uncertainty is the bootstrap interval over test subjects.

    ``df``: result rows (summarised here) or the output of ``summarise``. Mode blocks come in the
    order frozen, finetune, then any other mode; methods and tasks in order of first appearance;
    a missing (method, mode, task) is "–". Several summary rows in one cell (e.g. two objectives
    of one encoder with ``method_col="encoder"``) raise ValueError.
    """
    summary = summarise(df) if "value" in df.columns else df
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no rows for metric {metric!r}; present: {summary['metric'].unique()}")
    keys = [method_col, "mode", "task"]
    if rows.duplicated(subset=keys).any():
        raise ValueError(f"several results per {keys} cell; filter df or choose another method_col")
    cells = {
        (row[method_col], row["mode"], row["task"]): _format_cell(row["mean"], row["std"], digits, row["n"])
        for _, row in rows.iterrows()
    }
    present = list(dict.fromkeys(rows["mode"]))
    modes = [m for m in MODE_ORDER if m in present] + [m for m in present if m not in MODE_ORDER]
    columns = pd.MultiIndex.from_product([modes, list(dict.fromkeys(rows["task"]))])
    columns = columns.set_names(["mode", "task"])
    methods = list(dict.fromkeys(rows[method_col]))
    body = [[cells.get((m, mode, task), MISSING) for mode, task in columns] for m in methods]
    return pd.DataFrame(body, index=pd.Index(methods, name=method_col), columns=columns)


def _format_cell(mean: float, std: float, digits: int, n: int = 2) -> str:
    """``"0.812 ± 0.034"``; ``"0.812"`` for a single result (``n == 1``); "–" when the mean is nan."""
    if np.isnan(mean):
        return MISSING
    if n == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def write_table(table: pd.DataFrame, stem, index: bool = True) -> list[Path]:
    """Write ``stem.csv``, ``stem.md`` and ``stem.tex`` (booktabs); return the three paths.

    Markdown has one header row, so (mode, task) columns become "mode / task" there. In LaTeX the
    text is escaped, "±" becomes ``$\\pm$`` and "–" becomes ``--`` so that it compiles without
    Unicode input encoding. ``index=False`` leaves the row index out of all three (plain tables
    whose index is only a row number).
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, tex_path = (stem.with_name(f"{stem.name}.{x}") for x in ("csv", "md", "tex"))
    table.to_csv(csv_path, encoding="utf-8", index=index)
    md_path.write_text(_flat_columns(table).to_markdown(index=index) + "\n", encoding="utf-8")
    tex_path.write_text(_to_latex(table, index), encoding="utf-8")
    return [csv_path, md_path, tex_path]


def _flat_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``table`` whose MultiIndex columns are joined into "level0 / level1" labels."""
    if not isinstance(table.columns, pd.MultiIndex):
        return table
    flat = table.copy()
    flat.columns = [" / ".join(map(str, col)) for col in table.columns]
    return flat


def _to_latex(table: pd.DataFrame, index: bool = True) -> str:
    """Booktabs LaTeX of ``table`` with centred multicolumn headers per mode block; the first
    column (the index, or the first data column without it) left-aligned."""
    latex = table.to_latex(
        index=index,
        escape=True,
        multicolumn=True,
        multicolumn_format="c",
        column_format="l" + "c" * (table.shape[1] - (0 if index else 1)),
    )
    # escaping first, then the maths: escape=True would mangle a literal "$\pm$" in the cells
    return latex.replace("±", r"$\pm$").replace("–", "--")


def write_tables(tables: Mapping[str, pd.DataFrame | None], folder, index: bool = True) -> list[Path]:
    """:func:`write_table` for each table as ``folder/<name>``; a None table (nothing to report
    for this run) is skipped. Returns the written paths."""
    return [path for name, table in tables.items() if table is not None
            for path in write_table(table, Path(folder) / name, index=index)]
