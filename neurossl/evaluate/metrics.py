"""Classification metrics of the downstream evaluation: accuracy, macro-F1 and ROC-AUC.

Two entry points share one definition of each metric:

- ``classification_metrics``: the point estimate on one test set, through scikit-learn;
- ``weighted_metric``: the same metric under a batch of integer sample weights ``(B, N)``,
  vectorised; a weight is how often a scan was drawn, so this is what the bootstrap needs.

Predictions are the argmax over classes. Macro-F1 averages over the labels seen in ``y_true`` or
in the predictions (scikit-learn's default). ROC-AUC is binary from the positive-class column
``proba[:, 1]``; for K > 2 classes it is the unweighted mean of the one-vs-rest AUCs, which is
scikit-learn's ``multi_class="ovr", average="macro"`` without its check that rows sum to 1, so
logits and other per-class scores work too. It is nan when a class is absent from ``y_true``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

METRICS = ("accuracy", "macro_f1", "roc_auc")


def check_metric(metric: str) -> None:
    """Raise ValueError unless ``metric`` is one of ``METRICS``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def check_inputs(y_true, proba, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and class scores; return column indices ``(N,)`` and ``proba (N, K)``.

    ``y_true``: (N,) labels; ``proba``: (N, K) class probabilities (rows need not sum to 1);
    ``classes``: the labels of proba's columns in order, default ``0..K-1``.
    """
    y_true, proba = np.asarray(y_true), np.asarray(proba, dtype=float)
    if proba.ndim != 2:
        raise ValueError(f"proba must be 2-D (N, K), got shape {proba.shape}")
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be 1-D (N,), got shape {y_true.shape}")
    n_samples, n_classes = proba.shape
    if len(y_true) != n_samples:
        raise ValueError(f"y_true has {len(y_true)} labels but proba has {n_samples} rows")
    if n_samples == 0 or n_classes < 2:
        raise ValueError(f"need at least one sample and two classes, got proba {proba.shape}")
    if not np.isfinite(proba).all():
        raise ValueError("proba contains nan or inf")
    classes = np.arange(n_classes) if classes is None else np.asarray(classes)
    if classes.shape != (n_classes,) or np.unique(classes).size != n_classes:
        raise ValueError(f"classes must be {n_classes} distinct labels, got {classes.tolist()}")
    matches = y_true[:, None] == classes[None, :]
    known = matches.any(axis=1)
    if not known.all():
        bad = np.unique(y_true[~known]).tolist()
        raise ValueError(f"labels {bad} are out of range: proba's columns are {classes.tolist()}")
    return matches.argmax(axis=1), proba


def classification_metrics(y_true, proba, classes=None) -> dict[str, float]:
    """Accuracy, macro-F1 and ROC-AUC of one test set.

    ``y_true``: (N,) labels in ``classes`` (default ``0..K-1``); ``proba``: (N, K) scores.
    Returns ``{"accuracy", "macro_f1", "roc_auc"}`` as floats; roc_auc is nan when a class is
    missing from ``y_true``.
    """
    y, proba = check_inputs(y_true, proba, classes)
    pred = proba.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "roc_auc": roc_auc(y, proba),
    }


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """ROC-AUC of column indices ``y (N,)`` against scores ``proba (N, K)``; nan if undefined."""
    n_classes = proba.shape[1]
    if np.unique(y).size < n_classes:  # a class without samples has no ROC curve
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(np.mean([roc_auc_score(y == c, proba[:, c]) for c in range(n_classes)]))


def weighted_metric(metric: str, y: np.ndarray, proba: np.ndarray, weights) -> np.ndarray:
    """``metric`` under each row of sample weights ``weights (B, N)``; returns ``(B,)``.

    ``y``: (N,) column indices and ``proba``: (N, K), as ``check_inputs`` returns them. Integer
    weights give exactly the metric of the data set in which sample ``i`` appears
    ``weights[b, i]`` times, i.e. the bootstrap replicates of ``classification_metrics``. nan
    where the metric is undefined (roc_auc with a class missing from the resample).
    """
    check_metric(metric)
    weights = np.asarray(weights, dtype=float)
    pred = proba.argmax(axis=1)
    if metric == "accuracy":
        return weights @ (pred == y).astype(float) / weights.sum(axis=1)
    if metric == "macro_f1":
        return _weighted_macro_f1(y, pred, weights, proba.shape[1])
    return _weighted_roc_auc(y, proba, weights)


def _weighted_macro_f1(y, pred, weights, n_classes) -> np.ndarray:
    """Macro-F1 ``(B,)`` over the labels present in truth or prediction of each weighting."""
    classes = np.arange(n_classes)
    is_true, is_pred = y[:, None] == classes, pred[:, None] == classes  # (N, K)
    tp = weights @ (is_true & is_pred).astype(float)  # (B, K)
    fp = weights @ (~is_true & is_pred).astype(float)
    fn = weights @ (is_true & ~is_pred).astype(float)
    denom = 2 * tp + fp + fn
    # scikit-learn averages over labels seen in y_true or y_pred; those are the ones with denom > 0
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)


def _weighted_roc_auc(y, proba, weights) -> np.ndarray:
    """ROC-AUC ``(B,)``: binary from column 1, else the mean of one-vs-rest AUCs."""
    n_classes = proba.shape[1]
    if n_classes == 2:
        return weighted_binary_auc(y == 1, proba[:, 1], weights)
    per_class = [weighted_binary_auc(y == c, proba[:, c], weights) for c in range(n_classes)]
    return np.mean(per_class, axis=0)  # nan as soon as one class is absent


def weighted_binary_auc(positive: np.ndarray, score: np.ndarray, weights) -> np.ndarray:
    """Mann-Whitney AUC of ``score (N,)`` for ``positive (N,) bool`` per weighting ``(B, N)``.

    AUC = P(score of a positive > score of a negative) + P(tie) / 2, pairs weighted by
    ``w_i w_j``. Sorting once by score and summing weights per tie block makes every weighting a
    cumulative sum, with no loop over resamples. Returns ``(B,)``, nan where a weighting has no
    positive or no negative.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    order = np.argsort(score, kind="stable")
    sorted_score, pos = score[order], positive[order]
    block_starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order]
    w_pos = np.add.reduceat(w * pos, block_starts, axis=1)  # (B, U) per distinct score
    w_neg = np.add.reduceat(w * ~pos, block_starts, axis=1)
    neg_below = np.cumsum(w_neg, axis=1) - w_neg
    u_stat = np.sum(w_pos * (neg_below + 0.5 * w_neg), axis=1)
    n_pairs = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    return np.divide(u_stat, n_pairs, out=np.full_like(u_stat, np.nan), where=n_pairs > 0)
