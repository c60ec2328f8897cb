"""Curation: one row per candidate file, the exact reason for each hostile file, thresholds."""

import dataclasses
import gzip
import os
import struct

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurossl.config import CurationConfig
from neurossl.data import curate, io

# Stored Left, Posterior, Superior: curation must report RAS shape / spacing, stored code LPS.
LPS_2MM = np.diag([-2.0, -2.0, 2.5, 1.0])
# Stored Posterior, Superior, Left: RAS needs a permutation, so shapes must be reported permuted.
PSL_2MM = np.array([[0, 0, -2.0, 0], [-2.0, 0, 0, 0], [0, 2.5, 0, 0], [0, 0, 0, 1]])
GOOD_SHAPE = (30, 36, 28)  # with LPS_2MM: fov 60 x 72 x 70 mm
# min_file_bytes=0 lets the tiny test files reach the checks after the size filter.
OPEN = CurationConfig(min_file_bytes=0)


def brain(shape=GOOD_SHAPE, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def save(path, data, affine=LPS_2MM):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), path)
    return path


def patch_header(path, offset, fmt, *values):
    """Overwrite raw header bytes, bypassing the fixes nibabel applies when it writes."""
    gz = path.name.endswith(".gz")
    raw = bytearray(gzip.decompress(path.read_bytes()) if gz else path.read_bytes())
    struct.pack_into(fmt, raw, offset, *values)
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    return path


def cut(path, keep):
    path.write_bytes(path.read_bytes()[:keep])
    return path


def nan_volume():
    data = brain()
    data[3, 4, 5] = np.nan
    return data


def inf_volume():
    data = brain()
    data[0, 0, 0] = np.inf
    return data


def truncated_payload(path):
    """A valid volume cut in half: the header reads, the voxels do not."""
    save(path, brain())
    return cut(path, path.stat().st_size // 2)


def huge_nifti2(path):
    """A NIfTI-2 header claiming 100000^3 voxels (NIfTI-1 dims are int16) over 64 voxels."""
    nib.save(nib.Nifti2Image(brain((4, 4, 4)), LPS_2MM), path)
    return patch_header(path, 16, "<4q", 3, 100_000, 100_000, 100_000)


# name -> (builder(path), expected reason); each builder writes one hostile file.
HOSTILE = {
    "empty.nii.gz": (lambda p: p.write_bytes(b""), io.EMPTY),
    "truncated_payload.nii.gz": (truncated_payload, io.TRUNCATED),
    "truncated_header.nii.gz": (lambda p: cut(save(p, brain()), 40), io.TRUNCATED),
    "truncated_plain.nii": (lambda p: cut(save(p, brain()), 20_000), io.TRUNCATED),
    "random.nii.gz": (lambda p: p.write_bytes(os.urandom(4096)), io.NOT_NIFTI),
    "random.nii": (lambda p: p.write_bytes(os.urandom(4096)), io.NOT_NIFTI),
    "text.nii.gz": (lambda p: p.write_text("subject,age\n1,70\n"), io.NOT_NIFTI),
    "gzipped_text.nii.gz": (
        lambda p: p.write_bytes(gzip.compress(b"not an image\n" * 50)),
        io.NOT_NIFTI,
    ),
    "slice_2d.nii.gz": (lambda p: save(p, brain((30, 36))), io.NOT_3D),
    "fmri_4d.nii.gz": (lambda p: save(p, brain((30, 36, 28, 5))), io.NOT_3D),
    "single_slice.nii.gz": (lambda p: save(p, brain((30, 36, 1))), io.NOT_3D),
    "nan.nii.gz": (lambda p: save(p, nan_volume()), io.NON_FINITE),
    "inf.nii.gz": (lambda p: save(p, inf_volume()), io.NON_FINITE),
    "constant.nii.gz": (lambda p: save(p, np.full(GOOD_SHAPE, 7.0, np.float32)), io.CONSTANT),
    "zero_spacing.nii.gz": (  # pixdim[1] = 0
        lambda p: patch_header(save(p, brain()), 80, "<f", 0.0),
        io.BAD_SPACING,
    ),
    "negative_spacing.nii.gz": (  # pixdim[2] = -2
        lambda p: patch_header(save(p, brain()), 84, "<f", -2.0),
        io.BAD_SPACING,
    ),
    "singular_affine.nii.gz": (  # sform row x zeroed: the sform (code 2) is the affine in use
        lambda p: patch_header(save(p, brain()), 280, "<4f", 0.0, 0.0, 0.0, 0.0),
        io.SINGULAR_AFFINE,
    ),
    "huge_dims.nii.gz": (  # 30000^3 voxels claimed (NIfTI-1 dims are int16) over a tiny payload
        lambda p: patch_header(save(p, brain((4, 4, 4))), 42, "<3h", 30000, 30000, 30000),
        io.ABSURD_DIMS,
    ),
    "huge_dims_nifti2.nii": (huge_nifti2, io.ABSURD_DIMS),
    "lying_dims.nii.gz": (  # under max_voxels, but no gzip this small can expand to 2 GB
        lambda p: patch_header(save(p, brain((4, 4, 4))), 42, "<3h", 1000, 1000, 500),
        io.ABSURD_DIMS,
    ),
    "complex.nii.gz": (lambda p: save(p, brain().astype(np.complex64)), io.UNSUPPORTED_DTYPE),
    "thin_slab.nii.gz": (lambda p: save(p, brain((30, 36, 8))), curate.FOV_TOO_SMALL),
    "thick_slices.nii.gz": (
        lambda p: save(p, brain((30, 36, 10)), np.diag([2.0, 2.0, 7.0, 1.0])),
        curate.SPACING_TOO_COARSE,
    ),
    "microscopic.nii.gz": (
        lambda p: save(p, brain(), np.diag([0.01, 2.0, 2.0, 1.0])),
        curate.SPACING_TOO_FINE,
    ),
    "scan.mgz": (lambda p: p.write_bytes(os.urandom(64)), curate.UNSUPPORTED_FORMAT),
    "analyze.img": (lambda p: p.write_bytes(os.urandom(64)), curate.UNSUPPORTED_FORMAT),
    "scan.nii.bz2": (lambda p: p.write_bytes(os.urandom(64)), curate.UNSUPPORTED_FORMAT),
}


def run(root, cfg=OPEN, report_path=None):
    return curate.curate_directory(root, cfg, report_path, progress=False)


def build_hostile(folder, name):
    builder, _ = HOSTILE[name]
    folder.mkdir(parents=True, exist_ok=True)
    builder(folder / name)
    return folder / name


def test_truncated_payload_builder_really_cuts_a_valid_file(tmp_path):
    path = save(tmp_path / "v.nii.gz", brain())
    whole = path.stat().st_size
    build_hostile(tmp_path, "truncated_payload.nii.gz")
    assert 0 < (tmp_path / "truncated_payload.nii.gz").stat().st_size < whole


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_file_gets_its_precise_reason(tmp_path, name):
    path = build_hostile(tmp_path, name)
    report = run(tmp_path)
    assert list(report["path"]) == [name]
    row = report.iloc[0]
    assert (row["status"], row["reason"]) == ("rejected", HOSTILE[name][1]), row["detail"]
    assert row["detail"]
    assert row["size_bytes"] == path.stat().st_size


def test_valid_lps_volume_is_kept_and_reported_in_ras(tmp_path):
    save(tmp_path / "sub-01" / "t1.nii.gz", brain())
    stored = brain((36, 28, 30))  # PSL: stored (P, S, L) -> RAS (30, 36, 28)
    save(tmp_path / "sub-02" / "t1.nii.gz", stored, PSL_2MM)
    report = run(tmp_path).set_index("path")
    lps, psl = report.loc["sub-01/t1.nii.gz"], report.loc["sub-02/t1.nii.gz"]
    assert (lps["status"], lps["reason"], lps["detail"]) == ("kept", "", "")
    geometry = ["shape", "spacing", "orientation"]
    assert list(lps[geometry]) == ["30x36x28", "2.00x2.00x2.50", "LPS"]
    assert psl["status"] == "kept"
    assert list(psl[geometry]) == ["30x36x28", "2.00x2.00x2.50", "PSL"]


def test_fov_is_checked_along_ras_axes(tmp_path):
    # stored axis 1 (10 voxels x 2.5 mm = 25 mm) is RAS axis 2 (Superior)
    save(tmp_path / "slab.nii.gz", brain((36, 10, 30)), PSL_2MM)
    row = run(tmp_path).iloc[0]
    assert row["reason"] == curate.FOV_TOO_SMALL
    assert row["detail"] == "fov 25.0 mm on axis 2 <= 50.0 mm"
    assert row["shape"] == "30x36x10"


def test_singleton_fourth_dimension_counts_as_3d(tmp_path):
    save(tmp_path / "t1.nii.gz", brain((*GOOD_SHAPE, 1)))
    row = run(tmp_path).iloc[0]
    assert (row["status"], row["shape"]) == ("kept", "30x36x28")


@pytest.mark.parametrize(
    "change, status",
    [
        ({"min_fov_mm": 59.9}, "kept"),
        ({"min_fov_mm": 60.0}, curate.FOV_TOO_SMALL),  # fov must be strictly greater
        ({"max_spacing_mm": 2.5}, "kept"),  # spacing may equal the limit
        ({"max_spacing_mm": 2.4}, curate.SPACING_TOO_COARSE),
        ({"min_spacing_mm": 2.1}, curate.SPACING_TOO_FINE),
        ({"max_voxels": 30 * 36 * 28 - 1}, io.ABSURD_DIMS),
    ],
)
def test_thresholds_come_from_the_config(tmp_path, change, status):
    save(tmp_path / "t1.nii.gz", brain())
    row = run(tmp_path, dataclasses.replace(OPEN, **change)).iloc[0]
    assert (row["reason"] or row["status"]) == status


def test_file_size_threshold_is_strict(tmp_path):
    size = save(tmp_path / "t1.nii.gz", brain()).stat().st_size
    at_limit = run(tmp_path, CurationConfig(min_file_bytes=size))
    assert at_limit.loc[0, "reason"] == curate.FILE_TOO_SMALL
    assert at_limit.loc[0, "detail"] == f"{size} bytes <= {size} bytes"
    below = run(tmp_path, CurationConfig(min_file_bytes=size - 1))
    assert below.loc[0, "status"] == "kept"


def test_official_size_filter_runs_before_parsing(tmp_path):
    build_hostile(tmp_path, "truncated_payload.nii.gz")  # ~50 kB, far below the official 1 MB
    row = curate.curate_directory(tmp_path, CurationConfig(), progress=False).iloc[0]
    assert row["reason"] == curate.FILE_TOO_SMALL


def test_geometry_filters_run_before_voxels_are_read(tmp_path, monkeypatch):
    build_hostile(tmp_path, "thin_slab.nii.gz")

    def must_not_read(img, path):
        raise AssertionError("voxels read for a file the header already rejects")

    monkeypatch.setattr(io, "read_voxels", must_not_read)
    row = run(tmp_path).iloc[0]
    assert row["reason"] == curate.FOV_TOO_SMALL


def test_unexpected_error_becomes_an_unreadable_row_not_a_crash(tmp_path, monkeypatch, caplog):
    save(tmp_path / "a.nii.gz", brain())
    save(tmp_path / "b.nii.gz", brain(seed=1))
    real = io.read_voxels

    def explode_on_a(img, path):
        if path.name == "a.nii.gz":
            raise RuntimeError("disk on fire")
        return real(img, path)

    monkeypatch.setattr(io, "read_voxels", explode_on_a)
    report = run(tmp_path).set_index("path")
    assert report.loc["a.nii.gz", "reason"] == curate.UNREADABLE
    assert report.loc["a.nii.gz", "detail"] == "RuntimeError: disk on fire"
    assert report.loc["b.nii.gz", "status"] == "kept"
    assert "disk on fire" in caplog.text


def test_broken_link_is_a_missing_file(tmp_path):
    (tmp_path / "gone.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    row = run(tmp_path).iloc[0]
    assert (row["path"], row["reason"]) == ("gone.nii.gz", io.MISSING)


GOOD_PATHS = ["sub-01/ses-1/anat/sub-01_T1w.nii.gz", "sub-02/anat/sub-02_T1w.nii"]


def build_mixed_folder(root):
    """Every hostile file, two good scans (one with a mask), masks, sidecars and OS noise."""
    for name in HOSTILE:
        build_hostile(root / "bad", name)
    good = save(root / GOOD_PATHS[0], brain())
    save(io.mask_path_for(good), (brain() > 0.5).astype(np.uint8))
    save(root / GOOD_PATHS[1], brain(seed=2), PSL_2MM)
    save(root / "sub-03" / "orphan_mask.nii.gz", np.ones((4, 4, 4), np.uint8))
    (root / "participants.tsv").write_text("participant_id\nsub-01\n")
    (root / "sub-01" / "ses-1" / "anat" / "sub-01_T1w.json").write_text("{}")
    (root / ".DS_Store").write_bytes(b"\0" * 10)
    (root / ".git").mkdir()
    (root / ".git" / "blob.nii.gz").write_bytes(b"hidden folders are not scanned")


def test_mixed_folder_one_row_per_file_and_summary(tmp_path):
    build_mixed_folder(tmp_path / "data")
    report_path = tmp_path / "out" / "nested" / "curation.csv"
    report = curate.curate_directory(tmp_path / "data", OPEN, report_path)

    expected_paths = sorted([f"bad/{n}" for n in HOSTILE] + GOOD_PATHS)
    assert list(report["path"]) == expected_paths
    assert list(report.columns) == list(curate.REPORT_COLUMNS)
    kept = report[report["status"] == "kept"]
    assert list(kept["path"]) == GOOD_PATHS
    assert list(kept["mask_path"]) == ["sub-01/ses-1/anat/sub-01_T1w_mask.nii.gz", ""]
    rejected = report[report["status"] == "rejected"]
    assert set(rejected["reason"]) == {reason for _, reason in HOSTILE.values()}

    summary = curate.summarize_report(report)
    n_rejected = len(HOSTILE)
    assert f"{n_rejected + 2} scan files, 2 kept, {n_rejected} rejected" in summary
    reasons = pd.Series([r for _, r in HOSTILE.values()]).value_counts()
    for reason, count in reasons.items():
        assert any(line.split() == [reason, str(count)] for line in summary.splitlines()), reason
    assert "brain-mask files: 2 (not scans; 1 beside a scan)" in summary
    assert "sidecar / hidden files ignored: 3" in summary

    reread = curate.read_report(report_path)
    pd.testing.assert_frame_equal(reread, report)
    plain = pd.read_csv(report_path)
    assert len(plain) == len(report) and list(plain.columns) == list(curate.REPORT_COLUMNS)


def test_summary_of_a_reread_report_still_counts_reasons(tmp_path):
    build_hostile(tmp_path / "data", "nan.nii.gz")
    save(tmp_path / "data" / "ok.nii.gz", brain())
    curate.curate_directory(tmp_path / "data", OPEN, tmp_path / "r.csv", progress=False)
    summary = curate.summarize_report(curate.read_report(tmp_path / "r.csv"))
    assert "2 scan files, 1 kept, 1 rejected" in summary
    assert any(line.split() == [io.NON_FINITE, "1"] for line in summary.splitlines())


def test_kept_scans_from_frame_or_csv(tmp_path):
    build_mixed_folder(tmp_path / "data")
    report = curate.curate_directory(tmp_path / "data", OPEN, tmp_path / "r.csv", progress=False)
    from_csv = curate.kept_scans(tmp_path / "r.csv", root=tmp_path / "data")
    without_files = from_csv.drop(columns=["scan_file", "mask_file"])
    pd.testing.assert_frame_equal(curate.kept_scans(report), without_files)
    assert (from_csv["status"] == "kept").all() and len(from_csv) == 2
    assert all(os.path.isfile(f) for f in from_csv["scan_file"])
    assert os.path.isfile(from_csv.loc[0, "mask_file"]) and from_csv.loc[1, "mask_file"] == ""


def test_missing_root_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        curate.curate_directory(tmp_path / "does-not-exist", OPEN, progress=False)


def test_file_as_root_is_a_clear_error(tmp_path):
    scan = save(tmp_path / "t1.nii.gz", brain())
    with pytest.raises(NotADirectoryError, match="t1.nii.gz"):
        run(scan)


def test_folder_without_candidates_is_a_clear_error(tmp_path):
    save(tmp_path / "a_mask.nii.gz", np.ones((4, 4, 4), np.uint8))
    (tmp_path / "notes.md").write_text("nothing here")
    with pytest.raises(FileNotFoundError, match="no candidate scan files.*1 brain-mask"):
        run(tmp_path)


def test_read_report_rejects_a_foreign_csv(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        curate.read_report(tmp_path / "x.csv")


def test_symlinked_folders_are_followed_once_without_looping(tmp_path):
    save(tmp_path / "store" / "t1.nii.gz", brain())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sub-01").symlink_to(tmp_path / "store")
    (tmp_path / "store" / "loop").symlink_to(tmp_path / "data")  # a cycle back up
    report = run(tmp_path / "data")
    assert list(report["path"]) == ["sub-01/t1.nii.gz"]
    assert report.loc[0, "status"] == "kept"


def test_unlistable_folder_is_reported_not_skipped(tmp_path, monkeypatch, caplog):
    save(tmp_path / "ok" / "t1.nii.gz", brain())
    save(tmp_path / "locked" / "t1.nii.gz", brain())
    real_scandir = os.scandir

    def deny_locked(path="."):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", deny_locked)
    report = run(tmp_path)
    assert list(report["path"]) == ["ok/t1.nii.gz"]
    summary = curate.summarize_report(report)
    assert f"folder not listed (unreadable), its files are missing: {tmp_path / 'locked'}" in summary
    assert "Permission denied" in caplog.text
