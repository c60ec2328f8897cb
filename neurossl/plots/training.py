"""Figures and a summary table of pretraining logs (``metrics.jsonl`` of each run).

A log record holds ``step`` and ``epoch``, the total ``loss``, one value per loss term (e.g.
``pixel`` and ``spectral_term`` for SL-MAE), the schedules (``lr``, ``wd``), the throughput and,
for every objective, the collapse monitor (``student_centred_token_rank``,
``student_pooled_std``, ...; :func:`neurossl.losses.collapse.collapse_monitor`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

NOT_LOSSES = {"step", "epoch", "lr", "wd", "volumes_per_s", "grad_norm"}
MONITOR_SUFFIXES = ("_std", "_rank")


def loss_terms(records: Sequence[dict]) -> list[str]:
    """Names of the loss terms in a log, the total ``loss`` first (schedules and monitors left out)."""
    names: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key in NOT_LOSSES or key.endswith(MONITOR_SUFFIXES) or not isinstance(value, float | int):
                continue
            names[key] = None
    return sorted(names, key=lambda name: (name != "loss", name))


def _series(records: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the finite values of ``key``."""
    pairs = [(r["step"], r[key]) for r in records if key in r and math.isfinite(r[key])]
    steps, values = zip(*pairs) if pairs else ((), ())
    return np.asarray(steps), np.asarray(values, dtype=float)


def loss_summary(metrics: Mapping[str, Sequence[dict]], window: int = 3) -> pd.DataFrame:
    """First / last logged total loss of each run: a description of the log.

    A falling loss does not show that a run learned (a loss also falls to a trivial solution):
    :func:`neurossl.analysis.learning.learning_checks` does.

    Args:
        metrics: objective -> its log records (the ``metrics.jsonl`` of a run folder).
        window: number of records averaged at each end.

    Returns:
        One row per objective: ``objective, steps, first_loss, last_loss, change_pct`` (means of
        the first / last ``window`` records).
    """
    rows = []
    for name, records in metrics.items():
        steps, values = _series(records, "loss")
        first = float(values[:window].mean()) if len(values) else float("nan")
        last = float(values[-window:].mean()) if len(values) else float("nan")
        rows.append({
            "objective": name,
            "steps": int(steps.max()) if len(steps) else 0,
            "first_loss": first,
            "last_loss": last,
            "change_pct": 100.0 * (last - first) / abs(first) if first else float("nan"),
        })
    return pd.DataFrame(rows)


def plot_loss_curves(metrics: Mapping[str, Sequence[dict]], ncols: int = 4) -> Figure:
    """Training loss of each pretraining run, one panel per objective.

    The total loss is a solid line; when a run has several terms each is drawn dashed. A panel's
    y axis is logarithmic when every value in it is positive (losses of different terms differ by
    orders of magnitude); otherwise linear (the DINO and contrastive losses can be negative).

    Args:
        metrics: objective -> its log records.
        ncols: panels per row.

    Returns:
        Figure with one panel per objective; x is the optimiser step.
    """
    n = max(len(metrics), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.4 * ncols + 0.4, 2.9 * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    palette = sns.color_palette(n_colors=8)
    for ax, (name, records) in zip(axes, metrics.items()):
        terms = loss_terms(records)
        drawn = []
        for colour, term in zip(palette, terms):
            steps, values = _series(records, term)
            if term != "loss" and len(terms) == 2:
                continue  # a single term equals the total loss
            drawn.append(values)
            style = "-" if term == "loss" else "--"
            ax.plot(steps, values, style, color=colour, marker="o" if len(steps) < 20 else None,
                    markersize=3, label=term)
        values = np.concatenate(drawn) if drawn else np.array([])
        logarithmic = bool(len(values)) and values.min() > 0 and values.max() / values.min() > 10
        if logarithmic:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=name, xlabel="optimiser step",
               ylabel="loss (log scale)" if logarithmic else "loss")
        if len(terms) > 2:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28),
                      ncols=min(len(terms), 4))
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("Pretraining loss per objective (dashed: individual loss terms)")
    return fig


def plot_collapse_monitor(metrics: Mapping[str, Sequence[dict]]) -> Figure | None:
    """Pooled-embedding spread and token-level effective rank over training (collapse check).

    Args:
        metrics: objective -> its log records; runs without ``*_std`` / ``*_rank`` are skipped.

    Returns:
        Figure with two panels (std, effective rank), one line per objective and branch (student
        solid, teacher dashed); None when no run logged the monitor.
    """
    monitored = {name: records for name, records in metrics.items()
                 if any(key.endswith(MONITOR_SUFFIXES) for r in records for key in r)}
    if not monitored:
        return None
    fig = Figure(figsize=(9.0, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    palette = dict(zip(monitored, sns.color_palette(n_colors=len(monitored))))
    # the centred token rank separates collapse from similar inputs (neurossl.losses.collapse)
    for ax, suffix, label in zip(axes, ("_pooled_std", "_centred_token_rank"),
                                 ["pooled embedding std (per dimension, mean)",
                                  "centred token effective rank"]):
        for name, records in monitored.items():
            for branch, style in (("student", "-"), ("teacher", "--")):
                steps, values = _series(records, f"{branch}{suffix}")
                if len(values):
                    ax.plot(steps, values, style, color=palette[name], marker="o", markersize=3,
                            label=f"{name} ({branch})")
        ax.set(xlabel="optimiser step", ylabel=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("Embedding spread")
    axes[1].set_title("Patch-token effective rank (mean token removed)")
    # below both panels: inside either one it covers lines (ranks span the whole axis)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncols=min(len(labels), 4))
    fig.suptitle("Collapse monitor (a collapsed encoder: spread → 0, centred rank → 0)")
    return fig
