"""NIfTI input with precise errors: every failure names the file and a reason code.

Curation turns :class:`VolumeError` into a per-file report row; every later stage relies on
:func:`load_volume` so that a bad file is never discovered deep inside a training run.

Checks run cheap-first: :func:`open_nifti` and :func:`check_header` touch only the header (a few
hundred bytes), :func:`read_voxels` and :func:`check_voxels` read the payload.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

# Reason codes used in curation reports (stable strings: reports are compared across runs).
MISSING = "missing_file"
EMPTY = "empty_file"
UNREADABLE = "unreadable"
NOT_NIFTI = "not_nifti"
TRUNCATED = "truncated_or_corrupt"
NOT_3D = "not_3d"
UNSUPPORTED_DTYPE = "unsupported_dtype"
BAD_SPACING = "bad_spacing"
SINGULAR_AFFINE = "singular_affine"
ABSURD_DIMS = "absurd_dimensions"
NON_FINITE = "non_finite_voxels"
CONSTANT = "constant_image"
MASK_MISMATCH = "mask_mismatch"

# Deflate cannot expand data by more than ~1032:1, so a gzip file that would have to expand
# further to hold the payload its header promises is lying about its dimensions.
MAX_GZIP_RATIO = 1100
# sizeof_hdr of NIfTI-1 and NIfTI-2: the first field of a real header, in either byte order.
NIFTI_HEADER_SIZES = (348, 540)
_CORRUPT_STREAM = (OSError, EOFError, zlib.error, ValueError)


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


def _is_gzip_name(path: Path) -> bool:
    return path.name.endswith(".gz")


def _diagnose_unloadable(path: Path, exc: Exception) -> VolumeError:
    """Tell a cut-short NIfTI from something that never was one, when nibabel cannot load it.

    nibabel says "cannot work out file type" for both, so look at the first header field.
    """
    opener = gzip.open if _is_gzip_name(path) else open
    try:
        with opener(path, "rb") as handle:
            prefix = handle.read(max(NIFTI_HEADER_SIZES))
    except gzip.BadGzipFile:
        return VolumeError(path, NOT_NIFTI, "named .gz but not gzip-compressed data")
    except (EOFError, zlib.error) as err:
        return VolumeError(path, TRUNCATED, f"compressed stream ends inside the header ({err})")
    if len(prefix) >= 4:
        sizes = {struct.unpack("<i", prefix[:4])[0], struct.unpack(">i", prefix[:4])[0]}
        declared = sizes.intersection(NIFTI_HEADER_SIZES)
        if declared and len(prefix) < min(declared):
            return VolumeError(
                path, TRUNCATED, f"NIfTI header cut short: {len(prefix)} of {min(declared)} bytes"
            )
    return VolumeError(path, NOT_NIFTI, f"not a readable NIfTI image ({exc})")


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
        raise _diagnose_unloadable(path, exc) from exc
    except PermissionError as exc:
        raise VolumeError(path, UNREADABLE, f"permission denied ({exc})") from exc
    except _CORRUPT_STREAM as exc:
        raise VolumeError(path, TRUNCATED, f"cannot read header ({exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeError(path, NOT_NIFTI, f"{type(img).__name__} is not NIfTI")
    return img


def _raw_pixdim(img: nib.Nifti1Image) -> np.ndarray:
    """Spatial ``pixdim[1:4]`` exactly as stored.

    nibabel silently "fixes" zero spacing to 1 and negative spacing to its absolute value when
    it loads a header, so a corrupt header would pass unnoticed; re-read it without fixing.
    """
    holder = img.file_map["image"]
    if holder.filename is None and holder.fileobj is None:  # built in memory: never fixed up
        return np.asarray(img.header["pixdim"][1:4], dtype=float)
    with holder.get_prepare_fileobj("rb") as handle:
        raw = type(img.header).from_fileobj(handle, check=False)
    return np.asarray(raw["pixdim"][1:4], dtype=float)


def _check_payload_fits(img: nib.Nifti1Image, path: Path) -> None:
    """Reject a header whose voxel payload the file cannot hold, before anything is allocated."""
    n_bytes = math.prod(int(n) for n in img.shape) * img.get_data_dtype().itemsize
    offset = int(getattr(img.dataobj, "offset", 0))
    size = path.stat().st_size
    if _is_gzip_name(path):
        if offset + n_bytes > MAX_GZIP_RATIO * size:
            raise VolumeError(
                path,
                ABSURD_DIMS,
                f"header shape {img.shape} needs {n_bytes} bytes; "
                f"a {size}-byte gzip cannot hold them",
            )
    elif offset + n_bytes > size:
        raise VolumeError(
            path,
            TRUNCATED,
            f"header shape {img.shape} needs {offset + n_bytes} bytes, file has {size}",
        )


def check_header(img: nib.Nifti1Image, path: str | Path, max_voxels: int = 1024**3) -> None:
    """Reject 2-D / 4-D images, absurd dimensions, bad dtypes, bad spacing and singular affines.

    A 4-D image whose extra dimensions are all 1 counts as 3-D.
    """
    path = Path(path)
    shape = tuple(int(n) for n in img.shape)
    if any(n < 1 for n in shape):
        raise VolumeError(path, ABSURD_DIMS, f"non-positive dimension in shape {shape}")
    if len(shape) < 3 or any(n != 1 for n in shape[3:]):
        raise VolumeError(path, NOT_3D, f"expected a 3-D volume, got shape {shape}")
    if min(shape[:3]) < 2:
        raise VolumeError(path, NOT_3D, f"a 3-D volume needs >= 2 voxels per axis, got {shape}")
    if math.prod(shape[:3]) > max_voxels:
        raise VolumeError(path, ABSURD_DIMS, f"{shape} exceeds {max_voxels} voxels")
    dtype = img.get_data_dtype()
    if dtype.kind not in "biuf":
        raise VolumeError(path, UNSUPPORTED_DTYPE, f"voxel type {dtype} is not a real scalar")
    zooms = _raw_pixdim(img)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        shown = ", ".join(f"{z:g}" for z in zooms)
        raise VolumeError(path, BAD_SPACING, f"voxel spacing ({shown}) mm must be positive")
    affine = img.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(path, SINGULAR_AFFINE, "affine is singular or not finite")
    _check_payload_fits(img, path)


def ras_geometry(img: nib.Nifti1Image) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape and voxel spacing (mm) the image will have once reoriented to RAS+, from its header.

    Matches :func:`load_volume` without reading voxels, so curation can filter cheaply.
    """
    ornt = nib.io_orientation(img.affine)
    sizes = nib.affines.voxel_sizes(img.affine)
    shape = [0, 0, 0]
    spacing = [0.0, 0.0, 0.0]
    for stored_axis, (ras_axis, _) in enumerate(ornt.astype(int)):
        shape[ras_axis] = int(img.shape[stored_axis])
        spacing[ras_axis] = float(sizes[stored_axis])
    return tuple(shape), tuple(spacing)


def read_voxels(img: nib.Nifti1Image, path: str | Path) -> np.ndarray:
    """Read voxels as float32 ``(X, Y, Z)``; corrupt payloads raise :class:`VolumeError`."""
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except _CORRUPT_STREAM as exc:
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
    # Spacing from the affine's columns (not the rebuilt qform's zooms) so that it agrees with
    # ras_geometry() for sheared affines too.
    spacing = tuple(float(z) for z in nib.affines.voxel_sizes(canonical.affine))
    return Volume(data, canonical.affine, spacing, source, Path(path))


def load_mask(path: str | Path, like: Volume) -> np.ndarray:
    """Load a binary mask stored beside a scan and bring it to ``like``'s RAS grid.

    Returns:
        ``(X, Y, Z)`` boolean array with ``like.data``'s shape.
    Raises:
        VolumeError: ``mask_mismatch`` when the mask's RAS grid (shape or affine) differs from
        the scan's; a mask on another grid would silently crop the wrong region.
    """
    img = open_nifti(path)
    check_header(img, path)
    data = read_voxels(img, path)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))
    mask = np.asarray(canonical.dataobj) > 0.5
    if mask.shape != like.data.shape:
        raise VolumeError(
            path, MASK_MISMATCH, f"mask shape {mask.shape} != scan shape {like.data.shape}"
        )
    if not np.allclose(canonical.affine, like.affine, atol=1e-3):
        raise VolumeError(path, MASK_MISMATCH, "mask affine differs from the scan's affine")
    return mask


def mask_path_for(path: str | Path) -> Path:
    """Where the brain mask of ``path`` lives (BET): ``scan.nii.gz -> scan_mask.nii.gz``."""
    path = Path(path)
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + "_mask" + ext)
    raise VolumeError(path, NOT_NIFTI, "file name must end in .nii or .nii.gz")


def mask_beside(root: str | Path, path: str | Path) -> str:
    """The brain mask of scan ``root / path`` as a POSIX path relative to ``root``, when the
    BET-named file (:func:`mask_path_for`) exists; ``""`` when it does not or the scan is not
    named as a NIfTI file (a custom curation pattern may match other names)."""
    root = Path(root)
    try:
        mask = mask_path_for(root / path)
    except VolumeError:
        return ""
    return mask.relative_to(root).as_posix() if mask.is_file() else ""
