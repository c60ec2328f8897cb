"""Dataset rule sets of the official release: each rule rejects with its own reason, configurably."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurossl.config import ConfigError, CurationConfig, OfficialRuleSets, RuleSetConfig, load_config
from neurossl.data import curate, io

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])  # 30 x 36 x 28 voxels: 60 x 72 x 56 mm


def save(path: Path, data=None, seed=0, description=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.random.default_rng(seed).random((30, 36, 28)).astype(np.float32) * 100
    nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), path)
    if description is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps({"SeriesDescription": description}))
    return path


def reasons(root: Path, rule_set: str, **rules) -> dict[str, str]:
    sets = OfficialRuleSets()
    if rules:
        sets = OfficialRuleSets(**{rule_set: RuleSetConfig(**rules)})
    cfg = CurationConfig(min_file_bytes=0, rule_set=rule_set, rule_sets=sets)
    report = curate.curate_directory(root, cfg, progress=False)
    assert curate.summarize_report(report).splitlines()[1] == f"dataset rule set: {rule_set}"
    return dict(zip(report["path"], report["reason"]))


def test_scan_rules_drop_multi_echo_names_and_quantitative_or_empty_volumes(tmp_path):
    save(tmp_path / "s1_T1_MPRAGE.nii.gz")
    save(tmp_path / "s1_T2_ME_2.nii.gz")
    save(tmp_path / "s1_t2_3te_1.nii.gz")  # the official filter ignores case
    save(tmp_path / "s1_T1map.nii.gz", 2500.0 + np.random.default_rng(1).random((30, 36, 28)) * 100)
    save(tmp_path / "s1_flat.nii.gz", 100.0 + np.random.default_rng(2).random((30, 36, 28)))
    scan = OfficialRuleSets().scan
    got = reasons(tmp_path, "scan", **{**scan.__dict__, "min_file_bytes": 0})
    assert got == {"s1_T1_MPRAGE.nii.gz": "", "s1_T2_ME_2.nii.gz": "excluded_name",
                   "s1_t2_3te_1.nii.gz": "excluded_name", "s1_T1map.nii.gz": "intensity_mean_too_high",
                   "s1_flat.nii.gz": "intensity_std_too_low"}


def test_oasis3_rules_drop_excluded_folders_and_contrasts(tmp_path):
    anat = tmp_path / "sub-OAS30001" / "ses-d0129"
    save(anat / "anat" / "sub-OAS30001_ses-d0129_T1w.nii.gz", description="MPRAGE GRAPPA2")
    save(anat / "anat" / "sub-OAS30001_ses-d0129_angio.nii.gz", description="TOF_3D_multi-slab")
    save(anat / "anat" / "sub-OAS30001_ses-d0129_run-01_T2star.nii.gz")  # no sidecar: the name decides
    save(anat / "swi" / "sub-OAS30001_ses-d0129_swi.nii.gz")
    save(anat / "fmap" / "sub-OAS30001_ses-d0129_phasediff.nii.gz")
    oasis3 = OfficialRuleSets().oasis3
    got = reasons(tmp_path, "oasis3", **{**oasis3.__dict__, "min_file_bytes": 0})
    prefix = "sub-OAS30001/ses-d0129/"
    assert got == {prefix + "anat/sub-OAS30001_ses-d0129_T1w.nii.gz": "",
                   prefix + "anat/sub-OAS30001_ses-d0129_angio.nii.gz": "excluded_contrast",
                   prefix + "anat/sub-OAS30001_ses-d0129_run-01_T2star.nii.gz": "",
                   prefix + "swi/sub-OAS30001_ses-d0129_swi.nii.gz": "excluded_folder",
                   prefix + "fmap/sub-OAS30001_ses-d0129_phasediff.nii.gz": "excluded_folder"}


def test_rule_set_size_minimum_is_the_official_2_5_mb(tmp_path):
    cfg = CurationConfig(min_file_bytes=1000, rule_set="oasis3")
    with pytest.raises(io.VolumeError, match="2500000 bytes <= 2500000 bytes"):
        curate.check_file_size(tmp_path / "x.nii.gz", 2_500_000, cfg)
    curate.check_file_size(tmp_path / "x.nii.gz", 2_500_001, cfg)
    curate.check_file_size(tmp_path / "x.nii.gz", 2_000_000, CurationConfig(min_file_bytes=1000))


def test_rule_sets_are_named_and_configurable(tmp_path):
    save(tmp_path / "a.nii.gz")
    with pytest.raises(ConfigError, match="curation.rule_set 'nacc' is not one of oasis3, scan, adni, ppmi"):
        curate.curate_directory(tmp_path, CurationConfig(rule_set="nacc"), progress=False)
    cfg = load_config("smoke", overrides=["curation.rule_set=scan", "curation.rule_sets.scan.max_mean=3000"])
    assert cfg.curation.rule_sets.scan.max_mean == 3000.0
    assert cfg.curation.rule_sets.scan.min_std == 10.0 and "_ME_" in cfg.curation.rule_sets.scan.exclude_name_patterns
    assert "TOF" in cfg.curation.rule_sets.oasis3.exclude_contrasts
