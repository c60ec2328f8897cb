"""Figures of the spectral analysis: radial power profiles, high-frequency energy, reconstructions.

Frequencies are the normalised radial frequency of :mod:`neurossl.analysis.spectrum`
(``|f| / max|f|``, 1 at the Nyquist corner); power is of the z-scored volume, in arbitrary units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

FREQUENCY_LABEL = "normalised radial frequency (cycles/voxel ÷ Nyquist corner)"
POWER_LABEL = "power (a.u., log)"


def _mark_cutoff(ax: Axes, cutoff: float) -> None:
    """Shade the high-frequency band ``r >= cutoff`` and draw its edge."""
    ax.axvspan(cutoff, 1.0, color="0.92", zorder=0)
    ax.axvline(cutoff, color="0.3", linestyle="--", linewidth=1, label=f"cutoff r = {cutoff:g}")
    ax.set_xlim(0.0, 1.0)


def _log_band(profiles: pd.DataFrame, group: str) -> pd.DataFrame:
    """Per ``group`` and frequency: geometric mean power and its +-1 s.d. band (in log10 space)."""
    logged = profiles.dropna(subset=["power"]).assign(log_power=lambda d: np.log10(d["power"]))
    stats = logged.groupby([group, "frequency"], sort=False)["log_power"].agg(["mean", "std"])
    stats = stats.fillna({"std": 0.0}).reset_index()
    return stats.assign(
        centre=10 ** stats["mean"],
        low=10 ** (stats["mean"] - stats["std"]),
        high=10 ** (stats["mean"] + stats["std"]),
    )


def plot_radial_profiles(profiles: pd.DataFrame, cutoff: float = 0.3) -> Figure:
    """Radially averaged power spectrum per dataset, on a log scale.

    Args:
        profiles: columns ``id, dataset, frequency, power`` (from ``spectral_table``).
        cutoff: high-frequency cutoff to mark.

    Returns:
        Figure: the line is the geometric mean over a dataset's volumes, the band +-1 s.d. of
        log power.
    """
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    _mark_cutoff(ax, cutoff)
    bands = _log_band(profiles, "dataset").groupby("dataset", sort=False)
    for colour, (dataset, band) in zip(sns.color_palette(n_colors=bands.ngroups), bands):
        n = profiles.loc[profiles["dataset"] == dataset, "id"].nunique()
        ax.plot(band["frequency"], band["centre"], color=colour, label=f"{dataset} (n={n})")
        ax.fill_between(
            band["frequency"], band["low"], band["high"], color=colour, alpha=0.25, linewidth=0
        )
    ax.set_yscale("log")
    ax.set(xlabel=FREQUENCY_LABEL, ylabel=POWER_LABEL, title="Radially averaged power spectrum")
    ax.legend(loc="upper right")
    return fig


def plot_hf_energy(energy: pd.DataFrame, cutoff: float = 0.3) -> Figure:
    """Distribution of the high-frequency energy share per dataset (box + every volume).

    Args:
        energy: columns ``id, dataset, hf_energy`` (from ``spectral_table``).
        cutoff: the cutoff the shares were computed with (for the labels).

    Returns:
        Figure with one box per dataset, each volume a point, the mean a white diamond.
    """
    counts = energy.groupby("dataset", sort=False)["id"].size()
    order = list(counts.index)
    fig = Figure(figsize=(max(4.5, 1.6 * len(order) + 2.0), 4.8), layout="constrained")
    ax = fig.subplots()
    box_style = {"showfliers": False, "width": 0.55, "boxprops": {"alpha": 0.45}, "legend": False}
    sns.boxplot(energy, x="dataset", y="hf_energy", hue="dataset", order=order, ax=ax, **box_style)
    # Points jittered from a fixed seed (seaborn's stripplot draws from NumPy's global state), so
    # a regenerated figure is the same file.
    position = energy["dataset"].map({name: i for i, name in enumerate(order)}).to_numpy()
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(energy))
    ax.scatter(position + jitter, energy["hf_energy"], s=12, c="0.15", alpha=0.7, linewidths=0)
    means = energy.groupby("dataset", sort=False)["hf_energy"].mean().reindex(order)
    ax.scatter(
        range(len(order)), means, marker="D", s=40, c="white", ec="black", zorder=5, label="mean"
    )
    ax.set_xticks(range(len(order)), [f"{name}\n(n={counts[name]})" for name in order])
    ax.set(
        xlabel="dataset",
        ylabel=f"share of spectral power at r ≥ {cutoff:g}",
        title="High-frequency spectral energy per volume",
    )
    ax.legend(loc="best")
    return fig


def plot_reconstruction_spectra(spectra: pd.DataFrame, cutoff: float = 0.3) -> Figure:
    """Radial spectra of a target and its reconstructions, and their ratio to the target.

    Args:
        spectra: columns ``model, frequency, power, ratio`` (from ``reconstruction_spectra``),
            with ``model == "target"`` rows.
        cutoff: high-frequency cutoff to mark.

    Returns:
        Figure with two panels: power per model (log) and ``power / power_target`` (log).
    """
    fig = Figure(figsize=(12.0, 4.6), layout="constrained")
    ax_power, ax_ratio = fig.subplots(1, 2)
    models = [m for m in spectra["model"].unique() if m != "target"]
    palette = dict(zip(models, sns.color_palette(n_colors=len(models))))
    for ax in (ax_power, ax_ratio):
        _mark_cutoff(ax, cutoff)
        ax.set_yscale("log")
    for model, rows in spectra.dropna(subset=["power"]).groupby("model", sort=False):
        style = {"color": "black", "lw": 2.2} if model == "target" else {"color": palette[model]}
        ax_power.plot(rows["frequency"], rows["power"], label=model, **style)
        if model != "target":
            ax_ratio.plot(rows["frequency"], rows["ratio"], label=model, **style)
    ax_ratio.axhline(1.0, color="black", lw=1)
    ax_power.set(xlabel=FREQUENCY_LABEL, ylabel=POWER_LABEL, title="Power spectrum")
    ax_ratio.set(
        xlabel=FREQUENCY_LABEL,
        ylabel="power ratio reconstruction / target (log)",
        title="Spectral fidelity (1 = target's power)",
    )
    ax_power.legend(loc="best")
    ax_ratio.legend(loc="best")
    fig.suptitle("Do reconstructions keep the high frequencies of the input?")
    return fig


def plot_hf_energy_by_contrast(energy: pd.DataFrame, cutoff: float = 0.3) -> Figure:
    """:func:`plot_hf_energy` with one box per dataset and contrast (e.g. ``glioma T1w``)."""
    fig = plot_hf_energy(energy.assign(dataset=energy["dataset"] + " " + energy["modality"]), cutoff)
    fig.axes[0].set_title("High-frequency spectral energy per dataset and contrast")
    fig.axes[0].tick_params(axis="x", labelrotation=30)
    return fig


def reconstruction_spectra_figure(comparison, cutoff: float = 0.3) -> dict[str, Figure]:
    """``fig05_reconstruction_spectra``: the mean spectra of a
    :class:`~neurossl.analysis.spectral_energy.ReconstructionComparison`; empty without one."""
    if comparison is None:
        return {}
    fig = plot_reconstruction_spectra(comparison.spectra, cutoff)
    fig.suptitle(f"Spectra of MAE and SL-MAE mosaics vs their targets "
                 f"(geometric mean over {comparison.volumes} T1w volumes)")
    return {"fig05_reconstruction_spectra": fig}


def reconstruction_slice_figures(comparison) -> dict[str, Figure]:
    """``fig05_reconstruction_<dataset>``: the middle slice of one compared volume per dataset,
    its mask and both mosaics; empty without a comparison."""
    from neurossl.plots.evaluation import plot_reconstruction_slices

    if comparison is None:
        return {}
    return {f"fig05_reconstruction_{dataset}": plot_reconstruction_slices(target, mask, mosaics,
                                                                        title=f"{dataset}: {uid}")
            for dataset, (uid, target, mask, mosaics) in comparison.examples.items()}
