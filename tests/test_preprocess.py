"""Deterministic and per-item preprocessing on small synthetic NIfTI phantoms."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from neurossl.config import AugmentConfig, PreprocessConfig, load_config

from neurossl.data.augment import build_augment
from neurossl.data.dataset import NiftiVolumeDataset
from neurossl.data.io import VolumeError, load_volume
from neurossl.data.preprocess import (
    SLICE_AXES,
    bounding_box,
    brain_mask,
    crop,
    ct_window_channels,
    deterministic_stage,
    item_stage,
    resize,
    slice_axis,
    through_plane_axis,
    zscore,
)

SMALL = PreprocessConfig(crop_size=16, depth=12)


def phantom(
    shape: tuple[int, int, int], seed: int = 0, ct: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """RAS ``(X, Y, Z)`` head phantom: textured ellipsoid brain inside a bright shell; its mask."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    brain = radius < 0.6
    shell = (radius > 0.75) & (radius < 0.9)
    texture = np.random.default_rng(seed).normal(0, 1, shape)
    if ct:  # air -1000 HU, brain ~ 35 HU, skull ~ 1200 HU
        data = (
            np.full(shape, -1000.0) + brain * (1035 + 8 * texture) + shell * (2200 + 100 * texture)
        )
    else:
        data = 5 + brain * (100 + 15 * texture + 30 * grid[0]) + shell * 300
    return data.astype(np.float32), brain


def store(
    path: Path, ras: np.ndarray, spacing: tuple[float, float, float], order: str = "LPS"
) -> Path:
    """Write an RAS array as a NIfTI stored in ``order`` (``LPS`` flips X, Y; ``ASR`` permutes)."""
    sx, sy, sz = spacing
    if order == "LPS":
        stored, cols = ras[::-1, ::-1, :], [(-sx, 0, 0), (0, -sy, 0), (0, 0, sz)]
    elif order == "ASR":
        stored, cols = np.transpose(ras, (1, 2, 0)), [(0, sy, 0), (0, 0, sz), (sx, 0, 0)]
    else:
        stored, cols = ras, [(sx, 0, 0), (0, sy, 0), (0, 0, sz)]
    affine = np.eye(4)
    affine[:3, :3] = np.array(cols).T
    nib.save(nib.Nifti1Image(np.ascontiguousarray(stored), affine), str(path))
    return path


def write_scan(
    folder: Path, name: str, shape, spacing, order="LPS", seed=0, ct=False, mask=True
) -> Path:
    """A phantom scan ``name.nii.gz`` (+ ``name_mask.nii.gz`` when ``mask``) in ``folder``."""
    data, brain = phantom(shape, seed, ct)
    scan = store(folder / f"{name}.nii.gz", data, spacing, order)
    if mask:
        store(folder / f"{name}_mask.nii.gz", brain.astype(np.uint8), spacing, order)
    return scan


def test_bounding_box_with_margin_known_values():
    mask = np.zeros((40, 12, 32), dtype=bool)
    mask[10:20, 5:8, 30] = True
    box = bounding_box(mask, margin=6)
    assert box == ((4, 26), (0, 12), (24, 32))  # x grown both sides; y and z clamped
    assert crop(np.zeros(mask.shape), box).shape == (22, 12, 8)
    assert bounding_box(mask, margin=0) == ((10, 20), (5, 8), (30, 31))


def test_deterministic_stage_crops_mask_box_in_ras(tmp_path):
    scan = write_scan(tmp_path, "s", (40, 44, 36), (1.0, 1.0, 1.0), order="LPS")
    _, brain = phantom((40, 44, 36))
    prep = deterministic_stage(scan, PreprocessConfig(margin=2))
    expected = bounding_box(brain, 2)
    assert prep.bbox == expected
    assert prep.data.shape == tuple(hi - lo for lo, hi in expected)
    assert prep.mask_method == "given"


def test_clip_and_zscore_statistics_inside_mask(tmp_path):
    scan = write_scan(tmp_path, "s", (40, 44, 36), (1.0, 1.0, 1.0))
    ras, brain = phantom((40, 44, 36))
    assert np.array_equal(load_volume(scan).data, ras)  # LPS storage read back in RAS
    cfg = PreprocessConfig(clip_percentiles=(1.0, 99.0))
    prep = deterministic_stage(scan, cfg)
    box_mask = crop(brain, prep.bbox)
    inside = prep.data[box_mask]
    assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1) < 1e-4
    assert np.all(prep.data[~box_mask] == 0)  # skull stripped
    lo, hi = np.percentile(ras[brain], (1, 99))
    clipped = np.clip(ras[brain], lo, hi)
    expected = (clipped - clipped.mean()) / clipped.std()
    assert np.allclose(np.sort(inside), np.sort(expected), atol=1e-4)
    assert np.mean(inside >= inside.max() - 1e-6) >= 0.009  # the top 1% sits at the clip value


def test_official_intensity_strips_then_clips_the_box_before_resizing(tmp_path):
    # official src/datasets/mri_dataset.py, on the BET-stripped, bbox- and square-cropped array:
    #   "lower_bound = np.percentile(volume, lower_percentile)" (zeros included), in
    #   "volume = self.clip_intensity_percentile(volume, lower_percentile=1, upper_percentile=99)"
    #   then "volume = self.resize(volume, crop_sizes=..., target_slices=self.frames_per_clip)"
    cfg = replace(SMALL, intensity="official")
    scan = write_scan(tmp_path, "s", (40, 44, 36), (1.0, 1.0, 1.0))
    ras, brain = phantom((40, 44, 36))
    prep = deterministic_stage(scan, cfg)
    assert np.array_equal(prep.data, crop(np.where(brain, ras, 0), prep.bbox))  # scanner units
    block = np.moveaxis(prep.data, 2, 0)  # eval_axis axial; square crop of (R, A), centred
    side = min(block.shape[1:])
    rows, cols = [(n - side) // 2 for n in block.shape[1:]]
    block = block[:, rows:rows + side, cols:cols + side]
    lo, hi = np.percentile(block, (1, 99))
    assert lo == 0 and (block == 0).mean() > 0.01  # the background's zeros count
    clipped = torch.from_numpy(np.clip(block, lo, hi).astype(np.float32))[None]
    image = item_stage(prep.data, prep.depth_axis, "T1w", cfg, defer_zscore=True)
    assert torch.allclose(image, resize(clipped, 12, 16), atol=1e-4)
    assert not torch.allclose(image, resize(torch.from_numpy(block)[None], 12, 16).clamp(lo, hi),
                              atol=1e-2)  # clipping after resizing would differ
    # the brain rule: its own statistics inside the mask, background exactly 0
    assert (item_stage(deterministic_stage(scan, SMALL).data, None, "T1w", SMALL) == 0).any()


def test_official_zscore_standardises_the_whole_volume():
    # official src/datasets/mri_dataset.py, intensity_normalize:
    #   "volume_std = torch.std(volume, dim=(0, 1, 2))"
    #   "volume = (volume - volume_mean) / (volume_std + epsilon)"
    data = np.zeros((20, 24, 28), np.float32)
    data[4:16, 5:19, 6:22] = np.random.default_rng(0).gamma(4.0, 50.0, (12, 14, 16))
    cfg = replace(PreprocessConfig(crop_size=20, depth=28), intensity="official")
    image = item_stage(data, 2, "T1w", cfg)  # square crop 20 x 20 of (R, A), no resizing
    block = np.moveaxis(data[:, 2:22, :], 2, 0).astype(np.float64)
    block = np.clip(block, *np.percentile(block, (1, 99)))
    expected = (block - block.mean()) / (block.std(ddof=1) + 1e-8)
    assert torch.allclose(image[0], torch.from_numpy(expected).float(), atol=1e-4)
    assert image[0, 0, 0, 0] < 0  # background standardised with the rest, not 0
    flat = torch.full((1, 2, 3, 4), 7.0)
    assert torch.equal(zscore(flat), torch.zeros_like(flat))  # std 0 taken as 1


@pytest.mark.parametrize("order, thick_ras_axis", [("ASR", 2), ("LPS", 0), ("RAS", 1)])
def test_anisotropic_depth_is_thick_axis_whatever_storage(tmp_path, order, thick_ras_axis):
    shape, spacing = [40, 40, 40], [1.0, 1.0, 1.0]
    shape[thick_ras_axis], spacing[thick_ras_axis] = 10, 4.0
    # intensity varies along the thick axis only; a full mask keeps every voxel
    ramp = np.arange(10, dtype=np.float32).reshape(
        [-1 if a == thick_ras_axis else 1 for a in range(3)]
    )
    ras = np.broadcast_to(ramp, shape).copy()
    scan = store(tmp_path / "s.nii.gz", ras, tuple(spacing), order)
    store(tmp_path / "s_mask.nii.gz", np.ones(shape, np.uint8), tuple(spacing), order)
    prep = deterministic_stage(scan, SMALL)
    assert prep.depth_axis == thick_ras_axis
    for seed in range(5):
        image = item_stage(prep.data, prep.depth_axis, "T1w", SMALL, np.random.default_rng(seed))
        assert image.shape == (1, 12, 16, 16)
        assert image[0].std(dim=(1, 2)).max() < 1e-5  # each slice constant: depth = thick axis
        assert image[0, :, 0, 0].diff().min() >= 0 and image[0, -1, 0, 0] > image[0, 0, 0, 0]


def test_isotropic_slice_axis_fixed_at_eval_random_in_training():
    assert through_plane_axis((1.0, 1.1, 1.3), 1.4) is None
    assert through_plane_axis((1.0, 1.0, 1.4), 1.4) == 2
    for name, axis in SLICE_AXES.items():
        assert slice_axis(None, replace(SMALL, eval_axis=name), rng=None) == axis
    drawn = {slice_axis(None, SMALL, np.random.default_rng(seed)) for seed in range(30)}
    assert drawn == {0, 1, 2}
    assert slice_axis(1, SMALL, np.random.default_rng(0)) == 1  # anisotropic ignores the rng
    with pytest.raises(ValueError, match="eval_axis"):
        slice_axis(None, replace(SMALL, eval_axis="oblique"), rng=None)


def test_official_axis_rule_decides_from_the_cropped_shape():
    # official src/datasets/mri_dataset.py: "temporal_axis = np.argsort(dims)[0]"
    # official src/datasets/mri_dataset.py:
    #   "if self.training and np.max(dims) / np.min(dims) < threshold_isotropy:"
    cfg = replace(SMALL, axis_rule="official")
    thin = (40, 20, 40)  # ratio 2 in voxel counts; isotropic spacing gives the spacing rule None
    assert slice_axis(None, cfg, None, thin) == 1 and slice_axis(2, cfg, None, thin) == 1
    assert slice_axis(None, SMALL, None, thin) == SLICE_AXES["axial"]
    assert {slice_axis(None, cfg, np.random.default_rng(s), thin) for s in range(10)} == {1}
    near = (30, 28, 32)
    assert {slice_axis(None, cfg, np.random.default_rng(s), near) for s in range(30)} == {0, 1, 2}
    assert slice_axis(None, cfg, None, near) == 1  # eval: the fewest voxels, near-isotropic too
    # ties as the official (S, R, A)-ordered array sorts them: S, then R, then A
    assert slice_axis(None, cfg, None, (30, 30, 30)) == 2
    assert slice_axis(None, cfg, None, (28, 30, 29)) == 0
    data = np.random.default_rng(0).normal(size=(20, 24, 28)).astype(np.float32)
    image = item_stage(data, 2, "T1w", replace(cfg, crop_size=24, depth=20))
    expected = data[:, :, 2:26]  # depth = R (fewest voxels), centred 24 x 24 square of (A, S)
    assert torch.allclose(image[0], torch.from_numpy(expected), atol=1e-5)


def test_random_eval_crop_is_fixed_per_seed_and_index(tmp_path):
    # official src/datasets/mri_dataset.py (run alike in training and evaluation):
    #   "start_h = random.randint(0, h - min_dim) if h > w else 0"
    write_scan(tmp_path, "a", (36, 48, 12), (1.0, 1.0, 3.0))
    entries = pd.DataFrame({"scan_uid": list("abcd"), "path": ["a.nii.gz"] * 4})
    cfg = replace(SMALL, eval_crop="random")

    def images(preprocess, seed, epoch=0):
        dataset = NiftiVolumeDataset(entries, tmp_path, False, preprocess, augment=None, seed=seed)
        dataset.set_epoch(epoch)
        return [dataset[i]["image"] for i in range(len(entries))]

    first = images(cfg, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first, images(cfg, seed=3, epoch=5)))
    assert any(not torch.equal(first[0], other) for other in first[1:])  # offsets per index
    assert any(not torch.equal(a, b) for a, b in zip(first, images(cfg, seed=4)))
    centred = images(SMALL, seed=3)
    assert all(torch.equal(centred[0], other) for other in centred[1:] + images(SMALL, seed=4))


def test_eval_axis_selects_the_volume_permutation():
    data = np.random.default_rng(0).normal(size=(20, 24, 28)).astype(np.float32)
    cfg = PreprocessConfig(crop_size=20, depth=28, eval_axis="axial")
    image = item_stage(data, None, "T1w", cfg)  # depth = S (axis 2), square 20 x 20 of (R, A)
    centred = data[:, 2:22, :]
    assert torch.allclose(image[0], torch.from_numpy(np.moveaxis(centred, 2, 0)), atol=1e-5)


def test_output_shape_dtype_and_random_square_crop(tmp_path):
    scan = write_scan(tmp_path, "s", (36, 44, 12), (1.0, 1.0, 3.0))
    prep = deterministic_stage(scan, SMALL)
    evals = [item_stage(prep.data, prep.depth_axis, "T2w", SMALL) for _ in range(2)]
    assert evals[0].shape == (1, 12, 16, 16) and evals[0].dtype == torch.float32
    assert torch.equal(evals[0], evals[1])
    trains = [
        item_stage(prep.data, prep.depth_axis, "T2w", SMALL, np.random.default_rng(s))
        for s in range(6)
    ]
    assert any(not torch.equal(trains[0], t) for t in trains[1:])  # random in-plane offsets


def test_ct_keeps_hu_and_windows_into_channels(tmp_path):
    scan = write_scan(tmp_path, "ct", (40, 40, 32), (1.0, 1.0, 1.0), ct=True)
    prep = deterministic_stage(scan, SMALL, modality="CT")
    assert prep.data.min() == -1000 and prep.data.max() > 1000  # Hounsfield units kept
    image = item_stage(prep.data, prep.depth_axis, "CT", SMALL)
    assert image.shape == (3, 12, 16, 16) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    hu = torch.tensor([-1000.0, 0.0, 40.0, 80.0, 145.0, 600.0, 2000.0]).reshape(1, 1, 1, -1)
    channels = ct_window_channels(hu, SMALL.ct_windows)[:, 0, 0]
    assert torch.allclose(channels[0], torch.tensor([0, 0, 0.5, 1, 1, 1, 1.0]))
    assert torch.allclose(channels[1], torch.tensor([0, 32.5, 72.5, 112.5, 177.5, 215, 215]) / 215)
    assert torch.allclose(channels[2], torch.tensor([0, 800, 840, 880, 945, 1400, 2800]) / 2800)


def test_mask_methods(tmp_path, caplog, monkeypatch):
    scan = write_scan(tmp_path, "s", (40, 44, 36), (1.0, 1.0, 1.0), mask=False)
    volume = load_volume(scan)
    with caplog.at_level(logging.WARNING):
        mask, method = brain_mask(volume, "auto")
    assert method == "threshold" and "last resort" in caplog.text
    _, brain = phantom((40, 44, 36))
    assert mask[brain].all()  # the foreground covers the brain (and, as said, the shell)
    with pytest.raises(VolumeError, match="missing_file"):
        brain_mask(volume, "given")
    monkeypatch.setitem(sys.modules, "deepbet", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install neurossl\[brainmask\]"):
        brain_mask(volume, "deepbet")


def test_augmentations_only_in_training(tmp_path):
    write_scan(tmp_path, "a", (36, 40, 32), (1.0, 1.0, 1.0))
    entries = pd.DataFrame({"scan_uid": ["a"], "path": ["a.nii.gz"]})
    aug = AugmentConfig()
    evaluated = NiftiVolumeDataset(entries, tmp_path, False, SMALL, augment=aug, seed=3)
    reference = NiftiVolumeDataset(entries, tmp_path, False, SMALL, augment=None, seed=4)
    evaluated.set_epoch(7)
    assert torch.equal(evaluated[0]["image"], reference[0]["image"])  # no augmentation, no seed
    plain = NiftiVolumeDataset(
        entries, tmp_path, train=True, preprocess=SMALL, augment=None, seed=3
    )
    augmented = NiftiVolumeDataset(
        entries, tmp_path, train=True, preprocess=SMALL, augment=aug, seed=3
    )
    first, again = augmented[0]["image"], augmented[0]["image"]
    assert torch.equal(first, again)  # reproducible per (seed, epoch, index)
    assert not torch.allclose(first, plain[0]["image"], atol=1e-3)  # augmentations applied
    augmented.set_epoch(1)
    assert not torch.equal(first, augmented[0]["image"])  # a new epoch draws anew
    assert build_augment(AugmentConfig(enabled=False)) is None


def test_the_paper_profile_preprocesses_as_the_official_loader_and_the_others_as_before():
    paper = load_config("paper")
    assert (paper.preprocess.intensity, paper.preprocess.axis_rule, paper.preprocess.eval_crop) == (
        "official", "official", "random")
    augment = paper.augment
    assert (augment.policy, augment.affine_rule, augment.flip_prob, augment.bias_coeff) == (
        "one_of", "per_axis", 0.5, 0.0)
    assert augment.blur_sigma == (0.01, 0.02) and augment.spatial_weights == (0.3, 0.3, 0.4)
    assert augment.intensity_weights == (0.0, 0.2, 0.2, 0.2, 0.4)
    for name in ("demo", "smoke"):
        cfg = load_config(name)
        assert (cfg.preprocess.intensity, cfg.preprocess.axis_rule, cfg.preprocess.eval_crop) == (
            "brain", "spacing", "centre")
        augment = cfg.augment
        assert (augment.policy, augment.affine_rule, augment.flip_prob) == ("all", "area", 0.0)
        assert augment.blur_sigma == (0.0, 0.0) and augment.bias_coeff == 0.1
