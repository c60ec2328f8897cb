"""From evaluation outputs to the paper's tables, with what the paper lacks: confidence
intervals over test subjects and paired tests between encoders.

Inputs are the two files ``neurossl evaluate`` appends to: ``results.csv`` (tidy metric rows)
and ``predictions.csv`` (class probabilities per test scan). Across the folds of a
cross-validated task every downstream subject is tested exactly once, so pooling a (encoder,
task, mode, seed)'s test predictions over folds gives one out-of-fold prediction per scan; the
bootstrap resamples those by subject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neurossl.evaluate.metrics import METRICS, classification_metrics
from neurossl.evaluate.stats import bootstrap_ci, delong_test, paired_bootstrap
from neurossl.evaluate.reported import brainfound_comparison
from neurossl.evaluate.tables import paper_table, read_results, write_table

GROUP = ["encoder", "objective", "task", "mode", "seed"]


def read_predictions(folder: str | Path) -> pd.DataFrame:
    """All prediction files of ``folder`` as one table (``subject_id, scan_uid, y, encoder,
    objective, task, mode, fold, seed, p0, p1, ...``; ``p2`` is empty for binary tasks)."""
    paths = sorted(Path(folder).glob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"no prediction files in {folder}")
    text = {c: str for c in ("subject_id", "scan_uid", "encoder", "objective", "task", "mode")}
    return pd.concat([pd.read_csv(p, dtype=text) for p in paths], ignore_index=True)


def probabilities(frame: pd.DataFrame) -> np.ndarray:
    """The ``(N, K)`` class probabilities of a prediction table's rows (empty columns dropped)."""
    columns = [c for c in frame.columns if c.startswith("p") and c[1:].isdigit()]
    proba = frame[sorted(columns, key=lambda c: int(c[1:]))].astype(float)
    return proba.dropna(axis=1, how="all").to_numpy()


def confidence_table(predictions: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """95% bootstrap CIs (test subjects resampled) of every metric per (encoder, task, mode, seed).

    Columns: ``encoder, objective, task, mode, seed, metric, value, low, high, n_scans, n_subjects``.
    """
    rows = []
    for key, group in predictions.groupby(GROUP, sort=False):
        y, proba, subjects = group["y"].to_numpy(int), probabilities(group), group["subject_id"].to_numpy()
        for metric in METRICS:
            try:
                ci = bootstrap_ci(y, proba, metric, n_boot=n_boot, seed=seed, groups=subjects)
                point, low, high = ci.point, ci.low, ci.high
            except ValueError:  # too few subjects of a class for the metric to be defined
                point = low = high = np.nan
            rows.append({**dict(zip(GROUP, key)), "metric": metric, "value": point, "low": low,
                         "high": high, "n_scans": len(group), "n_subjects": len(set(subjects))})
    return pd.DataFrame(rows)


def per_contrast_rows(paired: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`paired_table` on one contrast of a task (``<task>:<contrast>``), the
    contrast in its own column: ``encoder, task, contrast, mode, auc, auc_reference, diff, low,
    high, n_scans``. Empty when no such task was evaluated."""
    columns = ["encoder", "task", "contrast", "mode", "auc", "auc_reference", "diff", "low", "high", "n_scans"]
    rows = paired[paired["task"].str.contains(":", regex=False)] if len(paired) else paired
    if rows.empty:
        return pd.DataFrame(columns=columns)
    parts = rows["task"].str.split(":", n=1)
    rows = rows.assign(task=parts.str[0], contrast=parts.str[1])
    return rows.reindex(columns=columns).reset_index(drop=True)


def write_per_contrast(paired: pd.DataFrame, out_dir: str | Path, prefix: str = "tab03_") -> pd.DataFrame:
    """:func:`per_contrast_rows` of ``paired``, written as ``<prefix>per_contrast`` under
    ``out_dir`` when there are any (nothing is written otherwise); returns the rows."""
    rows = per_contrast_rows(paired)
    if len(rows):
        write_table(rows.round(4), Path(out_dir) / f"{prefix}per_contrast", index=False)
    return rows


def paired_table(predictions: pd.DataFrame, reference: str = "random", n_boot: int = 2000,
                 seed: int = 0) -> pd.DataFrame:
    """Each encoder vs ``reference`` on the same test scans: paired bootstrap of ROC-AUC (and
    DeLong's test for binary tasks). Columns: ``encoder, task, mode, seed, auc, auc_reference,
    diff, low, high, p_bootstrap, p_delong``."""
    keys = ["task", "mode", "seed", "fold", "scan_uid"]
    ref = predictions[predictions["encoder"] == reference]
    rows = []
    for (encoder, task, mode, run_seed), group in predictions.groupby(["encoder", "task", "mode", "seed"], sort=False):
        if encoder == reference:
            continue
        pair = group.merge(ref, on=keys, suffixes=("", "_ref"))
        if pair.empty:
            continue
        y = pair["y"].to_numpy(int)
        a = probabilities(pair)
        b = probabilities(pair.filter(regex=r"^p\d+_ref$").rename(columns=lambda c: c[:-4]))
        try:
            test = paired_bootstrap(y, a, b, "roc_auc", n_boot=n_boot, seed=seed, groups=pair["subject_id"].to_numpy())
        except ValueError as error:  # e.g. a test set with one class: the row says why it is empty
            rows.append({"encoder": encoder, "task": task, "mode": mode, "seed": run_seed,
                         "n_scans": len(pair), "note": str(error)})
            continue
        p_delong = delong_test(y, a[:, 1], b[:, 1]).p_value if a.shape[1] == 2 else np.nan
        reference_auc = classification_metrics(y, b)["roc_auc"]
        rows.append({"encoder": encoder, "task": task, "mode": mode, "seed": run_seed,
                     "auc": reference_auc + test.diff, "auc_reference": reference_auc, "diff": test.diff,
                     "low": test.low, "high": test.high, "p_bootstrap": test.p_value,
                     "p_delong": p_delong, "n_scans": len(pair), "note": ""})
    return pd.DataFrame(rows)


def format_interval(frame: pd.DataFrame, digits: int = 3) -> pd.Series:
    """``"0.812 [0.701, 0.905]"`` per row of a confidence table."""
    return frame.apply(lambda r: "–" if np.isnan(r["value"]) else
                       f"{r['value']:.{digits}f} [{r['low']:.{digits}f}, {r['high']:.{digits}f}]", axis=1)


def report_markdown(written: list[Path]) -> str:
    """The Markdown tables among ``written`` (:func:`write_report`), each under its bold name."""
    return "\n\n".join(f"**{path.stem}**\n\n{path.read_text()}" for path in written
                       if path.suffix == ".md")


def write_report(eval_dir: str | Path, out_dir: str | Path, n_boot: int = 1000,
                 prefix: str = "", paired: pd.DataFrame | None = None) -> list[Path]:
    """The paper-style tables of ``eval_dir`` (results.csv, predictions.csv) under ``out_dir``:
    ``downstream_<metric>`` (mean ± std over folds; frozen / finetune blocks), ``fewshot_roc_auc``,
    ``confidence_intervals``, ``paired_vs_random`` and ``brainfound_reported`` (the paper's Table
    6: reported numbers beside this project's), each name after ``prefix`` (the notebooks'
    ``tab03_``). ``paired``: the :func:`paired_table` of the non-few-shot predictions when the
    caller has already drawn it (notebook 03 plots it too), else drawn here with ``n_boot``.
    Returns the files written."""
    eval_dir, out_dir = Path(eval_dir), Path(out_dir)
    results = read_results(eval_dir / "results.csv")
    written = []
    standard = results[~results["mode"].str.startswith("fewshot")]
    fewshot = results[results["mode"].str.startswith("fewshot")]
    for metric in METRICS:
        if not standard.empty:
            written += write_table(paper_table(standard, metric), out_dir / f"{prefix}downstream_{metric}")
    if not fewshot.empty:
        written += write_table(paper_table(fewshot, "roc_auc"), out_dir / f"{prefix}fewshot_roc_auc")
    predictions = read_predictions(eval_dir / "predictions")
    standard_pred = predictions[~predictions["mode"].str.startswith("fewshot")]
    intervals = confidence_table(standard_pred, n_boot)
    intervals["interval"] = format_interval(intervals)
    wide = intervals.pivot_table(index=["encoder", "mode", "task"], columns="metric", values="interval",
                                 aggfunc="first", sort=False)
    written += write_table(wide.reset_index(), out_dir / f"{prefix}confidence_intervals")
    if paired is None:
        paired = paired_table(standard_pred, n_boot=n_boot)  # as the intervals above: one cell, one interval
    if not paired.empty:
        written += write_table(paired.round(4), out_dir / f"{prefix}paired_vs_random")
    if not standard.empty:
        written += write_table(brainfound_comparison(standard).round(3), out_dir / f"{prefix}brainfound_reported",
                               index=False)
    return written
