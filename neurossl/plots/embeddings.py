"""Scatter plots of 2-D encoder embeddings (the paper's t-SNE figure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

AXIS_NAMES = {"tsne": "t-SNE", "umap": "UMAP"}


def _categories(values: Sequence) -> pd.Categorical:
    """``values`` as sorted string categories, so numeric labels get a discrete palette."""
    strings = pd.Series(np.asarray(values)).astype(str)
    return pd.Categorical(strings, categories=sorted(strings.unique()))


def plot_embedding(
    coords: np.ndarray,
    labels: Sequence,
    hue_name: str,
    title: str,
    ax: Axes | None = None,
    method: str = "tsne",
    legend: bool = True,
) -> Axes:
    """Scatter of 2-D coordinates coloured by a categorical variable.

    Args:
        coords: ``(N, 2)`` embedding coordinates.
        labels: ``(N,)`` categories used for colour (class label, dataset, ...).
        hue_name: legend title, e.g. ``"diagnosis"``.
        title: axes title.
        ax: axes to draw on; a new figure when None.
        method: ``"tsne"`` or ``"umap"``, names the axes ("t-SNE 1", "t-SNE 2").
        legend: draw the legend (outside the axes, on the right).

    Returns:
        The axes drawn on.
    """
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != len(labels):
        raise ValueError(f"coords must be (N, 2) with N = len(labels), got {coords.shape}")
    if ax is None:
        ax = Figure(figsize=(5.5, 4.5), layout="constrained").subplots()
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], hue_name: _categories(labels)})
    sns.scatterplot(
        frame, x="x", y="y", hue=hue_name, ax=ax, s=22, alpha=0.8, linewidth=0, legend=legend
    )
    name = AXIS_NAMES.get(method, method)
    ax.set(title=title, xlabel=f"{name} 1", ylabel=f"{name} 2", xticks=[], yticks=[])
    if legend:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), title=hue_name, frameon=False)
    return ax


def plot_embedding_grid(
    coords_by_encoder: Mapping[str, np.ndarray],
    labels: Sequence,
    datasets: Sequence | None = None,
    method: str = "tsne",
    label_name: str = "label",
) -> Figure:
    """Grid of embeddings: one row per encoder, coloured by label and (if given) by dataset.

    Every encoder embeds the same N samples, so the colours mean the same down a column and the
    legend is drawn once, on the top row.

    Args:
        coords_by_encoder: encoder name -> ``(N, 2)`` coordinates (e.g.
            ``{name: analysis.coords["tsne"] for name, analysis in analyses.items()}``).
        labels: ``(N,)`` class labels.
        datasets: ``(N,)`` source dataset of each sample, or None for the label column only.
        method: ``"tsne"`` or ``"umap"``, names the axes.
        label_name: legend title of the label column, e.g. ``"diagnosis"``.

    Returns:
        The figure.
    """
    if not coords_by_encoder:
        raise ValueError("plot_embedding_grid received no encoders")
    colourings = [(label_name, labels)] + ([("dataset", datasets)] if datasets is not None else [])
    n_rows, n_cols = len(coords_by_encoder), len(colourings)
    fig = Figure(figsize=(4.6 * n_cols + 1.6, 3.8 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for row, (encoder, coords) in enumerate(coords_by_encoder.items()):
        for col, (hue_name, values) in enumerate(colourings):
            title = f"{encoder}: by {hue_name}"
            plot_embedding(coords, values, hue_name, title, axes[row, col], method, legend=row == 0)
    fig.suptitle(f"{AXIS_NAMES.get(method, method)} embeddings of encoder features")
    return fig


def plot_stage_embeddings(analyses: dict[str, dict], labels: Sequence, hue_name: str = "diagnosis") -> Figure:
    """t-SNE of one test set, a row per stage (pretrained / fine-tuned), a column per encoder
    (the paper's Figure 4).

    Args:
        analyses: stage -> encoder -> :class:`~neurossl.analysis.embeddings.EmbeddingAnalysis`
            holding ``coords["tsne"]`` ``(N, 2)``.
        labels: ``(N,)`` class labels of the scans, in the analyses' row order.
    """
    stages = [s for s, by_encoder in analyses.items() if by_encoder]
    if not stages:
        raise ValueError("plot_stage_embeddings received no analyses")
    encoders = list(dict.fromkeys(name for s in stages for name in analyses[s]))
    fig = Figure(figsize=(3.6 * len(encoders) + 1.5, 3.4 * len(stages)), layout="constrained")
    axes = fig.subplots(len(stages), len(encoders), squeeze=False)
    for row, stage in enumerate(stages):
        for col, name in enumerate(encoders):
            ax = axes[row, col]
            if name not in analyses[stage]:
                ax.set_axis_off()
                ax.set_title(f"{stage}: {name} (none)")
                continue
            plot_embedding(analyses[stage][name].coords["tsne"], labels, hue_name, f"{stage}: {name}", ax,
                           method="tsne", legend=(row, col) == (0, len(encoders) - 1))
    fig.suptitle("t-SNE of the test set, pretrained and fine-tuned encoders")
    return fig


def embedding_grids(analyses: Mapping, scans: pd.DataFrame, methods: Sequence[str] = ("tsne", "umap"),
                    prefix: str = "fig04_") -> dict[str, Figure]:
    """:func:`plot_embedding_grid` of all scans per method, coloured by label and dataset:
    ``<prefix><method>_all`` -> figure.

    Args:
        analyses: encoder -> analysis with ``coords[method]`` for every scan of ``scans``.
        scans: ``label, dataset`` per row.
    """
    labels, datasets = scans["label"].to_numpy(), scans["dataset"].to_numpy()
    return {f"{prefix}{method}_all": plot_embedding_grid({name: a.coords[method] for name, a in analyses.items()},
                                                         labels, datasets, method=method, label_name="label")
            for method in methods}


def plot_per_dataset_embeddings(analyses: Mapping[str, Mapping], scans: pd.DataFrame,
                                method: str = "tsne") -> Figure:
    """One column per dataset, one row per encoder: each dataset's own projection, coloured by
    diagnostic label.

    Args:
        analyses: dataset -> encoder -> analysis (``coords[method]`` over that dataset's scans).
        scans: ``dataset, label`` per row, in the order the analyses embedded them.
    """
    encoders = len(next(iter(analyses.values())))
    fig = Figure(figsize=(4.6 * len(analyses) + 1.5, 3.6 * encoders), layout="constrained")
    axes = fig.subplots(encoders, len(analyses), squeeze=False)
    for col, (dataset, by_encoder) in enumerate(analyses.items()):
        labels = scans.loc[scans["dataset"] == dataset, "label"].to_numpy()
        for row, (name, result) in enumerate(by_encoder.items()):
            plot_embedding(result.coords[method], labels, "label", f"{dataset}: {name}", axes[row, col],
                           method=method, legend=row == 0)
    fig.suptitle(f"{AXIS_NAMES[method]} per dataset, coloured by diagnostic label")
    return fig
