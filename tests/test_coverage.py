"""Coverage of released-format split files by a user's data: exact counts per stage, refusal."""

import pandas as pd
import pytest

from neurossl.data.coverage import (
    CoverageError, check_coverage, coverage_report, format_coverage, pretrain_files, task_files,
)
from neurossl.splits.files import SplitError

SPLITS = pd.DataFrame(
    [("adni", None, None, "pretrain", "S1", uid, "adni_pretrain_ids.csv") for uid in ("I1", "I2", "I3", "I4", "I5")]
    + [("adni", "nc_vs_ad", 0, "test", "S2", "I6", "adni_downstream_fold0_nc_vs_ad_test_ids.csv")],
    columns=["dataset", "task", "fold", "partition", "subject_id", "scan_uid", "file"],
)


def _world(tmp_path):
    """I1 not downloaded, I2's file gone, I3 rejected by curation, I4 failed preprocessing,
    I5 and I6 cached."""
    scans = pd.DataFrame({"scan_uid": ["I2", "I3", "I4", "I5", "I6"], "subject_id": ["S1"] * 4 + ["S2"],
                          "path": [f"{u}.nii" for u in ("I2", "I3", "I4", "I5", "I6")]})
    for uid in ("I3", "I4", "I5", "I6"):
        (tmp_path / f"{uid}.nii").write_bytes(b"x")
    curation = pd.DataFrame({"path": ["I3.nii", "I4.nii", "I5.nii", "I6.nii"],
                             "status": ["rejected", "kept", "kept", "kept"],
                             "reason": ["file_too_small", "", "", ""]})
    index = pd.DataFrame({"scan_uid": ["I4", "I5", "I6"], "status": ["failed", "ok", "ok"],
                          "reason": ["constant_image", "", ""]})
    return scans, curation, index


def test_counts_follow_each_scan_through_table_disk_curation_and_cache(tmp_path):
    scans, curation, index = _world(tmp_path)
    coverage = coverage_report(SPLITS, scans, tmp_path, curation, index)
    counts = coverage.table.set_index("file")[["named", "on_disk", "kept", "cached"]]
    assert counts.loc["adni_pretrain_ids.csv"].tolist() == [5, 3, 2, 1]
    assert counts.loc["adni_downstream_fold0_nc_vs_ad_test_ids.csv"].tolist() == [1, 1, 1, 1]
    stages = coverage.scans.set_index("scan_uid")
    assert stages["stage"].to_dict() == {"I1": "not_in_table", "I2": "missing_file", "I3": "rejected",
                                         "I4": "not_cached", "I5": "cached", "I6": "cached"}
    assert stages.loc["I4", "reason"] == "preprocessing failed: constant_image"
    assert coverage.usable == {"I5", "I6"}
    assert "adni_pretrain_ids.csv" in format_coverage(coverage) and "20.0%" in format_coverage(coverage)


def test_without_a_curation_report_every_file_on_disk_counts_as_kept(tmp_path):
    scans, _, index = _world(tmp_path)
    coverage = coverage_report(SPLITS, scans, tmp_path, None, index)
    assert coverage.table.set_index("file").loc["adni_pretrain_ids.csv", "kept"] == 3


def test_refusal_names_the_files_below_the_bar_and_why(tmp_path):
    scans, curation, index = _world(tmp_path)
    coverage = coverage_report(SPLITS, scans, tmp_path, curation, index)
    check_coverage(coverage, 0.2)  # 1 of 5 is exactly 20 %: allowed
    with pytest.raises(CoverageError) as err:
        check_coverage(coverage, 0.5)
    message = str(err.value)
    assert "1 split file(s) below the minimum coverage 50%" in message
    assert "adni_pretrain_ids.csv: 1 of 5 scans usable (20.0%)" in message
    for why in ("1 not_in_table (e.g. I1)", "1 missing_file (e.g. I2)", "1 file_too_small (e.g. I3)",
                "1 preprocessing failed: constant_image (e.g. I4)"):
        assert why in message
    stages = ["not_in_table", "missing_file", "file_too_small", "preprocessing failed"]
    assert [message.index(s) for s in stages] == sorted(message.index(s) for s in stages)  # pipeline order
    assert "nc_vs_ad_test" not in message


def test_a_scan_under_two_subject_ids_is_refused(tmp_path):
    scans, curation, index = _world(tmp_path)
    against_table = SPLITS.copy()
    against_table.loc[against_table["scan_uid"] == "I6", "subject_id"] = "S9"
    with pytest.raises(SplitError, match="adni_downstream_fold0_nc_vs_ad_test_ids.csv: scan_uid I6 is "
                                         "subject S9 in the split but subject S2 in the scans table"):
        coverage_report(against_table, scans, tmp_path, curation, index)
    within_split = pd.concat([SPLITS, SPLITS.iloc[[0]].assign(subject_id="S7", file="x_pretrain_ids.csv")])
    with pytest.raises(SplitError, match="scan_uid I1 is listed under two subject IDs: S1 in "
                                         "adni_pretrain_ids.csv, S7 in x_pretrain_ids.csv"):
        coverage_report(within_split, scans, tmp_path, curation, index)


def test_a_run_covers_only_the_files_it_uses():
    assert set(pretrain_files(SPLITS)["file"]) == {"adni_pretrain_ids.csv"}
    assert pretrain_files(SPLITS, ("scan",)).empty
    assert set(task_files(SPLITS, [("adni", "nc_vs_ad")])["file"]) == {"adni_downstream_fold0_nc_vs_ad_test_ids.csv"}
    assert task_files(SPLITS, [("adni", None)]).empty
