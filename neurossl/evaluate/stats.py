"""Uncertainty of downstream metrics: subject-level bootstrap, paired bootstrap, DeLong test.

The bootstrap draws test *subjects* with replacement when subject ids are given: several scans of
one subject are not independent, and resampling them one by one would understate the spread.
Every resample is a row of integer weights (how often each scan was drawn), and the metrics are
computed for a whole batch of rows at once (``metrics.weighted_metric``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from neurossl.evaluate.metrics import check_inputs, check_metric, classification_metrics
from neurossl.evaluate.metrics import weighted_metric


@dataclass(frozen=True)
class CI:
    """Percentile bootstrap confidence interval of one metric.

    ``point``: the metric on the full test set; ``low``, ``high``: the alpha/2 and 1 - alpha/2
    percentiles of the valid replicates; ``n_boot``: resamples drawn; ``n_valid``: resamples in
    which the metric was defined (the percentiles use only those).
    """

    point: float
    low: float
    high: float
    n_boot: int
    n_valid: int


@dataclass(frozen=True)
class PairedTest:
    """Paired bootstrap comparison of encoders a and b: ``diff = metric(a) - metric(b)``."""

    diff: float
    low: float
    high: float
    p_value: float
    n_valid: int


@dataclass(frozen=True)
class DeLongResult:
    """DeLong test of two correlated ROC-AUCs on the same cases (two-sided p-value)."""

    auc_a: float
    auc_b: float
    z: float
    p_value: float


def bootstrap_weights(n_samples: int, n_boot: int, rng: np.random.Generator, groups=None):
    """How often each sample is drawn in each of ``n_boot`` resamples: ``(n_boot, N)`` counts.

    Without ``groups`` the N samples are drawn with replacement. With ``groups (N,)`` (subject
    ids) the S subjects are drawn with replacement and a drawn subject brings all of its scans, so
    the scans of one subject always share a weight.
    """
    if groups is None:
        return _draw_counts(n_samples, n_boot, rng)
    groups = np.asarray(groups)
    if groups.shape != (n_samples,):
        raise ValueError(f"groups must have shape ({n_samples},), got {groups.shape}")
    _, subject = np.unique(groups, return_inverse=True)
    subject_counts = _draw_counts(int(subject.max()) + 1, n_boot, rng)  # (B, S)
    return subject_counts[:, subject.ravel()]


def _draw_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Counts ``(n_boot, n)`` of n draws with replacement from n items, one row per resample."""
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = draws + n * np.arange(n_boot)[:, None]  # a separate bincount range per resample
    return np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n)


def bootstrap_mean(values, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values (U,)`` (one per unit: volume, subject) and its 95 % percentile bootstrap
    interval over the units: ``(mean, low, high)``."""
    x = np.asarray(values, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    low, high = np.quantile(x[draws].mean(axis=1), [0.025, 0.975])
    return float(x.mean()), float(low), float(high)


def bootstrap_ci(
    y_true, proba, metric="roc_auc", n_boot=1000, alpha=0.05, seed=0, groups=None
) -> CI:
    """Percentile bootstrap CI of ``metric`` on one test set.

    ``y_true``: (N,) labels in 0..K-1; ``proba``: (N, K); ``groups``: optional (N,) subject ids
    (resample subjects, not scans). Resamples where the metric is undefined (roc_auc with a class
    missing) are skipped; fewer than half valid raises ValueError.
    """
    _check_settings(metric, n_boot, alpha)
    y, proba = check_inputs(y_true, proba)
    point = classification_metrics(y, proba)[metric]
    values = _replicates(metric, y, [proba], n_boot, seed, groups)[0]
    valid = _valid_replicates(values, metric)
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return CI(float(point), float(low), float(high), n_boot, valid.size)


def paired_bootstrap(
    y_true, proba_a, proba_b, metric="roc_auc", n_boot=2000, seed=0, groups=None, alpha=0.05
) -> PairedTest:
    """Paired bootstrap of ``metric(a) - metric(b)`` for two encoders on the same test set.

    Both encoders are scored on the same resamples, so the correlation between them (same hard
    cases) cancels in the difference. ``proba_a``, ``proba_b``: (N, K); ``low``, ``high``: the
    percentile (1 - alpha) interval of the difference; ``p_value``: see ``bootstrap_p_value``.
    """
    _check_settings(metric, n_boot, alpha)
    y, proba_a = check_inputs(y_true, proba_a)
    _, proba_b = check_inputs(y_true, proba_b)
    if proba_a.shape != proba_b.shape:
        raise ValueError(f"proba_a {proba_a.shape} and proba_b {proba_b.shape} differ in shape")
    diff = classification_metrics(y, proba_a)[metric] - classification_metrics(y, proba_b)[metric]
    values = _replicates(metric, y, [proba_a, proba_b], n_boot, seed, groups)
    valid = _valid_replicates(values[0] - values[1], metric)
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return PairedTest(float(diff), float(low), float(high), bootstrap_p_value(valid), valid.size)


def bootstrap_p_value(diffs: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from bootstrap replicates ``diffs (B,)``.

    ``p = 2 min(P*(d <= 0), P*(d >= 0))`` clipped to ``[1 / (B + 1), 1]``: twice the smaller tail
    mass at zero, so p < alpha when the equal-tailed (1 - alpha) percentile interval excludes 0.
    The floor says that B resamples cannot resolve a smaller p; replicates that are all zero
    (identical encoders) give p = 1.
    """
    tail = min(np.mean(diffs <= 0), np.mean(diffs >= 0))
    return float(np.clip(2 * tail, 1 / (diffs.size + 1), 1.0))


def _check_settings(metric: str, n_boot: int, alpha: float) -> None:
    """Raise ValueError on an unknown metric, n_boot < 1 or alpha outside (0, 1)."""
    check_metric(metric)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _replicates(metric, y, probas, n_boot, seed, groups, chunk=256) -> np.ndarray:
    """Replicates ``(P, n_boot)`` of ``metric`` for each of ``probas`` on the same resamples.

    Resamples are drawn ``chunk`` at a time to bound memory at ``chunk x N`` weights.
    """
    rng = np.random.default_rng(seed)
    values = np.empty((len(probas), n_boot))
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        weights = bootstrap_weights(len(y), stop - start, rng, groups)
        for i, proba in enumerate(probas):
            values[i, start:stop] = weighted_metric(metric, y, proba, weights)
    return values


def _valid_replicates(values: np.ndarray, metric: str) -> np.ndarray:
    """The finite replicates; ValueError when fewer than half of them are."""
    valid = values[np.isfinite(values)]
    if valid.size < values.size / 2:
        raise ValueError(
            f"{metric} is undefined (a class missing) in {values.size - valid.size} of "
            f"{values.size} resamples; the test set is too small or imbalanced to bootstrap it"
        )
    return valid


def delong_test(y_true, score_a, score_b) -> DeLongResult:
    """DeLong test of ``AUC(a) = AUC(b)`` for binary labels ``y_true (N,)`` in {0, 1}.

    ``score_a``, ``score_b``: (N,) positive-class scores of two classifiers on the same cases.
    z = (AUC_a - AUC_b) / sd, p = 2 (1 - Phi(|z|)). Equal AUCs give z = 0, p = 1 (also when the
    variance is 0, as for identical scores); different AUCs with zero variance give z = +-inf,
    p = 0.
    """
    positive, scores = _check_binary(y_true, score_a, score_b)
    aucs, cov = delong_covariance(positive, scores)
    diff = aucs[0] - aucs[1]
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if diff == 0:
        z, p_value = 0.0, 1.0
    elif var <= 0:
        z, p_value = math.copysign(math.inf, diff), 0.0
    else:
        z = diff / math.sqrt(var)
        p_value = math.erfc(abs(z) / math.sqrt(2))
    return DeLongResult(float(aucs[0]), float(aucs[1]), float(z), float(p_value))


def delong_covariance(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs ``(P,)`` and their DeLong covariance ``(P, P)`` by the fast midrank algorithm.

    Sun & Xu (2014): with m positives and n negatives, the structural components are
    V10_i = (share of negatives below positive i, ties 1/2) = (R_all_i - R_pos_i) / n and
    V01_j = 1 - (R_all_j - R_neg_j) / m from midranks R within positives, within negatives and
    over all; cov = S10 / m + S01 / n with S the sample covariances (ddof 1) of V10 and V01.
    ``positive``: (N,) bool; ``scores``: (P, N).
    """
    pos, neg = scores[:, positive], scores[:, ~positive]  # (P, m), (P, n)
    m, n = pos.shape[1], neg.shape[1]
    rank_all = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v10 = (rank_all[:, :m] - rankdata(pos, axis=1)) / n
    v01 = 1 - (rank_all[:, m:] - rankdata(neg, axis=1)) / m
    aucs = v10.mean(axis=1)
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def _check_binary(y_true, score_a, score_b) -> tuple[np.ndarray, np.ndarray]:
    """Validate DeLong inputs; return positives ``(N,) bool`` and scores ``(2, N)``."""
    y_true = np.asarray(y_true)
    score_a, score_b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    if y_true.ndim != 1 or not y_true.shape == score_a.shape == score_b.shape:
        raise ValueError(
            f"y_true, score_a and score_b must be 1-D of one length, got {y_true.shape}, "
            f"{score_a.shape}, {score_b.shape}"
        )
    scores = np.stack([score_a, score_b])
    if not np.isin(y_true, [0, 1]).all():
        raise ValueError(f"y_true must be binary 0/1, got values {np.unique(y_true).tolist()}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain nan or inf")
    positive = y_true == 1
    if min(positive.sum(), (~positive).sum()) < 2:
        raise ValueError("DeLong needs at least two positives and two negatives")
    return positive, scores
