"""Figures of the downstream evaluation: ROC curves, few-shot curves, SSL vs random-twin gaps.

Inputs are the tables of :mod:`neurossl.evaluate`: the prediction table
(:func:`neurossl.evaluate.report.read_predictions`), the tidy results
(:func:`neurossl.evaluate.tables.read_results`) and the paired comparison
(:func:`neurossl.evaluate.report.paired_table`). Baselines keep fixed colours in every figure:
the random-initialisation twin grey, ResNet50-3D black.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from neurossl.evaluate.metrics import roc_auc
from neurossl.evaluate.report import probabilities
from neurossl.evaluate.tables import MODE_ORDER

BASELINE_STYLE = {
    "random": {"color": "0.55", "linestyle": "--"},
    "resnet50": {"color": "black", "linestyle": ":"},
    "voxels": {"color": "0.3", "linestyle": "-."},
}
FPR_GRID = np.linspace(0.0, 1.0, 201)


def encoder_styles(encoders: Sequence[str]) -> dict[str, dict]:
    """Line style per encoder: palette colours for SSL encoders, fixed ones for the baselines."""
    ssl = [e for e in dict.fromkeys(encoders) if e not in BASELINE_STYLE]
    styles = {e: {"color": c, "linestyle": "-"} for e, c in zip(ssl, sns.color_palette(n_colors=len(ssl)))}
    return {**styles, **{e: s for e, s in BASELINE_STYLE.items() if e in encoders}}


def _panels(n: int, width: float = 4.6, height: float = 5.8) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, fig.subplots(1, n, squeeze=False)[0]


def mean_roc(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """TPR on :data:`FPR_GRID`: the binary ROC, or the mean of one-vs-rest ROCs for K > 2."""
    columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    curves = []
    for k in columns:
        fpr, tpr, _ = roc_curve(y == k, proba[:, k])
        curves.append(np.interp(FPR_GRID, fpr, tpr))
    return np.mean(curves, axis=0)


def plot_roc_curves(predictions: pd.DataFrame, task: str | Sequence[str], mode: str) -> Figure:
    """ROC curves of every encoder on pooled out-of-fold test predictions, one panel per task.

    Args:
        predictions: prediction table (``encoder, task, mode, y, p0, p1, ...``).
        task: a task name or several (one panel each).
        mode: ``frozen``, ``finetune`` or ``fewshot_<k>``.

    Returns:
        Figure; the legend gives each encoder's ROC-AUC on the pooled predictions (for K > 2
        classes the curve and the AUC are the mean over one-vs-rest problems).
    """
    tasks = [task] if isinstance(task, str) else list(task)
    rows = predictions[(predictions["mode"] == mode) & predictions["task"].isin(tasks)]
    if rows.empty:
        raise ValueError(f"no predictions for tasks {tasks} in mode {mode!r}")
    styles = encoder_styles(list(rows["encoder"]))
    fig, axes = _panels(len(tasks))
    for ax, name in zip(axes, tasks):
        ax.plot([0, 1], [0, 1], color="0.75", lw=1, label="chance")
        for encoder, group in rows[rows["task"] == name].groupby("encoder", sort=False):
            y, proba = group["y"].to_numpy(int), probabilities(group)
            if np.unique(y).size < proba.shape[1]:
                continue  # a class without test scans has no ROC curve
            auc = roc_auc(y, proba)
            ax.plot(FPR_GRID, mean_roc(y, proba), lw=1.8, label=f"{encoder} (AUC {auc:.2f})",
                    **styles[encoder])
        n = rows.loc[rows["task"] == name, "scan_uid"].nunique()
        ax.set(xlim=(0, 1), ylim=(0, 1.01), title=f"{name}\n({n} test scans)",
               xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize="small")
    fig.suptitle(f"ROC curves, {mode}: out-of-fold test predictions pooled over folds and seeds")
    return fig


def fewshot_summary(results: pd.DataFrame, metric: str = "roc_auc") -> pd.DataFrame:
    """Mean and s.d. over seeds per (encoder, task, shots) of the ``fewshot_<k>`` rows.

    Returns:
        Columns ``encoder, task, shots, mean, std, n``.
    """
    rows = results[results["mode"].str.startswith("fewshot_") & (results["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"no few-shot rows of metric {metric!r} in the results")
    rows = rows.assign(shots=rows["mode"].str.removeprefix("fewshot_").astype(int))
    summary = rows.groupby(["encoder", "task", "shots"], sort=False)["value"].agg(["mean", "std", "count"])
    return summary.rename(columns={"count": "n"}).fillna({"std": 0.0}).reset_index().sort_values(
        ["task", "encoder", "shots"], kind="stable")


def plot_fewshot(results: pd.DataFrame, metric: str = "roc_auc") -> Figure:
    """Few-shot curves: ``metric`` against labelled volumes per class, mean ± s.d. over seeds.

    Args:
        results: tidy result rows holding ``fewshot_<k>`` modes.
        metric: ``roc_auc``, ``accuracy`` or ``macro_f1``.

    Returns:
        Figure with one panel per task and one line per encoder (ResNet50-3D trained from scratch).
    """
    summary = fewshot_summary(results, metric)
    tasks = list(dict.fromkeys(summary["task"]))
    styles = encoder_styles(list(summary["encoder"]))
    shots = sorted(summary["shots"].unique())
    fig, axes = _panels(len(tasks), height=5.0)
    for ax, name in zip(axes, tasks):
        task_rows = summary[summary["task"] == name]
        for i, (encoder, line) in enumerate(task_rows.groupby("encoder", sort=False)):
            # small horizontal offsets keep overlapping error bars apart
            x = line["shots"] * 2 ** (0.06 * (i - (len(styles) - 1) / 2))
            ax.errorbar(x, line["mean"], yerr=line["std"], marker="o", ms=5, capsize=3, lw=1.6,
                        label=encoder, **styles[encoder])
        ax.set_xscale("log", base=2)
        ax.set_xlim(min(shots) / 1.6, max(shots) * 1.6)
        ax.set_xticks(shots, [str(s) for s in shots])
        ax.minorticks_off()
        n_seeds = int(task_rows["n"].max())
        ax.set(title=f"{name}\n(mean ± s.d. over {n_seeds} draws)", xlabel="labelled volumes per class",
               ylim=(0.0, 1.02),
               ylabel=metric.replace("_", "-").upper() if metric == "roc_auc" else metric)
        if metric == "roc_auc":
            ax.axhline(0.5, color="0.6", lw=1, label="chance")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize="small")
    baseline = " vs ResNet50-3D from scratch" if "resnet50" in set(summary["encoder"]) else ""
    fig.suptitle(f"Few-shot learning: frozen SSL encoders{baseline}")
    return fig


def plot_probe_comparison(paired: pd.DataFrame) -> Figure:
    """ROC-AUC gain of each SSL encoder over its random-initialisation twin, with 95% CIs.

    Args:
        paired: output of :func:`neurossl.evaluate.report.paired_table` (``encoder, task, mode,
            seed, diff, low, high, p_bootstrap``); several seeds are shown as separate points.

    Returns:
        Figure with one panel per mode; each row a (task, encoder) pair, the point the
        difference in AUC on the same test scans, the bar its paired-bootstrap 95% CI.
    """
    if paired.empty:
        raise ValueError("the paired table is empty: no encoder shares test scans with 'random'")
    rows = paired[~paired["encoder"].isin(["resnet50", "voxels"])]
    present = list(dict.fromkeys(rows["mode"]))
    modes = [m for m in MODE_ORDER if m in present] + [m for m in present if m not in MODE_ORDER]
    keys = list(dict.fromkeys(zip(rows["task"], rows["encoder"])))
    styles = encoder_styles(list(rows["encoder"]))
    fig = Figure(figsize=(5.2 * len(modes) + 2.5, 0.42 * len(keys) + 1.8), layout="constrained")
    axes = fig.subplots(1, len(modes), squeeze=False, sharex=True, sharey=True)[0]
    position = {key: i for i, key in enumerate(keys)}
    for ax, mode in zip(axes, modes):
        ax.axvline(0.0, color="black", lw=1)
        for _, r in rows[rows["mode"] == mode].iterrows():
            y = position[(r["task"], r["encoder"])]
            colour = styles[r["encoder"]]["color"]
            ax.errorbar(r["diff"], y, xerr=[[r["diff"] - r["low"]], [r["high"] - r["diff"]]],
                        fmt="o", color=colour, capsize=3)
        ax.set(title=mode, xlabel="ROC-AUC (SSL) − ROC-AUC (random twin)")
    axes[0].set_yticks(range(len(keys)), [f"{task} · {encoder}" for task, encoder in keys])
    axes[0].invert_yaxis()
    fig.suptitle("Gain over the random-initialisation twin (paired bootstrap, 95% CI)")
    return fig


def plot_reconstruction_slices(target: np.ndarray, mask: np.ndarray, recons: dict[str, np.ndarray],
                               title: str = "", axis: int = 0) -> Figure:
    """Middle slice of a target, its mask and each model's reconstruction, side by side.

    Args:
        target: ``(D, H, W)`` input volume.
        mask: ``(D, H, W)`` bool, True at masked voxels (shaded red in the second panel).
        recons: model name -> ``(D, H, W)`` reconstruction (e.g. the mosaic of
            :func:`neurossl.analysis.reconstruction.reconstruct`).
        title: figure title.
        axis: slice axis (0 = the depth axis of the model input).

    Returns:
        Figure with ``2 + len(recons)`` panels on one grey scale (the target's 1st-99th
        percentiles) and a shared colour bar.
    """
    index = target.shape[axis] // 2
    cut = lambda v: np.take(np.asarray(v), index, axis=axis)  # noqa: E731
    low, high = np.percentile(target, [1, 99])
    panels = [("target", cut(target)), ("mask", cut(target)), *((n, cut(r)) for n, r in recons.items())]
    fig = Figure(figsize=(2.9 * len(panels) + 0.8, 3.3), layout="constrained")
    axes = fig.subplots(1, len(panels))
    for ax, (name, image) in zip(axes, panels):
        shown = ax.imshow(image, cmap="gray", vmin=low, vmax=high, origin="lower")
        ax.set(title=name, xticks=[], yticks=[])
    masked = cut(mask)
    axes[1].imshow(np.ma.masked_where(~masked, masked), cmap="autumn", alpha=0.45, origin="lower")
    axes[1].set_title(f"masked ({masked.mean():.0%} of slice)")
    fig.colorbar(shown, ax=list(axes), shrink=0.85, label="intensity (z-scored)")
    fig.suptitle(title or f"slice {index} of axis {axis}")
    return fig


def roc_figures(predictions: pd.DataFrame, modes: Sequence[str] = ("frozen", "finetune"),
                prefix: str = "fig03_roc_") -> dict[str, Figure | None]:
    """:func:`plot_roc_curves` of every task of each mode: ``<prefix><mode>`` -> figure, None
    for a mode without predictions (e.g. no fine-tuning in a smoke run)."""
    figures = {}
    for mode in modes:
        tasks = list(dict.fromkeys(predictions.loc[predictions["mode"] == mode, "task"]))
        figures[f"{prefix}{mode}"] = plot_roc_curves(predictions, tasks, mode) if tasks else None
    return figures
