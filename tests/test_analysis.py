"""Embedding / clustering analysis, 3-D power spectra, and their figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter
from threadpoolctl import threadpool_limits

from neurossl.analysis.embeddings import (
    analyse_embeddings,
    clustering_scores,
    clustering_table,
    embed_2d,
)
from neurossl.analysis.spectrum import (
    high_frequency_energy,
    power_spectrum,
    radial_frequency,
    radial_profile,
    reconstruction_spectra,
    spectral_table,
    windowed_high_share,
)
from neurossl.losses.spectral import high_pass_mask
from neurossl.plots.embeddings import plot_embedding_grid
from neurossl.plots.spectrum import (
    plot_hf_energy,
    plot_radial_profiles,
    plot_reconstruction_spectra,
)
from neurossl.plots.style import save_figure, set_theme

SHAPE = (24, 24, 24)


@pytest.fixture(autouse=True)
def one_thread():
    """One OpenMP / BLAS thread: on tiny inputs t-SNE's per-iteration parallel regions cost more
    than they compute, and on a shared, busy machine their spin-waits make a 1 s fit take 15 s."""
    with threadpool_limits(limits=1):
        yield


def blobs(n_per_class: int = 20, dim: int = 16, spread: float = 10.0, seed: int = 0):
    """Three well-separated Gaussian blobs: ``(features (3n, dim), labels (3n,))``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * spread
    labels = np.repeat(np.arange(3), n_per_class)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def cosine(shape, cycles):
    """``cos(2 pi k . x / n)``: one frequency of ``cycles`` periods per axis, ``(D, H, W)``."""
    grid = np.indices(shape)
    phase = sum(2 * np.pi * k * g / n for k, g, n in zip(cycles, grid, shape))
    return np.cos(phase)


def noise(shape=SHAPE, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


# ----------------------------------------------------------------------------- embeddings


def test_embed_rejects_bad_input():
    features, _ = blobs()
    with pytest.raises(ValueError, match="unknown embedding method"):
        embed_2d(features, "pca")
    with pytest.raises(ValueError, match="at least 5"):
        embed_2d(features[:4])


def test_clustering_scores_separate_blobs_from_random_labels():
    features, labels = blobs()
    good = clustering_scores(features, labels)
    assert good["silhouette"] > 0.5 and good["nmi"] > 0.9
    random_labels = np.random.default_rng(1).permutation(labels)
    bad = clustering_scores(features, random_labels)
    assert bad["nmi"] < 0.2 and bad["silhouette"] < 0.1


def test_tsne_analysis_and_table():
    features, labels = blobs()
    # perplexity 30 > N / 3 = 20: clipped rather than rejected by scikit-learn.
    analysis = analyse_embeddings(features, labels, methods=("tsne",), perplexity=30)
    coords = analysis.coords["tsne"]
    assert set(analysis.coords) == {"tsne"} and coords.shape == (60, 2)
    assert np.all(np.isfinite(coords))
    table = clustering_table({"MAE": analysis, "SL-MAE": analysis})
    assert list(table.columns) == ["encoder", "space", "silhouette", "nmi"]
    assert table[["encoder", "space"]].values.tolist() == [
        ["MAE", "raw"], ["MAE", "tsne"], ["SL-MAE", "raw"], ["SL-MAE", "tsne"]
    ]
    assert (table["nmi"] > 0.9).all()


# ----------------------------------------------------------------------------- spectra


def test_radial_frequency_matches_spectral_loss_mask():
    shape = (8, 12, 9)
    r = radial_frequency(shape)
    assert r.shape == shape and r.min() == 0.0 and r.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(r >= 0.3, high_pass_mask(shape, 0.3).numpy())


def test_power_spectrum_parseval_and_zero_dc():
    power = power_spectrum(3.0 * noise() + 7.0)
    assert power.shape == SHAPE
    assert power[0, 0, 0] == pytest.approx(0.0, abs=1e-9)
    assert power.mean() == pytest.approx(1.0)


def test_low_frequency_cosine_has_no_high_frequency_energy():
    assert high_frequency_energy(cosine(SHAPE, (1, 2, 0)), cutoff=0.3) < 1e-10


def test_high_frequency_cosine_is_all_high_frequency():
    assert high_frequency_energy(cosine(SHAPE, (10, 9, 11)), cutoff=0.3) > 1 - 1e-10


def test_white_noise_share_matches_grid_fraction():
    r = radial_frequency(SHAPE)
    # Every non-DC coefficient carries the same expected power, and DC is zeroed by z-scoring.
    expected = ((r >= 0.3).sum()) / (r.size - 1)
    shares = [high_frequency_energy(noise(seed=s), cutoff=0.3) for s in range(3)]
    assert np.mean(shares) == pytest.approx(expected, abs=0.02)


def test_white_noise_profile_is_flat():
    centres, profile = radial_profile(noise((32, 32, 32)), n_bins=16)
    assert centres.shape == profile.shape == (16,)
    assert np.all(np.isfinite(profile))
    # Outer bins hold few coefficients (cube corners), so allow more scatter there.
    np.testing.assert_allclose(profile[1:12], 1.0, atol=0.15)


def test_smoothing_lowers_high_frequency_energy():
    volume = noise()
    sharp = high_frequency_energy(volume)
    smooth = high_frequency_energy(gaussian_filter(volume, 1.5))
    assert smooth < 0.2 * sharp


def test_mask_crops_to_bounding_box():
    inside = cosine((10, 12, 8), (4, 5, 3))
    volume, mask = np.zeros(SHAPE), np.zeros(SHAPE, bool)
    volume[5:15, 3:15, 10:18] = inside
    mask[5:15, 3:15, 10:18] = True
    assert high_frequency_energy(volume, mask=mask) == pytest.approx(high_frequency_energy(inside))
    with pytest.raises(ValueError, match="empty"):
        high_frequency_energy(volume, mask=np.zeros(SHAPE, bool))


def test_constant_volume_is_rejected():
    with pytest.raises(ValueError, match="constant"):
        power_spectrum(np.ones(SHAPE))


def test_spectral_table_columns():
    items = [(f"v{i}", "A" if i < 2 else "B", noise(seed=i)) for i in range(4)]
    energy, profiles = spectral_table(items, cutoff=0.3, n_bins=8, progress=False)
    assert list(energy.columns) == ["id", "dataset", "hf_energy"] and len(energy) == 4
    assert list(profiles.columns) == ["id", "dataset", "frequency", "power"]
    assert len(profiles) == 4 * 8
    assert energy["hf_energy"].iloc[0] == pytest.approx(high_frequency_energy(items[0][2]))


def test_reconstruction_spectra_ratio():
    target = noise()
    table = reconstruction_spectra(target, {"same": target, "blurred": gaussian_filter(target, 1)})
    assert set(table["model"]) == {"target", "same", "blurred"}
    same = table.loc[table["model"] == "same", "ratio"]
    # Radial bins that no frequency of a 24^3 grid falls in are NaN, for target and recon alike.
    assert same.notna().sum() > 20
    np.testing.assert_allclose(same.dropna(), 1.0)
    blurred = table[table["model"] == "blurred"].dropna()
    # Blurring removes high frequencies; z-scoring then lifts the surviving low ones above 1.
    assert blurred["ratio"].iloc[-1] < 0.1 and blurred["ratio"].iloc[0] > 1.0


# ----------------------------------------------------------------------------- figures


def test_figures_render(tmp_path):
    set_theme()
    features, labels = blobs(n_per_class=8)
    coords = {"MAE": features[:, :2], "JEPA": features[:, 2:4]}
    datasets = np.where(np.arange(24) % 2, "ADNI", "NACC")
    items = [(f"v{i}", "AB"[i // 3], gaussian_filter(noise(seed=i), i % 3)) for i in range(6)]
    energy, profiles = spectral_table(items, n_bins=8, progress=False)
    target = noise()
    spectra = reconstruction_spectra(target, {"MAE": gaussian_filter(target, 1)}, n_bins=8)
    figures = {
        "grid": plot_embedding_grid(coords, labels, datasets, "tsne", "diagnosis"),
        "profiles": plot_radial_profiles(profiles),
        "hf": plot_hf_energy(energy),
        "recon": plot_reconstruction_spectra(spectra),
    }
    for name, fig in figures.items():
        paths = save_figure(fig, tmp_path / "figs" / name)
        assert [p.suffix for p in paths] == [".png", ".pdf"]
        assert all(p.stat().st_size > 0 for p in paths)
        plt.close(fig)
    # The figures are built without pyplot, so none is left open in its registry.
    assert plt.get_fignums() == []


def test_hf_energy_figure_is_the_same_file_when_regenerated(tmp_path):
    set_theme()
    energy = pd.DataFrame({"id": [f"v{i}" for i in range(12)], "dataset": ["A", "B", "C"] * 4,
                           "hf_energy": np.linspace(0.05, 0.2, 12)})
    np.random.seed(1)  # a different global NumPy state for each draw must not move the points
    first = save_figure(plot_hf_energy(energy), tmp_path / "one")[0].read_bytes()
    np.random.seed(2)
    second = save_figure(plot_hf_energy(energy), tmp_path / "two")[0].read_bytes()
    assert first == second


def test_stage_table_has_tables_7_layout():
    from neurossl.analysis.embeddings import analyse_encoders
    from neurossl.analysis.stages import stage_table

    rng = np.random.default_rng(0)
    labels = np.repeat(["NC", "AD"], 20)
    separated = rng.normal(size=(40, 6)) + 4.0 * (labels == "AD")[:, None]
    mixed = rng.normal(size=(40, 6))
    analyses = {"pretrained": analyse_encoders({"mae": (mixed, labels)}, methods=("tsne",), perplexity=5),
                "fine-tuned": analyse_encoders({"mae": (separated, labels)}, methods=("tsne",), perplexity=5)}
    table = stage_table(analyses)
    assert list(table.index) == [("pretrained", "mae"), ("fine-tuned", "mae")]
    assert list(table.columns) == ["silhouette (raw)", "nmi (raw)", "silhouette (tsne)", "nmi (tsne)"]
    assert table.loc[("fine-tuned", "mae"), "silhouette (raw)"] > table.loc[("pretrained", "mae"), "silhouette (raw)"] + 0.3


def test_windowed_high_share_ignores_the_faces_and_reads_texture():
    from neurossl.analysis.spectrum import _high_share

    ramp = np.broadcast_to(np.arange(16.0)[:, None, None], (16, 16, 16)).copy()
    # a smooth ramp: periodic, the FFT sees a jump at its faces (a seam); the window removes it
    assert _high_share(power_spectrum(ramp), 0.3) > 0.01 > windowed_high_share(ramp)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((16, 16, 16))
    smooth = gaussian_filter(noise, 2.0)
    assert windowed_high_share(noise) > 0.5 > 0.05 > windowed_high_share(smooth)
    with pytest.raises(ValueError, match="constant"):
        windowed_high_share(np.ones((4, 4, 4)))


def test_tubelet_hf_reads_masked_brain_tubelets_only():
    from neurossl.analysis.spectral_energy import tubelet_hf

    rng = np.random.default_rng(1)
    target = rng.standard_normal((8, 8, 8)) + 5.0
    target[:, :, 4:] = 0.0  # background half
    mask = np.zeros((8, 8, 8), bool)
    mask[:4] = True  # the first layer of 4^3 tubelets is masked
    blurred = gaussian_filter(target, 1.5)
    out = tubelet_hf(target, mask, {"MAE": blurred, "noise": target}, 4, 4, 0.3)
    # four masked tubelets in the first layer, two of them background: two are scored
    expected = np.mean([windowed_high_share(target[:4, h:h + 4, :4]) for h in (0, 4)])
    assert out["target_tubelets"] == pytest.approx(expected) == out["noise_tubelets"]
    assert out["MAE_tubelets"] < out["target_tubelets"]
    none = tubelet_hf(target, np.zeros_like(mask), {"MAE": blurred}, 4, 4, 0.3)
    assert np.isnan(none["target_tubelets"]) and np.isnan(none["MAE_tubelets"])
