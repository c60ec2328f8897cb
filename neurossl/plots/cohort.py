"""Figures of a cohort: scans per dataset, acquisition geometry and the curation outcome.

Inputs are the cohort's ``scans.tsv`` (``neurossl.data.catalog.read_scans``; ``spacing`` like
``2.0x4.0x2.0`` in mm along the stored voxel axes, ``orientation`` the stored axis code like
``PSR``) and the curation report (``curation.csv``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure


def acquisition_table(scans: pd.DataFrame, isotropy_ratio: float = 1.4) -> pd.DataFrame:
    """Per scan: in-plane and through-plane voxel size (mm), anisotropy and acquisition type.

    Args:
        scans: a scans table with ``scan_uid, dataset, modality, spacing, orientation``.
        isotropy_ratio: ``max / min`` spacing from which a scan counts as thick-slice (the
            preprocessing's ``preprocess.isotropy_ratio``).

    Returns:
        ``scan_uid, dataset, modality, orientation, min_spacing_mm, max_spacing_mm, anisotropy,
        acquisition`` (``thick-slice`` or ``near-isotropic``).
    """
    spacing = scans["spacing"].str.split("x", expand=True).astype(float)
    table = scans[["scan_uid", "dataset", "modality", "orientation"]].copy()
    table["min_spacing_mm"] = spacing.min(axis=1)
    table["max_spacing_mm"] = spacing.max(axis=1)
    table["anisotropy"] = table["max_spacing_mm"] / table["min_spacing_mm"]
    table["acquisition"] = np.where(table["anisotropy"] >= isotropy_ratio, "thick-slice",
                                    "near-isotropic")
    return table


def acquisition_summary(acquisition: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and acquisition type: scans, median finest / coarsest spacing (mm) and the
    largest anisotropy, from :func:`acquisition_table`."""
    summary = (acquisition.groupby(["dataset", "acquisition"])
               .agg(scans=("scan_uid", "count"),
                    finest_mm=("min_spacing_mm", "median"),
                    coarsest_mm=("max_spacing_mm", "median"),
                    max_anisotropy=("anisotropy", "max")))
    return summary.round(2).reset_index()


def plot_cohort(scans: pd.DataFrame) -> Figure:
    """Scans per dataset by modality, and subjects per dataset by label.

    Args:
        scans: the cohort's scans table.

    Returns:
        Figure with two horizontal stacked bar panels.
    """
    fig = Figure(figsize=(12.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    by_modality = pd.crosstab(scans["dataset"], scans["modality"])
    by_modality.plot.barh(stacked=True, ax=axes[0], width=0.7)
    axes[0].set(xlabel="scans", ylabel="dataset", title="Scans per dataset and modality")
    axes[0].legend(title="modality", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    subjects = scans.drop_duplicates("subject_id").assign(
        label=lambda d: d["label"].replace("", "unlabelled"))
    by_label = pd.crosstab(subjects["dataset"], subjects["label"])
    by_label.plot.barh(stacked=True, ax=axes[1], width=0.7,
                       color=sns.color_palette("tab10", n_colors=by_label.shape[1]))
    axes[1].set(xlabel="subjects", ylabel="", title="Subjects per dataset and label")
    axes[1].legend(title="label", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_acquisition(acquisition: pd.DataFrame, isotropy_ratio: float = 1.4) -> Figure:
    """Voxel geometry of the cohort: slice thickness per scan and stored orientations.

    Args:
        acquisition: the output of :func:`acquisition_table`.
        isotropy_ratio: the thick-slice threshold (coarsest / finest spacing), for the title.

    Returns:
        Figure with a stacked bar chart of scans per coarsest voxel spacing (mm) by dataset, and a
        heatmap of stored orientation codes per dataset (counts of scans).
    """
    fig = Figure(figsize=(13.0, 4.3), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[1, 1.4])
    coarsest = pd.crosstab(acquisition["max_spacing_mm"].round(1), acquisition["dataset"])
    coarsest.plot.bar(stacked=True, ax=axes[0], width=0.75, rot=0)
    thick = int((acquisition["acquisition"] == "thick-slice").sum())
    axes[0].set(xlabel="coarsest voxel spacing (mm)", ylabel="scans",
                title=f"Slice thickness ({thick} of {len(acquisition)} scans thick-slice, "
                      f"max/min ≥ {isotropy_ratio:g})")
    axes[0].title.set_fontsize(10)
    axes[0].legend(title="dataset", fontsize=8)
    counts = pd.crosstab(acquisition["dataset"], acquisition["orientation"])
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar_kws={"label": "scans"},
                ax=axes[1], annot_kws={"fontsize": 7}, mask=counts == 0, linewidths=0.5,
                linecolor="0.9")
    axes[1].set(xlabel="stored orientation (voxel axis codes)", ylabel="dataset",
                title="Stored orientations (all read as RAS)")
    return fig


def curation_counts(report: pd.DataFrame) -> pd.DataFrame:
    """Files per curation outcome: ``outcome, files`` (``kept`` then each rejection reason)."""
    outcome = np.where(report["status"] == "kept", "kept",
                       "rejected: " + report["reason"].replace("", "unspecified"))
    counts = pd.Series(outcome).value_counts()
    order = ["kept"] + sorted(o for o in counts.index if o != "kept")
    return counts.reindex([o for o in order if o in counts.index]).rename_axis("outcome") \
        .reset_index(name="files")


def plot_curation(report: pd.DataFrame) -> Figure:
    """Files kept and rejected (by reason) by the curation filters.

    Args:
        report: the curation report (one row per file, ``status`` and ``reason``).

    Returns:
        Figure with one horizontal bar per outcome, labelled with its count (log axis when the
        counts differ by more than a factor of 20).
    """
    counts = curation_counts(report)
    fig = Figure(figsize=(7.5, 1.2 + 0.45 * len(counts)), layout="constrained")
    ax = fig.subplots()
    colours = ["#4c956c" if o == "kept" else "#c8553d" for o in counts["outcome"]]
    bars = ax.barh(counts["outcome"], counts["files"], color=colours)
    ax.bar_label(bars, padding=3, fontsize=8)
    ax.invert_yaxis()
    logarithmic = counts["files"].max() > 20 * counts["files"].min()
    if logarithmic:
        ax.set_xscale("log")
        ax.set_xlim(0.8, counts["files"].max() * 3)
    else:
        ax.set_xlim(0, counts["files"].max() * 1.15)
    ax.set(xlabel="files (log scale)" if logarithmic else "files", ylabel="",
           title=f"Curation outcome ({len(report)} scan files)")
    return fig
