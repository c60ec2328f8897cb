"""NIfTI input: RAS reorientation, header checks nibabel would silently fix, masks."""

import gzip
import struct

import nibabel as nib
import numpy as np
import pytest

from neurossl.data import io

LPS_AFFINE = np.array(
    [[-2.0, 0, 0, 30.0], [0, -3.0, 0, 40.0], [0, 0, 4.0, -10.0], [0, 0, 0, 1]]
)
# Stored axes point Posterior, Superior, Left: RAS needs a permutation as well as flips.
PSL_AFFINE = np.array(
    [[0, 0, -2.0, 5.0], [-3.0, 0, 0, 7.0], [0, 4.0, 0, -9.0], [0, 0, 0, 1]]
)


def save(path, data, affine):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), path)
    return path


def patch_header(path, offset, fmt, *values):
    """Overwrite raw header bytes, bypassing the fixes nibabel applies when it writes."""
    gz = path.name.endswith(".gz")
    raw = bytearray(gzip.decompress(path.read_bytes()) if gz else path.read_bytes())
    struct.pack_into(fmt, raw, offset, *values)
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))


def voxel_world(affine, index):
    return (affine @ np.array([*index, 1.0]))[:3]


def test_load_volume_reorients_lps_to_ras(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    vol = io.load_volume(save(tmp_path / "lps.nii.gz", data, LPS_AFFINE))
    assert vol.source_orientation == "LPS"
    assert io.orientation_code(vol.affine) == "RAS"
    np.testing.assert_array_equal(vol.data, data[::-1, ::-1, :])
    expected = np.array(
        [[2.0, 0, 0, 30.0 - 2 * 3], [0, 3.0, 0, 40.0 - 3 * 4], [0, 0, 4.0, -10.0], [0, 0, 0, 1]]
    )
    np.testing.assert_allclose(vol.affine, expected)
    assert vol.spacing == (2.0, 3.0, 4.0)
    assert vol.fov_mm == (8.0, 15.0, 24.0)


def test_reoriented_voxels_keep_their_world_position(tmp_path):
    data = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    vol = io.load_volume(save(tmp_path / "psl.nii", data, PSL_AFFINE))
    assert vol.source_orientation == "PSL"
    assert vol.data.shape == (6, 4, 5)
    assert vol.spacing == (2.0, 3.0, 4.0)
    for stored in [(0, 0, 0), (3, 1, 5), (2, 4, 1)]:
        ras = np.round(np.linalg.solve(vol.affine, [*voxel_world(PSL_AFFINE, stored), 1.0])[:3])
        assert vol.data[tuple(ras.astype(int))] == data[stored]


def test_ras_geometry_matches_load_volume_without_reading_voxels(tmp_path):
    path = save(tmp_path / "psl.nii.gz", np.random.default_rng(1).random((4, 5, 6)), PSL_AFFINE)
    shape, spacing = io.ras_geometry(io.open_nifti(path))
    vol = io.load_volume(path)
    assert shape == vol.data.shape == (6, 4, 5)
    assert spacing == pytest.approx(vol.spacing)


def test_singleton_fourth_dimension_loads_as_3d(tmp_path):
    data = np.random.default_rng(2).random((4, 5, 6, 1)).astype(np.float32)
    vol = io.load_volume(save(tmp_path / "t1.nii.gz", data, np.eye(4)))
    assert vol.data.shape == (4, 5, 6)


@pytest.mark.parametrize("pixdim", [0.0, -2.0])
def test_zero_or_negative_spacing_is_caught_although_nibabel_fixes_it(tmp_path, pixdim):
    path = save(tmp_path / "v.nii.gz", np.random.default_rng(3).random((4, 5, 6)), np.eye(4))
    patch_header(path, 80, "<f", pixdim)  # pixdim[1]
    assert nib.load(path).header.get_zooms()[0] > 0  # nibabel hides the corruption...
    with pytest.raises(io.VolumeError) as err:
        io.load_volume(path)
    assert err.value.code == io.BAD_SPACING  # ...the raw header check does not


def test_header_cut_short_is_truncated_not_foreign(tmp_path):
    path = save(tmp_path / "v.nii.gz", np.random.default_rng(4).random((4, 5, 6)), np.eye(4))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(io.VolumeError) as err:
        io.open_nifti(path)
    assert err.value.code == io.TRUNCATED
    plain = save(tmp_path / "v.nii", np.zeros((4, 5, 6)), np.eye(4))
    plain.write_bytes(plain.read_bytes()[:200])
    with pytest.raises(io.VolumeError) as err:
        io.open_nifti(plain)
    assert err.value.code == io.TRUNCATED and "200 of 348" in err.value.detail


def test_volume_error_names_file_and_code(tmp_path):
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(io.VolumeError) as err:
        io.load_volume(path)
    assert err.value.code == io.MISSING
    assert str(path) in str(err.value)


def test_load_mask_brings_mask_to_the_scans_ras_grid(tmp_path):
    rng = np.random.default_rng(5)
    scan = save(tmp_path / "s.nii.gz", rng.random((4, 5, 6)), LPS_AFFINE)
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[0, 0, 2] = 1  # stored corner (L, P) -> RAS index (3, 4, 2)
    save(io.mask_path_for(scan), mask, LPS_AFFINE)
    loaded = io.load_mask(io.mask_path_for(scan), io.load_volume(scan))
    assert loaded.dtype == bool and loaded.shape == (4, 5, 6)
    assert list(zip(*np.nonzero(loaded))) == [(3, 4, 2)]


def test_load_mask_rejects_shape_mismatch(tmp_path):
    scan = save(tmp_path / "s.nii.gz", np.random.default_rng(6).random((4, 5, 6)), LPS_AFFINE)
    save(io.mask_path_for(scan), np.ones((4, 5, 7), np.uint8), LPS_AFFINE)
    with pytest.raises(io.VolumeError) as err:
        io.load_mask(io.mask_path_for(scan), io.load_volume(scan))
    assert err.value.code == io.MASK_MISMATCH
    assert "(4, 5, 7)" in err.value.detail


def test_load_mask_rejects_same_shape_on_another_grid(tmp_path):
    scan = save(tmp_path / "s.nii.gz", np.random.default_rng(7).random((4, 5, 6)), LPS_AFFINE)
    shifted = LPS_AFFINE.copy()
    shifted[0, 3] += 10.0
    save(io.mask_path_for(scan), np.ones((4, 5, 6), np.uint8), shifted)
    with pytest.raises(io.VolumeError) as err:
        io.load_mask(io.mask_path_for(scan), io.load_volume(scan))
    assert err.value.code == io.MASK_MISMATCH and "affine" in err.value.detail


def test_mask_path_for(tmp_path):
    scan = tmp_path / "a" / "sub-1_T1w.nii.gz"
    assert io.mask_path_for(scan) == tmp_path / "a" / "sub-1_T1w_mask.nii.gz"
    assert io.mask_path_for("scan.nii").name == "scan_mask.nii"
    with pytest.raises(io.VolumeError) as err:
        io.mask_path_for("scan.mgz")
    assert err.value.code == io.NOT_NIFTI


def test_mask_beside_gives_the_masks_path_relative_to_the_root_or_nothing(tmp_path):
    scan = tmp_path / "sub-1" / "anat" / "sub-1_T1w.nii.gz"
    scan.parent.mkdir(parents=True)
    assert io.mask_beside(tmp_path, "sub-1/anat/sub-1_T1w.nii.gz") == ""  # no mask written
    io.mask_path_for(scan).write_bytes(b"")
    assert io.mask_beside(tmp_path, "sub-1/anat/sub-1_T1w.nii.gz") == "sub-1/anat/sub-1_T1w_mask.nii.gz"
    assert io.mask_beside(tmp_path, scan) == "sub-1/anat/sub-1_T1w_mask.nii.gz"  # absolute path
    assert io.mask_beside(tmp_path, "scan.mgz") == ""  # not a NIfTI name: no BET mask to look for
