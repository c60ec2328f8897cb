"""Clustering of downstream features per dataset and over all scans (notebook 04).

Each dataset's scans are scored against its own labels (a dataset with one label is skipped: a
clustering score needs two), and all downstream scans together against their dataset, which
shows how much of the features is acquisition and anatomy rather than disease.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from neurossl.analysis.embeddings import EmbeddingAnalysis, analyse_encoders, clustering_table

SPACES = ("raw", "tsne", "umap")


def per_dataset_analyses(features: Mapping[str, np.ndarray],
                         scans: pd.DataFrame) -> dict[str, dict[str, EmbeddingAnalysis]]:
    """dataset -> encoder -> analysis of that dataset's rows of ``features`` against ``label``.

    Args:
        features: encoder -> ``(N, D)`` features, rows in the order of ``scans``.
        scans: ``dataset, label`` per row (:func:`neurossl.analysis.features.downstream_scans`).
    """
    out = {}
    # t-SNE / UMAP / k-means threads only thrash on a shared CPU
    with threadpool_limits(1):
        for dataset, rows in scans.groupby("dataset", sort=True):
            if rows["label"].nunique() < 2:
                continue
            by_encoder = {name: (f[rows.index], rows["label"].to_numpy()) for name, f in features.items()}
            out[dataset] = analyse_encoders(by_encoder)
    return out


def by_dataset_analysis(features: Mapping[str, np.ndarray],
                        scans: pd.DataFrame) -> dict[str, EmbeddingAnalysis]:
    """encoder -> analysis of all scans' features against their dataset."""
    with threadpool_limits(1):
        return analyse_encoders({name: (f, scans["dataset"].to_numpy()) for name, f in features.items()})


def dataset_scores(analyses: Mapping[str, Mapping[str, EmbeddingAnalysis]]) -> pd.DataFrame:
    """Long scores ``encoder, space, silhouette, nmi, dataset`` of :func:`per_dataset_analyses`."""
    frames = [clustering_table(by_encoder).assign(dataset=dataset) for dataset, by_encoder in analyses.items()]
    if not frames:
        raise ValueError("no dataset with two or more labels to score")
    return pd.concat(frames, ignore_index=True)


def clustering_by_dataset(scores: pd.DataFrame) -> pd.DataFrame:
    """The paper-style table: index ``dataset``, columns ``encoder`` then silhouette and NMI per
    space (raw, t-SNE, UMAP), rounded to three decimals."""
    table = scores.pivot_table(index=["dataset", "encoder"], columns="space",
                               values=["silhouette", "nmi"], sort=False)
    table = table.reindex(columns=list(SPACES), level=1)
    table.columns = [f"{metric} ({space})" for metric, space in table.columns]
    return table.round(3).reset_index(level="encoder")
