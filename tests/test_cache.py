"""Preprocessing cache: round trip, invalidation, failures; datasets over it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from neurossl.config import AugmentConfig, PreprocessConfig
from neurossl.data.cache import build_cache, read_index
from neurossl.data.dataset import CachedVolumeDataset, NiftiVolumeDataset
from neurossl.data.preprocess import deterministic_stage

CFG = PreprocessConfig(crop_size=16, depth=12)


def write_scan(folder: Path, name: str, shape, spacing, seed=0, ct=False) -> None:
    """An LPS-stored ellipsoid-in-shell phantom ``name.nii.gz`` and its ``name_mask.nii.gz``."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    brain, shell = radius < 0.6, (radius > 0.75) & (radius < 0.9)
    texture = np.random.default_rng(seed).normal(0, 1, shape)
    base, tissue = (-1000.0, 1035.0) if ct else (5.0, 100.0)  # CT: air and brain in HU
    data = base + brain * (tissue + 15 * texture + 30 * grid[0]) + shell * 1300
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    for suffix, array in (("", data.astype(np.float32)), ("_mask", brain.astype(np.uint8))):
        nib.save(nib.Nifti1Image(array, affine), str(folder / f"{name}{suffix}.nii.gz"))


def loader_images(dataset: CachedVolumeDataset, workers: int, epoch: int) -> list[torch.Tensor]:
    """Every item's image of one epoch through a DataLoader with ``workers`` processes."""
    dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, shuffle=False)
    return [batch["image"] for batch in loader]


@pytest.fixture
def cohort(tmp_path):
    """Three scans (isotropic, anisotropic, CT) + a scans table like the demo cohort's."""
    root = tmp_path / "cohort"
    root.mkdir()
    write_scan(root, "iso", (36, 40, 32), (1.0, 1.0, 1.0), seed=1)
    write_scan(root, "aniso", (36, 40, 10), (1.0, 1.0, 4.0), seed=2)
    write_scan(root, "head", (32, 36, 30), (1.0, 1.0, 1.0), seed=3, ct=True)
    entries = pd.DataFrame(
        {
            "scan_uid": ["iso", "aniso", "head"],
            "subject_id": ["s1", "s1", "s2"],
            "dataset": ["cognition", "cognition", "headct"],
            "label": ["AD", "NC", ""],
            "modality": ["T1w", "FLAIR", "CT"],
            "path": ["iso.nii.gz", "aniso.nii.gz", "head.nii.gz"],
            "mask_path": ["iso_mask.nii.gz", "aniso_mask.nii.gz", "head_mask.nii.gz"],
        }
    )
    return root, entries


def test_round_trip_equals_direct_stage_and_memmaps(cohort, tmp_path):
    root, entries = cohort
    index = build_cache(entries, root, tmp_path / "cache", CFG, progress=False)
    assert list(index["status"]) == ["ok"] * 3 and list(index["action"]) == ["computed"] * 3
    assert list(index["subject_id"]) == ["s1", "s1", "s2"] and index["depth_axis"].iloc[1] == 2
    for row in read_index(tmp_path / "cache").itertuples():
        cached = np.load(tmp_path / "cache" / row.file, mmap_mode="r")
        assert isinstance(cached, np.memmap) and cached.dtype == np.float16
        direct = deterministic_stage(
            root / row.path, CFG, row.modality, root / f"{row.scan_uid}_mask.nii.gz"
        )
        assert cached.shape == direct.data.shape == row.shape
        assert np.array_equal(np.asarray(cached), direct.data.astype(np.float16))
        assert row.mask_method == "given" and row.depth_axis == direct.depth_axis


def test_unchanged_skipped_changed_file_or_config_recomputed(cohort, tmp_path):
    root, entries = cohort
    cache = tmp_path / "cache"
    first = build_cache(entries, root, cache, CFG, progress=False)
    again = build_cache(entries, root, cache, replace(CFG, crop_size=32, depth=8), progress=False)
    assert list(again["action"]) == ["skipped"] * 3  # per-item fields do not invalidate
    assert list(again["key"]) == list(first["key"])
    write_scan(root, "iso", (36, 40, 32), (1.0, 1.0, 1.0), seed=99)  # new content, same name
    changed = build_cache(entries, root, cache, CFG, progress=False)
    assert list(changed["action"]) == ["computed", "skipped", "skipped"]
    assert changed["key"].iloc[0] != first["key"].iloc[0]
    new_cfg = build_cache(entries, root, cache, replace(CFG, margin=2), progress=False)
    assert list(new_cfg["action"]) == ["computed"] * 3
    assert set(new_cfg["key"]).isdisjoint(changed["key"])
    assert (
        np.load(cache / new_cfg["file"].iloc[1]).shape
        != np.load(cache / changed["file"].iloc[1]).shape
    )


def test_failing_files_reported_not_crashing(cohort, tmp_path):
    root, entries = cohort
    (root / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    extra = pd.DataFrame({"scan_uid": ["broken", "gone"], "path": ["broken.nii.gz", "gone.nii.gz"]})
    index = build_cache(pd.concat([entries, extra]), root, tmp_path / "cache", CFG, progress=False)
    assert list(index["status"]) == ["ok", "ok", "ok", "failed", "failed"]
    assert index["reason"].iloc[4] == "missing_file"
    assert (
        index["reason"].iloc[3] in {"not_nifti", "truncated_or_corrupt"} and index["detail"].iloc[3]
    )
    dataset = CachedVolumeDataset(tmp_path / "cache", preprocess=CFG, train=False)
    assert len(dataset) == 3  # failed entries are not served
    with pytest.raises(KeyError, match="gone"):
        CachedVolumeDataset(tmp_path / "cache", scan_uids=["iso", "gone"], preprocess=CFG)


def test_dataset_rejects_cache_of_other_deterministic_config(cohort, tmp_path):
    root, entries = cohort
    build_cache(entries, root, tmp_path / "cache", CFG, progress=False)
    with pytest.raises(ValueError, match="rebuild the cache"):
        CachedVolumeDataset(
            tmp_path / "cache", preprocess=replace(CFG, clip_percentiles=(0.5, 99.5))
        )


def test_cache_records_its_intensity_rule_and_refuses_the_other(cohort, tmp_path):
    # official src/datasets/mri_dataset.py clips and z-scores per item ("volume =
    # self.clip_intensity_percentile(volume, ...)", "volume = self.intensity_normalize(...)"):
    # its cache holds the stripped box in the scanner's units
    root, entries = cohort
    official = replace(CFG, intensity="official")
    brain = build_cache(entries, root, tmp_path / "brain", CFG, progress=False)
    kept = build_cache(entries, root, tmp_path / "official", official, progress=False)
    assert set(brain["intensity"]) == {"brain"} and set(kept["intensity"]) == {"official"}
    assert set(brain["key"]).isdisjoint(kept["key"])
    row = kept.iloc[0]
    direct = deterministic_stage(root / row.path, official, row.modality, root / "iso_mask.nii.gz")
    assert np.array_equal(np.load(tmp_path / "official" / row.file), direct.data.astype(np.float16))
    assert direct.data.max() > 50  # not z-scored
    with pytest.raises(ValueError, match="cached with preprocess.intensity=brain.*=official"):
        CachedVolumeDataset(tmp_path / "brain", preprocess=official)
    with pytest.raises(ValueError, match="cached with preprocess.intensity=official.*=brain"):
        CachedVolumeDataset(tmp_path / "official", preprocess=CFG)
    # an index written before the rule was recorded was built with the brain rule
    path = tmp_path / "brain" / "index.csv"
    pd.read_csv(path, dtype=str).drop(columns="intensity").to_csv(path, index=False)
    assert set(read_index(tmp_path / "brain")["intensity"]) == {"brain"}
    assert len(CachedVolumeDataset(tmp_path / "brain", preprocess=CFG, train=False)) == 3


def test_values_beyond_the_cache_dtype_fail_the_scan(cohort, tmp_path):
    root, entries = cohort
    image = nib.load(root / "iso.nii.gz")
    loud = nib.Nifti1Image(np.asarray(image.dataobj) * 1000.0, image.affine)
    nib.save(loud, str(root / "iso.nii.gz"))  # the brain near 1e5: over float16's 65504
    index = build_cache(entries, root, tmp_path / "cache", replace(CFG, intensity="official"),
                        progress=False)
    assert list(index["status"]) == ["failed", "ok", "ok"]
    assert index["reason"].iloc[0] == "cache_dtype_overflow" and "float32" in index["detail"].iloc[0]


def test_items_and_workers_reproducible(cohort, tmp_path):
    root, entries = cohort
    build_cache(entries, root, tmp_path / "cache", CFG, progress=False)
    dataset = CachedVolumeDataset(
        tmp_path / "cache", train=True, preprocess=CFG, augment=AugmentConfig(), seed=5
    )
    item = dataset[2]
    assert (
        item["image"].shape == (3, 12, 16, 16) and item["modality"] == "CT" and item["label"] == ""
    )
    assert dataset[0]["image"].shape == (1, 12, 16, 16) and dataset[0]["label"] == "AD"
    single, multi = loader_images(dataset, 0, epoch=4), loader_images(dataset, 2, epoch=4)
    assert all(torch.equal(a, b) for a, b in zip(single, multi, strict=True))
    dataset.set_epoch(5)
    assert not torch.equal(dataset[0]["image"], single[0][0])


def test_cached_and_nifti_datasets_agree(cohort, tmp_path):
    root, entries = cohort
    build_cache(entries, root, tmp_path / "cache", CFG, progress=False)
    for train in (False, True):
        cached = CachedVolumeDataset(
            tmp_path / "cache", ["aniso", "head"], train=train, preprocess=CFG, seed=1
        )
        nifti = NiftiVolumeDataset(entries.iloc[[1, 2]], root, train=train, preprocess=CFG, seed=1)
        for i in range(2):
            a, b = cached[i], nifti[i]
            assert a["scan_uid"] == b["scan_uid"] and a["image"].shape == b["image"].shape
            assert torch.allclose(a["image"], b["image"], atol=2e-2, rtol=2e-3)  # float16 storage
