"""The ``voxels`` baseline: intensity features and the logistic-regression probe."""

import numpy as np
import pytest
import torch

from neurossl.config import load_config
from neurossl.evaluate import run as run_module
from neurossl.evaluate.metrics import roc_auc
from neurossl.evaluate.run import Evaluator
from neurossl.evaluate.runner import VOXELS, jobs
from neurossl.evaluate.voxel_probe import (QUANTILES, cached_intensity_features, fit_predict_voxels,
                                           volume_features)


def test_features_are_cell_means_then_brain_quantiles():
    volume = torch.arange(4 * 4 * 4, dtype=torch.float32).reshape(1, 4, 4, 4)
    features = volume_features(volume, size=2)
    assert features.shape == (8 + len(QUANTILES),)
    # cell (0, 0, 0) holds x = 0, 1, 4, 5, 16, 17, 20, 21 (D, H, W strides 16, 4, 1)
    assert features[0] == pytest.approx(np.mean([0, 1, 4, 5, 16, 17, 20, 21]))
    assert features[7] == pytest.approx(np.mean([42, 43, 46, 47, 58, 59, 62, 63]))
    # voxel 0 is background (0 outside the brain mask): the quantiles cover the values 1..63
    np.testing.assert_allclose(features[8:], np.quantile(np.arange(1, 64), QUANTILES), rtol=1e-5)


def test_cached_features_follow_the_requested_order(smoke_data):
    cache = smoke_data / "cache"
    from neurossl.data.cache import read_index

    uids = read_index(cache).query("status == 'ok'")["scan_uid"].tolist()[:3]
    forward = cached_intensity_features(cache, uids, size=2)
    backward = cached_intensity_features(cache, uids[::-1], size=2)
    np.testing.assert_array_equal(forward, backward[::-1])
    assert forward.shape == (3, 8 + len(QUANTILES)) and np.isfinite(forward).all()
    with pytest.raises(KeyError, match="not cached"):
        cached_intensity_features(cache, ["sub-nobody_ses-01_T1w"], size=2)
    with pytest.raises(ValueError, match="pooling size"):
        cached_intensity_features(cache, uids, size=0)


def test_an_empty_channel_has_zero_quantiles():
    image = torch.zeros(2, 4, 4, 4)
    image[1, 1:3, 1:3, 1:3] = 2.0
    features = volume_features(image, size=1).reshape(2, 1 + len(QUANTILES))
    assert not features[0].any()
    np.testing.assert_allclose(features[1], [0.25] + [2.0] * len(QUANTILES))


def test_probe_reads_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 64))
    y = np.repeat([0, 1], 80)
    x[y == 1, :4] += 1.5  # four cells brighter in class 1, as a lesion would make them
    train, test = np.arange(0, 160, 2), np.arange(1, 160, 2)
    proba = fit_predict_voxels(x[train], y[train], x[test], num_classes=2)
    assert proba.shape == (80, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert roc_auc(y[test], proba) > 0.9
    shuffled = rng.permutation(y)
    noise = fit_predict_voxels(x[train], shuffled[train], x[test], num_classes=2)
    assert abs(roc_auc(shuffled[test], noise) - 0.5) < 0.2


def test_probe_needs_every_class_in_training():
    x = np.zeros((6, 3))
    with pytest.raises(ValueError, match=r"class counts are \[4, 2, 0\]"):
        fit_predict_voxels(x, np.array([0, 0, 0, 0, 1, 1]), x, num_classes=3)


def test_voxels_baseline_runs_as_a_frozen_job():
    todo = jobs([], ["voxels"], ["frozen", "finetune"], ["glioma_grade2_vs_34"])
    assert [(s.name, m, t) for s, m, t in todo] == [("voxels", "frozen", "glioma_grade2_vs_34")]


def test_voxels_baseline_fits_on_train_and_val_and_scores_test(smoke_data, monkeypatch):
    """Spy on the probe: it fits on the fold's train + val scans and predicts its test scans."""
    calls = []
    original = run_module.fit_predict_voxels

    def spy(train_x, train_y, test_x, num_classes):
        calls.append((len(train_x), len(test_x)))
        return original(train_x, train_y, test_x, num_classes)

    monkeypatch.setattr(run_module, "fit_predict_voxels", spy)
    cfg = load_config("smoke", overrides=["evaluate.voxel_size=4"])
    evaluator = Evaluator(cfg, smoke_data / "cache", smoke_data / "splits")
    parts = []
    original_parts = run_module.fold_partitions

    def recording(*args, **kwargs):
        parts.append(original_parts(*args, **kwargs))
        return parts[-1]

    monkeypatch.setattr(run_module, "fold_partitions", recording)
    out = evaluator.run(VOXELS, "cognition_nc_vs_ad", "frozen")
    assert len(calls) == len(parts) == 2  # the smoke profile's 2 folds
    for (n_fit, n_test), p in zip(calls, parts):
        assert n_fit == len(p["train"]) + len(p["val"]) and n_test == len(p["test"])
    rows = {(r["fold"], r["metric"]) for r in out.rows if r["encoder"] == "voxels"}
    assert {(0, "roc_auc"), (1, "roc_auc")} <= rows


def test_an_official_rule_cache_is_standardised_over_the_brain_before_features():
    from neurossl.evaluate.voxel_probe import standardise_brain

    volume = np.zeros((4, 4, 4), dtype=np.float32)
    volume[1:3, 1:3, 1:3] = [[[100, 300], [100, 300]], [[100, 300], [100, 300]]]  # scanner units
    out = standardise_brain(volume)
    assert out[0, 0, 0] == 0.0 and set(np.unique(out[1:3, 1:3, 1:3])) == {-1.0, 1.0}
    assert np.array_equal(standardise_brain(np.zeros((2, 2, 2), np.float32)), np.zeros((2, 2, 2)))
