"""2-D embeddings of encoder features and clustering scores (the paper's t-SNE table).

The paper embeds 768-D encoder features of a held-out test set with t-SNE and reports the
silhouette of the true labels and the NMI between k-means clusters and the labels, both in the
raw feature space and in the 2-D projection. :func:`analyse_embeddings` does that for one encoder
and keeps the 2-D coordinates so plots reuse them; :func:`clustering_table` stacks several
encoders into one table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from sklearn.metrics import normalized_mutual_info_score, silhouette_score
from sklearn.preprocessing import StandardScaler

METHODS = ("tsne", "umap")
MIN_SAMPLES = 5


@dataclass(frozen=True)
class EmbeddingAnalysis:
    """2-D coordinates and clustering scores of one encoder's features.

    Attributes:
        coords: method (``"tsne"`` / ``"umap"``) -> ``(N, 2)`` coordinates.
        scores: columns ``space, silhouette, nmi``; ``space`` is ``"raw"`` or a method.
    """

    coords: dict[str, np.ndarray]
    scores: pd.DataFrame


def _check_features(features: np.ndarray) -> np.ndarray:
    """``features`` as float64 ``(N, D)``; raises on other ranks, too few rows or NaN."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {features.shape}")
    if len(features) < MIN_SAMPLES:
        raise ValueError(f"need at least {MIN_SAMPLES} samples to embed, got {len(features)}")
    if not np.all(np.isfinite(features)):
        raise ValueError("features contain NaN or inf values")
    return features


def embed_2d(
    features: np.ndarray,
    method: str = "tsne",
    seed: int = 0,
    perplexity: float = 30.0,
    n_neighbors: int = 15,
) -> np.ndarray:
    """Project standardised features to 2-D with t-SNE or UMAP.

    Features are standardised per dimension first so that a few large-scale dimensions do not
    dominate the distances. For small N the neighbourhood sizes are clipped: t-SNE's perplexity to
    ``(N - 1) / 3`` and UMAP's ``n_neighbors`` to ``N - 1``.

    Args:
        features: ``(N, D)``, N >= 5.
        method: ``"tsne"`` (scikit-learn, PCA init) or ``"umap"`` (umap-learn).
        seed: random state of the embedding.
        perplexity: t-SNE perplexity (ignored by UMAP).
        n_neighbors: UMAP neighbourhood size (ignored by t-SNE).

    Returns:
        ``(N, 2)`` float64 coordinates.
    """
    if method not in METHODS:
        raise ValueError(f"unknown embedding method {method!r}; choose from {METHODS}")
    scaled = StandardScaler().fit_transform(_check_features(features))
    n = len(scaled)
    if method == "tsne":
        tsne = TSNE(
            n_components=2, perplexity=min(perplexity, (n - 1) / 3), init="pca", random_state=seed
        )
        return tsne.fit_transform(scaled).astype(np.float64)
    # Imported here: umap-learn (numba) takes seconds to import and compile.
    import umap

    # n_jobs=1: a fixed random_state forces it anyway, and saying so silences umap's warning.
    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(n_neighbors, n - 1), random_state=seed, n_jobs=1
    )
    return reducer.fit_transform(scaled).astype(np.float64)


def clustering_scores(features: np.ndarray, labels: Sequence, seed: int = 0) -> dict[str, float]:
    """Silhouette of the true labels and NMI of k-means clusters against them.

    Both use the features as given (no standardisation), Euclidean distance.

    Args:
        features: ``(N, D)``, raw features or ``(N, 2)`` embedding coordinates.
        labels: ``(N,)`` class labels, at least two distinct values and fewer than N.
        seed: k-means random state (k = number of distinct labels, 10 initialisations).

    Returns:
        ``{"silhouette": float in [-1, 1], "nmi": float in [0, 1]}``.
    """
    features = _check_features(features)
    labels = np.asarray(labels)
    if labels.shape != (len(features),):
        raise ValueError(f"labels must be ({len(features)},), got shape {labels.shape}")
    k = len(np.unique(labels))
    if not 2 <= k < len(features):
        raise ValueError(f"need 2 to N - 1 distinct labels, got {k} for N = {len(features)}")
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(features)
    return {
        "silhouette": float(silhouette_score(features, labels)),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
    }


def analyse_embeddings(
    features: np.ndarray,
    labels: Sequence,
    methods: Sequence[str] = METHODS,
    seed: int = 0,
    perplexity: float = 30.0,
) -> EmbeddingAnalysis:
    """Clustering scores in the raw space and in each 2-D embedding, keeping the coordinates.

    Args:
        features: ``(N, D)`` encoder features.
        labels: ``(N,)`` class labels.
        methods: 2-D embeddings to compute, from ``("tsne", "umap")``.
        seed: random state of the embeddings and of k-means.
        perplexity: t-SNE perplexity.

    Returns:
        :class:`EmbeddingAnalysis` with ``coords[method]`` ``(N, 2)`` and one score row per space.
    """
    coords = {m: embed_2d(features, m, seed=seed, perplexity=perplexity) for m in methods}
    spaces = {"raw": features, **coords}
    rows = [{"space": name, **clustering_scores(x, labels, seed)} for name, x in spaces.items()]
    return EmbeddingAnalysis(coords=coords, scores=pd.DataFrame(rows))


def clustering_table(analyses: Mapping[str, EmbeddingAnalysis]) -> pd.DataFrame:
    """One table of every encoder's scores.

    Args:
        analyses: encoder name -> its :class:`EmbeddingAnalysis`.

    Returns:
        Columns ``encoder, space, silhouette, nmi``, encoders in the mapping's order.
    """
    if not analyses:
        raise ValueError("clustering_table received no encoders")
    frames = [a.scores.assign(encoder=name) for name, a in analyses.items()]
    table = pd.concat(frames, ignore_index=True)
    return table[["encoder", "space", "silhouette", "nmi"]]


def analyse_encoders(
    features_by_encoder: Mapping[str, tuple[np.ndarray, Sequence]],
    methods: Sequence[str] = METHODS,
    seed: int = 0,
    perplexity: float = 30.0,
) -> dict[str, EmbeddingAnalysis]:
    """:func:`analyse_embeddings` for each encoder; pass the result to :func:`clustering_table`.

    Args:
        features_by_encoder: encoder name -> ``(features (N, D), labels (N,))``.
        methods, seed, perplexity: as in :func:`analyse_embeddings`.

    Returns:
        Encoder name -> :class:`EmbeddingAnalysis`.
    """
    return {
        name: analyse_embeddings(features, labels, methods, seed, perplexity)
        for name, (features, labels) in features_by_encoder.items()
    }
