"""Reconstructions of an MAE run, pooled encoder features and the evaluation figures."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurossl.analysis.features import downstream_scans, pooled_features
from neurossl.analysis.reconstruction import reconstruct
from neurossl.config import load_config
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.evaluate.backbones import random_twin, resolve_encoder
from neurossl.plots.evaluation import (plot_fewshot, plot_probe_comparison,
                                       plot_reconstruction_slices, plot_roc_curves)
from neurossl.plots.style import save_figure


@pytest.fixture(scope="module")
def mae_run(smoke_runs) -> Path:
    """The session's 6-step MAE run on the smoke cohort."""
    return smoke_runs["mae"]


@pytest.fixture(scope="module")
def image(smoke_data):
    cfg = load_config("smoke")
    return CachedVolumeDataset(smoke_data / "cache", None, train=False, preprocess=cfg.preprocess)[0]["image"]


def test_reconstruct_shapes_mask_and_mosaic(mae_run, image):
    out = reconstruct(mae_run, image, seed=3)
    shape = tuple(image.shape[1:])
    assert {k: v.shape for k, v in out.items()} == {k: shape for k in ("input", "mask", "reconstruction", "mosaic")}
    assert out["mask"].dtype == bool
    assert out["mask"].mean() == pytest.approx(load_config("smoke").masking.ratio, abs=0.1)
    visible = ~out["mask"]
    np.testing.assert_array_equal(out["mosaic"][visible], out["input"][visible])
    np.testing.assert_array_equal(out["mosaic"][out["mask"]], out["reconstruction"][out["mask"]])
    again = reconstruct(mae_run, image, seed=3)
    np.testing.assert_array_equal(again["mask"], out["mask"])


def test_reconstruct_refuses_runs_without_decoder(mae_run, image, tmp_path):
    missing = tmp_path / "no_checkpoint"
    missing.mkdir()
    (missing / "config.yaml").write_text((mae_run / "config.yaml").read_text())
    with pytest.raises(FileNotFoundError, match="last.pt"):
        reconstruct(missing, image)
    jepa = tmp_path / "jepa"
    jepa.mkdir()
    (jepa / "config.yaml").write_text((mae_run / "config.yaml").read_text().replace("name: mae", "name: jepa"))
    with pytest.raises(ValueError, match="no pixel decoder"):
        reconstruct(jepa, image)


def test_pooled_features_shape_and_determinism(mae_run, smoke_data):
    cfg = load_config("smoke")
    scans = downstream_scans(smoke_data / "cache", smoke_data / "splits")
    assert list(scans.columns) == ["scan_uid", "subject_id", "dataset", "label", "modality"]
    assert scans["scan_uid"].is_unique and set(scans["dataset"]) >= {"cognition", "glioma"}
    uids = scans["scan_uid"].tolist()[:6]
    first = pooled_features(mae_run, smoke_data / "cache", uids, cfg, batch_size=4)
    assert first.shape == (6, cfg.model.embed_dim) and np.isfinite(first).all()
    np.testing.assert_allclose(pooled_features(mae_run, smoke_data / "cache", uids, cfg, batch_size=3),
                               first, rtol=1e-5, atol=1e-5)
    twin = pooled_features(random_twin(resolve_encoder(mae_run)), smoke_data / "cache", uids, cfg)
    assert twin.shape == first.shape and not np.allclose(twin, first)


def fake_predictions() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for encoder in ("mae", "random", "resnet50"):
        for task, k in (("binary", 2), ("three", 3)):
            y = np.tile(np.arange(k), 10)
            proba = rng.dirichlet(np.ones(k), len(y))
            frame = pd.DataFrame({"subject_id": [f"s{i}" for i in range(len(y))],
                                  "scan_uid": [f"u{i}" for i in range(len(y))], "y": y,
                                  "encoder": encoder, "objective": "x", "task": task, "mode": "frozen",
                                  "fold": 0, "seed": 0})
            for c in range(3):
                frame[f"p{c}"] = proba[:, c] if c < k else np.nan
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_evaluation_plots_render(tmp_path):
    predictions = fake_predictions()
    results = pd.DataFrame([{"encoder": e, "objective": "x", "task": "binary", "mode": f"fewshot_{k}",
                             "fold": 0, "seed": s, "metric": "roc_auc", "value": 0.5 + 0.01 * k + 0.02 * s}
                            for e in ("mae", "resnet50") for k in (1, 4) for s in (0, 1)])
    paired = pd.DataFrame([{"encoder": "mae", "task": t, "mode": m, "seed": 0, "diff": 0.05,
                            "low": -0.1, "high": 0.2, "p_bootstrap": 0.4}
                           for t in ("binary", "three") for m in ("frozen", "finetune")])
    volume = np.random.default_rng(0).normal(size=(8, 8, 8))
    figures = {
        "roc": plot_roc_curves(predictions, ["binary", "three"], "frozen"),
        "fewshot": plot_fewshot(results),
        "paired": plot_probe_comparison(paired),
        "slices": plot_reconstruction_slices(volume, volume > 0, {"MAE": volume * 0.5}),
    }
    for name, fig in figures.items():
        png, pdf = save_figure(fig, tmp_path / name)
        assert png.stat().st_size > 0 and pdf.stat().st_size > 0
    with pytest.raises(ValueError, match="no predictions"):
        plot_roc_curves(predictions, "binary", "finetune")
