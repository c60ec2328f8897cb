"""NIfTI input with precise errors: every failure names the file and a reason code.

Curation turns :class:`VolumeError` into a per-file report row; every later stage relies on
:func:`load_volume` so that a bad file is never discovered deep inside a training run.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

# Reason codes used in curation reports (stable strings: reports are compared across runs).
MISSING = "missing_file"
EMPTY = "empty_file"
NOT_NIFTI = "not_nifti"
TRUNCATED = "truncated_or_corrupt"
NOT_3D = "not_3d"
BAD_SPACING = "bad_spacing"
SINGULAR_AFFINE = "singular_affine"
ABSURD_DIMS = "absurd_dimensions"
NON_FINITE = "non_finite_voxels"
CONSTANT = "constant_image"


class VolumeError(ValueError):
    """A file cannot be used as a 3-D volume.

    Attributes:
        path: the offending file.
        code: one of the reason codes above.
        detail: a human-readable explanation.
    """

    def __init__(self, path: str | Path, code: str, detail: str):
        self.path = Path(path)
        self.code = code
        self.detail = detail
        super().__init__(f"{self.path}: {code}: {detail}")


@dataclass
class Volume:
    """A 3-D scan reoriented to RAS+.

    Attributes:
        data: ``(X, Y, Z)`` float32 voxels, axis 0 -> Right, 1 -> Anterior, 2 -> Superior.
        affine: ``(4, 4)`` voxel-to-world matrix of ``data`` (RAS+).
        spacing: voxel size in mm along the three RAS axes.
        source_orientation: axis codes of the file as stored, e.g. ``"LPS"``.
        path: the file it was read from.
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    source_orientation: str
    path: Path

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        """Field of view in mm along each RAS axis."""
        return tuple(float(n * s) for n, s in zip(self.data.shape, self.spacing))


def orientation_code(affine: np.ndarray) -> str:
    """Three-letter axis code of an affine, e.g. ``"RAS"`` or ``"LPS"``."""
    return "".join(nib.aff2axcodes(affine))


def open_nifti(path: str | Path) -> nib.Nifti1Image:
    """Open a NIfTI header (voxels stay on disk); raises :class:`VolumeError` with a reason."""
    path = Path(path)
    if not path.is_file():
        raise VolumeError(path, MISSING, "no such file")
    if path.stat().st_size == 0:
        raise VolumeError(path, EMPTY, "file is empty (0 bytes)")
    try:
        img = nib.load(str(path))
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError) as exc:
        raise VolumeError(path, NOT_NIFTI, f"not a readable NIfTI image ({exc})") from exc
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, ValueError) as exc:
        raise VolumeError(path, TRUNCATED, f"cannot read header ({exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeError(path, NOT_NIFTI, f"{type(img).__name__} is not NIfTI")
    return img


def check_header(img: nib.Nifti1Image, path: str | Path, max_voxels: int = 1024**3) -> None:
    """Reject 2-D / 4-D images, absurd dimensions, bad spacing and singular affines."""
    shape = img.shape
    squeezed = tuple(n for n in shape if n != 1) if len(shape) > 3 else shape
    if len(shape) < 3 or len(squeezed) != 3:
        raise VolumeError(path, NOT_3D, f"expected a 3-D volume, got shape {shape}")
    if min(shape[:3]) < 2:
        raise VolumeError(path, NOT_3D, f"a 3-D volume needs >= 2 voxels per axis, got {shape}")
    if int(np.prod(shape[:3], dtype=np.int64)) > max_voxels:
        raise VolumeError(path, ABSURD_DIMS, f"{shape} exceeds {max_voxels} voxels")
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise VolumeError(path, BAD_SPACING, f"voxel spacing {tuple(zooms)} must be positive")
    affine = img.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(path, SINGULAR_AFFINE, "affine is singular or not finite")


def read_voxels(img: nib.Nifti1Image, path: str | Path) -> np.ndarray:
    """Read voxels as float32 ``(X, Y, Z)``; corrupt payloads raise :class:`VolumeError`."""
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, ValueError) as exc:
        raise VolumeError(path, TRUNCATED, f"cannot read voxel data ({exc})") from exc
    return data.reshape(data.shape[:3]) if data.ndim > 3 else data


def check_voxels(data: np.ndarray, path: str | Path) -> None:
    """Reject NaN/Inf voxels and constant images."""
    finite = np.isfinite(data)
    if not finite.all():
        raise VolumeError(path, NON_FINITE, f"{int((~finite).sum())} NaN/Inf voxels")
    if float(data.max()) == float(data.min()):
        raise VolumeError(path, CONSTANT, f"all voxels equal {float(data.min())}")


def load_volume(path: str | Path, max_voxels: int = 1024**3) -> Volume:
    """Load, validate and reorient a NIfTI to RAS+.

    Returns:
        :class:`Volume` with ``data`` of shape ``(X, Y, Z)`` in RAS+ order.
    Raises:
        VolumeError: naming the file and the problem.
    """
    img = open_nifti(path)
    check_header(img, path, max_voxels)
    source = orientation_code(img.affine)
    data = read_voxels(img, path)
    check_voxels(data, path)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))
    data = np.asarray(canonical.dataobj, dtype=np.float32)
    spacing = tuple(float(z) for z in canonical.header.get_zooms()[:3])
    return Volume(data, canonical.affine, spacing, source, Path(path))


def load_mask(path: str | Path, like: Volume) -> np.ndarray:
    """Load a binary mask stored beside a scan and bring it to ``like``'s RAS grid.

    Returns:
        ``(X, Y, Z)`` boolean array with ``like.data``'s shape.
    """
    img = open_nifti(path)
    check_header(img, path)
    data = read_voxels(img, path)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))
    mask = np.asarray(canonical.dataobj) > 0.5
    if mask.shape != like.data.shape:
        raise VolumeError(path, NOT_3D, f"mask shape {mask.shape} != scan shape {like.data.shape}")
    return mask


def mask_path_for(path: str | Path) -> Path:
    """Where a brain mask for ``path`` lives (BET convention): ``scan.nii.gz -> scan_mask.nii.gz``."""
    path = Path(path)
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + "_mask" + ext)
    raise VolumeError(path, NOT_NIFTI, "file name must end in .nii or .nii.gz")
