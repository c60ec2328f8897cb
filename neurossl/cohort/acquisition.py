"""Acquisition effects for the demo cohort: geometry, slice thickness, bias, noise, storage.

A noise-free image on the subject grid (:mod:`neurossl.cohort.contrast`) becomes a scan by

1. resampling onto the acquisition grid (a field of view inside the head box, near-isotropic or
   thick-slice along a sagittal / coronal / axial through-plane axis; each coarser axis is first
   blurred with a Gaussian slice profile whose FWHM is the voxel size),
2. a smooth multiplicative bias field (MR),
3. Rician noise (MR magnitude images) or Gaussian noise (CT),
4. rounding to int16 and storage in one of several axis orientations, with the affine updated so
   that world coordinates stay correct.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from neurossl.cohort.anatomy import HEAD_BOX_MM
from neurossl.cohort.fields import interpolate_axis

# Stored voxel-axis orientations, common ones (RAS, LAS, LPS) first.
ORIENTATIONS = ("RAS", "LAS", "LPS", "RPI", "LIP", "PSR", "ASL", "SAR", "ILA")
# Through-plane axis (0 sagittal, 1 coronal, 2 axial) of thick-slice scans and its chance.
THICK_AXIS_P = (0.2, 0.3, 0.5)
MAX_SPACING_MM = 6.5


@dataclass(frozen=True)
class Acquisition:
    """Geometry of one scan, in RAS+ axis order.

    Attributes:
        spacing: voxel size in mm along R, A, S.
        thick_axis: through-plane axis of a thick-slice scan, ``None`` when near-isotropic.
        orientation: axis code of the file as stored, e.g. ``"LPS"``.
        fov_mm: world extent ``((lo, hi), ...)`` per RAS axis.
    """

    spacing: tuple[float, float, float]
    thick_axis: int | None
    orientation: str
    fov_mm: tuple[tuple[float, float], ...]

    @property
    def kind(self) -> str:
        """``"thick"`` for thick-slice scans, ``"iso"`` otherwise (the BIDS ``acq-`` entity)."""
        return "iso" if self.thick_axis is None else "thick"

    def grid(self) -> tuple[tuple[int, int, int], np.ndarray]:
        """Shape and ``(4, 4)`` RAS+ affine of the acquisition grid."""
        shape = tuple(int((hi - lo) // s) + 1 for (lo, hi), s in zip(self.fov_mm, self.spacing))
        affine = np.diag(list(self.spacing) + [1.0])
        affine[:3, 3] = [lo for lo, _ in self.fov_mm]
        return shape, affine


@dataclass(frozen=True)
class RenderedScan:
    """A scan before storage, RAS+ voxel order.

    Attributes:
        data: ``(X, Y, Z)`` int16 intensities (HU for CT).
        mask: ``(X, Y, Z)`` uint8 true brain mask on the same grid.
        affine: ``(4, 4)`` voxel-to-world matrix.
        acquisition: the geometry it was acquired with.
    """

    data: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    acquisition: Acquisition


def sample_acquisition(rng: np.random.Generator, anisotropic: bool, resolution_mm: float) -> Acquisition:
    """Draw a scan geometry: spacing, through-plane axis, stored orientation and field of view.

    Near-isotropic scans have voxels of 1.0-1.2 x ``resolution_mm`` (one axis up to 1.2 x coarser);
    thick-slice ones 1.0-1.1 x ``resolution_mm`` in-plane and 4-6 mm through-plane (never above
    :data:`MAX_SPACING_MM`).
    """
    in_plane = resolution_mm * float(rng.choice([1.0, 1.1, 1.2] if not anisotropic else [1.0, 1.1]))
    spacing = [in_plane] * 3
    axis = int(rng.choice(3, p=THICK_AXIS_P))
    if anisotropic:
        spacing[axis] = min(max(float(rng.choice([4.0, 5.0, 6.0])), 2.0 * in_plane), MAX_SPACING_MM)
    else:
        spacing[axis] = in_plane * float(rng.choice([1.0, 1.2]))
    margins = rng.uniform(0.0, 14.0, size=(3, 2))
    fov = tuple((lo + m[0], hi - m[1]) for (lo, hi), m in zip(HEAD_BOX_MM, margins))
    orientation = str(rng.choice(ORIENTATIONS))
    spacing = tuple(round(s, 3) for s in spacing)
    return Acquisition(spacing, axis if anisotropic else None, orientation, fov)


def resample_to(volume: np.ndarray, affine: np.ndarray, acquisition: Acquisition) -> np.ndarray:
    """Resample ``(X, Y, Z)`` ``volume`` (axis-aligned RAS grid ``affine``) onto the acquisition grid.

    Each axis coarser than the source is first blurred by a Gaussian slice profile whose FWHM
    matches the new voxel size, then linearly interpolated; the thick axis goes first so the
    later passes work on the smaller array.

    Returns:
        ``acquisition.grid()[0]`` shaped float32 array.
    """
    shape, target = acquisition.grid()
    source_mm = np.diag(affine)[:3]
    order = sorted(range(3), key=lambda a: -acquisition.spacing[a])
    out = volume
    for axis in order:
        extra = acquisition.spacing[axis] ** 2 - source_mm[axis] ** 2
        if extra > 1e-6:
            sigma = np.sqrt(extra) / 2.3548 / source_mm[axis]
            out = ndi.gaussian_filter1d(out, sigma, axis=axis, mode="nearest")
        world = target[axis, 3] + target[axis, axis] * np.arange(shape[axis])
        out = interpolate_axis(out, (world - affine[axis, 3]) / affine[axis, axis], axis)
    return out


def bias_field(shape: tuple[int, int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative field ``(X, Y, Z)`` float32: ``exp`` of a random quadratic polynomial."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = np.ix_(*axes)
    terms = (x, y, z, x * y, x * z, y * z, x * x - 0.33, y * y - 0.33, z * z - 0.33)
    coeffs = rng.normal(0.0, strength, size=len(terms)).astype(np.float32)
    log_field = np.zeros(shape, dtype=np.float32)
    for c, term in zip(coeffs, terms):
        log_field += c * term
    return np.exp(log_field)


def rician_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of std ``sigma``: ``(X, Y, Z)`` float32."""
    real = image + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    imaginary = np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real * real + imaginary * imaginary)


def render(
    image: np.ndarray,
    brain: np.ndarray,
    affine: np.ndarray,
    modality: str,
    white_matter: float,
    acquisition: Acquisition,
    rng: np.random.Generator,
) -> RenderedScan:
    """Acquire a noise-free subject-grid ``image`` ``(X, Y, Z)`` as a scan, still RAS+.

    Args:
        image: noise-free intensities on the subject grid (HU for CT).
        brain: soft brain fraction on the same grid; the mask is its resampling ``>= 0.5``.
        affine: subject-grid affine.
        modality: ``T1w`` / ``T2w`` / ``FLAIR`` / ``CT``.
        white_matter: the scan's white-matter intensity, the reference for the MR noise level.
        acquisition: the scan geometry.
        rng: the scan's random generator.
    """
    data = resample_to(image, affine, acquisition)
    mask = (resample_to(brain, affine, acquisition) >= 0.5).astype(np.uint8)
    if modality == "CT":
        noisy = data + np.float32(rng.uniform(3.0, 8.0)) * rng.standard_normal(data.shape, dtype=np.float32)
        data = np.clip(np.rint(noisy), -1024, 3071)
    else:
        # Scanner gain sets the stored integer scale; noise is 1.5-4% of the white-matter signal.
        gain = rng.uniform(100.0, 250.0)
        biased = data * bias_field(data.shape, rng, rng.uniform(0.05, 0.2)) * np.float32(gain)
        noisy = rician_noise(biased, rng.uniform(0.015, 0.04) * white_matter * gain, rng)
        data = np.clip(np.rint(noisy), 0, 32767)
    _, grid_affine = acquisition.grid()
    return RenderedScan(data.astype(np.int16), mask, grid_affine, acquisition)


def reorient(array: np.ndarray, affine: np.ndarray, code: str) -> tuple[np.ndarray, np.ndarray]:
    """Store a RAS+ ``(X, Y, Z)`` array in axis order ``code`` (e.g. ``"PSR"``).

    Returns:
        The permuted / flipped array and the affine that keeps every voxel's world position.
    """
    current = nib.orientations.axcodes2ornt(nib.aff2axcodes(affine))
    transform = nib.orientations.ornt_transform(current, nib.orientations.axcodes2ornt(tuple(code)))
    stored = nib.orientations.apply_orientation(array, transform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, array.shape)
    return np.ascontiguousarray(stored), new_affine


def nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """A gzipped NIfTI-1 file as bytes; the gzip header carries no time stamp, so equal data
    gives equal files."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)
