"""Shared figure helpers: one seaborn theme and one way of saving figures.

Plot functions in :mod:`neurossl.plots` build :class:`matplotlib.figure.Figure` objects directly
(not through ``pyplot``), so they work under any backend, including headless runs, and nothing
accumulates in pyplot's figure registry; call :func:`set_theme` once before plotting.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import seaborn as sns
from matplotlib.figure import Figure


def set_theme() -> None:
    """Apply the project's seaborn theme (white grid, colour-blind palette, paper-sized fonts)."""
    sns.set_theme(
        context="paper",
        style="whitegrid",
        palette="colorblind",
        font_scale=1.2,
        rc={"axes.titleweight": "bold", "legend.frameon": False},
    )


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` (150 dpi) and ``<stem>.pdf``, creating parent folders.

    Args:
        fig: the figure.
        stem: output path without extension; a dot in the name is kept (``fig.v1`` ->
            ``fig.v1.png``).

    Returns:
        ``[png_path, pdf_path]``.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    # no creation dates or software versions inside: a rerun rewrites identical files
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None}}
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=metadata[path.suffix[1:]])
    return paths


def save_figures(figures: Mapping[str, Figure | None], folder: str | Path) -> list[Path]:
    """Save each figure as ``folder/<name>`` (:func:`save_figure`); a None figure (nothing to
    draw for this run, e.g. no JEPA-family objective for the collapse monitor) is skipped.

    Returns:
        The written paths, two per saved figure.
    """
    return [path for name, fig in figures.items() if fig is not None
            for path in save_figure(fig, Path(folder) / name)]
