"""Clustering of downstream features per dataset and over all scans (notebook 04).

Each dataset's scans are scored against its own labels (a dataset with one label is skipped: a
clustering score needs two), and all downstream scans together against their dataset, which
shows how much of the features is acquisition and anatomy rather than disease.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, cpu_count, delayed
from threadpoolctl import threadpool_limits

from neurossl.analysis.embeddings import METHODS, EmbeddingAnalysis, analyse_embeddings, clustering_table

SPACES = ("raw", "tsne", "umap")


def _analyse_one(features: np.ndarray, labels: np.ndarray, methods: Sequence[str]) -> EmbeddingAnalysis:
    # t-SNE / UMAP / k-means threads only thrash on a shared CPU: one process per core instead
    with threadpool_limits(1):
        return analyse_embeddings(features, labels, methods)


def analyse_jobs(jobs: Mapping[Hashable, tuple[np.ndarray, np.ndarray]], methods: Sequence[str] = METHODS,
                 n_jobs: int | None = None) -> dict[Hashable, EmbeddingAnalysis]:
    """key -> :func:`~neurossl.analysis.embeddings.analyse_embeddings` of ``(features, labels)``.

    The analyses run in ``n_jobs`` processes (default: the CPU cores this process may use),
    largest first. Each depends only on its own features, labels and fixed seed, so the result
    is the same for any ``n_jobs``.
    """
    keys = sorted(jobs, key=lambda k: -len(jobs[k][0]))
    workers = max(1, min(n_jobs or cpu_count(), len(keys)))
    done = Parallel(n_jobs=workers)(delayed(_analyse_one)(*jobs[k], methods) for k in keys)
    results = dict(zip(keys, done))
    return {k: results[k] for k in jobs}


def per_dataset_analyses(features: Mapping[str, np.ndarray], scans: pd.DataFrame,
                         methods: Sequence[str] = METHODS,
                         n_jobs: int | None = None) -> dict[str, dict[str, EmbeddingAnalysis]]:
    """dataset -> encoder -> analysis of that dataset's rows of ``features`` against ``label``.

    Args:
        features: encoder -> ``(N, D)`` features, rows in the order of ``scans``.
        scans: ``dataset, label`` per row (:func:`neurossl.analysis.features.downstream_scans`).
        methods, n_jobs: as in :func:`analyse_jobs`.
    """
    jobs = {}
    for dataset, rows in scans.groupby("dataset", sort=True):
        if rows["label"].nunique() < 2:
            continue
        for name, f in features.items():
            jobs[dataset, name] = (f[rows.index], rows["label"].to_numpy())
    out: dict[str, dict[str, EmbeddingAnalysis]] = {}
    for (dataset, name), analysis in analyse_jobs(jobs, methods, n_jobs).items():
        out.setdefault(dataset, {})[name] = analysis
    return out


def by_dataset_analysis(features: Mapping[str, np.ndarray], scans: pd.DataFrame,
                        methods: Sequence[str] = METHODS,
                        n_jobs: int | None = None) -> dict[str, EmbeddingAnalysis]:
    """encoder -> analysis of all scans' features against their dataset (``methods``,
    ``n_jobs``: as in :func:`analyse_jobs`)."""
    return analyse_jobs({name: (f, scans["dataset"].to_numpy()) for name, f in features.items()},
                        methods, n_jobs)


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
