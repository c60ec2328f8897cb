"""The paper's preprocessing, as two explicit stages.

1. :func:`deterministic_stage` (cached by :mod:`neurossl.data.cache`): load in RAS, brain mask,
   crop to the mask's bounding box + ``margin`` voxels, intensity normalisation, and the
   through-plane axis. Output: a cropped ``(X, Y, Z)`` array in RAS order.
2. :func:`item_stage` (run per item, random when training): slice axis -> ``(D, H, W)``, square
   in-plane crop, resize to ``(depth, crop_size, crop_size)``, channels. Output: ``(C, D, H, W)``.

Intensity rules (paper "Data Pre-processing": percentile clip, then z-score per volume), by
``PreprocessConfig.intensity``:
- ``brain``: in the deterministic stage, clip to the ``clip_percentiles`` of the brain voxels,
  z-score with the brain's mean and std, then set voxels outside the mask to 0 (skull stripping,
  as the BET-stripped inputs of the official pipeline; 0 is also what the spatial augmentations
  pad with). Statistics of the brain alone, the same whatever the crop and augmentation.
- ``official`` (the official loader's order): the deterministic stage only strips (0 outside the
  mask) and keeps the scanner's units; the item stage clips to the ``clip_percentiles`` of the
  square-cropped box, background zeros included, before resizing; :func:`zscore` standardises
  the whole volume, background included, after resizing and after the augmentations.
- CT (modality ``"CT"``, either rule): Hounsfield units are kept and nothing is stripped, because
  the subdural and bone windows look exactly at the brain's border and the skull;
  :func:`ct_window_channels` maps HU through ``ct_windows`` into one ``[0, 1]`` channel per window.

Mask methods (``PreprocessConfig.mask``): ``given`` (the ``*_mask.nii.gz`` beside the scan, as
BET writes it), ``deepbet`` (optional, ``pip install neurossl[brainmask]``), ``threshold`` (Otsu
foreground, largest component; a last resort that is logged as such) and ``auto`` (given when the
file exists, else threshold).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from neurossl.config import PreprocessConfig
from neurossl.data.io import Volume, VolumeError, load_mask, load_volume, mask_path_for

# Slice-axis names -> RAS axis of the depth dimension (R = 0, A = 1, S = 2).
SLICE_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
MASK_METHODS = ("auto", "given", "deepbet", "threshold")
EMPTY_MASK = "empty_brain_mask"  # reason code, in the style of neurossl.data.io's codes
CT_MODALITY = "CT"


@dataclass
class Preprocessed:
    """Output of the deterministic stage.

    Attributes:
        data: ``(X, Y, Z)`` float32 RAS voxels, cropped; MRI z-scored (``intensity: brain``)
            or stripped in the scanner's units (``official``); CT in HU.
        spacing: voxel size in mm along the RAS axes.
        depth_axis: RAS axis acquired through-plane (the coarsest), or None if near-isotropic.
        modality: e.g. ``"T1w"`` or ``"CT"``.
        mask_method: the mask actually used: ``given``, ``deepbet`` or ``threshold``.
        bbox: ``((x0, x1), (y0, y1), (z0, z1))`` crop in the RAS voxel grid, end exclusive.
    """

    data: np.ndarray
    spacing: tuple[float, float, float]
    depth_axis: int | None
    modality: str
    mask_method: str
    bbox: tuple[tuple[int, int], ...]


def is_ct(modality: str) -> bool:
    """True for CT scans, which keep Hounsfield units instead of a z-score."""
    return str(modality).upper() == CT_MODALITY


# ----------------------------------------------------------------------------- brain masks


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (any shape), vectorised over a histogram."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)[:-1].astype(np.float64)
    w1 = w0[-1] + hist[-1] - w0
    s0 = np.cumsum(hist * centres)[:-1]
    m0 = s0 / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:-1][np.argmax(between)])


def threshold_mask(data: np.ndarray) -> np.ndarray:
    """Foreground mask: Otsu threshold, largest connected component, holes filled.

    Args:
        data: ``(X, Y, Z)`` intensities.
    Returns:
        ``(X, Y, Z)`` bool. It covers the head, not only the brain: a last resort.
    """
    foreground = data > otsu_threshold(data)
    labels, count = ndimage.label(foreground)
    if count == 0:
        return foreground
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # background label
    return ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))


def deepbet_mask(volume: Volume) -> np.ndarray:
    """Brain mask from deepbet (optional dependency; weights ship inside its wheel).

    Returns:
        ``(X, Y, Z)`` bool on ``volume``'s RAS grid.
    """
    try:
        import deepbet  # optional: only real data without BET masks needs it
    except ImportError as exc:
        raise ImportError(
            "mask='deepbet' needs the deepbet package: pip install neurossl[brainmask]"
        ) from exc
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mask.nii.gz"
        deepbet.run_bet(
            [str(volume.path)], mask_paths=[str(out)], no_gpu=not torch.cuda.is_available()
        )
        return load_mask(out, like=volume)


def brain_mask(
    volume: Volume, method: str, mask_file: str | Path | None = None
) -> tuple[np.ndarray, str]:
    """Brain mask of ``volume`` by ``method`` (``auto | given | deepbet | threshold``).

    Args:
        volume: the scan (``data`` ``(X, Y, Z)`` RAS).
        method: see the module docstring.
        mask_file: the given mask; defaults to the BET-style ``*_mask.nii.gz`` beside the scan.
    Returns:
        ``((X, Y, Z) bool mask, method actually used)``.
    Raises:
        VolumeError: a given mask is missing, unreadable, of another shape, or empty.
    """
    if method not in MASK_METHODS:
        raise ValueError(f"preprocess.mask must be one of {MASK_METHODS}, got {method!r}")
    mask_file = Path(mask_file) if mask_file else mask_path_for(volume.path)
    if method == "auto":
        method = "given" if mask_file.is_file() else "threshold"
    if method == "given":
        mask = load_mask(mask_file, like=volume)
    elif method == "deepbet":
        mask = deepbet_mask(volume)
    else:
        logging.getLogger(__name__).warning(
            "%s: no brain mask given; using a foreground threshold (Otsu, largest component) "
            "as a last resort; it keeps the skull. Provide *_mask.nii.gz or use mask='deepbet'.",
            volume.path,
        )
        mask = threshold_mask(volume.data)
    if not mask.any():
        raise VolumeError(volume.path, EMPTY_MASK, f"brain mask ({method}) has no voxels")
    return mask, method


# ----------------------------------------------------------------------------- deterministic


def bounding_box(mask: np.ndarray, margin: int) -> tuple[tuple[int, int], ...]:
    """Bounding box of a mask grown by ``margin`` voxels, clamped to the array.

    Args:
        mask: ``(X, Y, Z)`` bool, not empty.
    Returns:
        ``((x0, x1), (y0, y1), (z0, z1))``, end exclusive.
    """
    box = []
    for axis, size in enumerate(mask.shape):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append((max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, size)))
    return tuple(box)


def crop(data: np.ndarray, box: tuple[tuple[int, int], ...]) -> np.ndarray:
    """``data[x0:x1, y0:y1, z0:z1]`` for a box from :func:`bounding_box` (a view)."""
    return data[tuple(slice(lo, hi) for lo, hi in box)]


def normalize_mri(
    data: np.ndarray, mask: np.ndarray, percentiles: tuple[float, float]
) -> np.ndarray:
    """``intensity: brain``: clip to brain percentiles, z-score with brain statistics, zero
    outside the brain.

    Args:
        data: ``(X, Y, Z)`` intensities; mask: ``(X, Y, Z)`` bool.
    Returns:
        ``(X, Y, Z)`` float32 with mean 0 and std 1 inside the mask, 0 outside.
    """
    lo, hi = np.percentile(data[mask], percentiles)
    clipped = np.clip(data, lo, hi)
    inside = clipped[mask].astype(np.float64)
    std = inside.std()
    out = (clipped - inside.mean()) / (std if std > 0 else 1.0)
    return np.where(mask, out, 0.0).astype(np.float32)


def strip(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(X, Y, Z)`` float32 intensities with the voxels outside ``mask`` set to 0."""
    return np.where(mask, data, 0.0).astype(np.float32)


ZSCORE_EPS = 1e-8  # the official loader's `epsilon`


def zscore(images: torch.Tensor) -> torch.Tensor:
    """Standardise each volume and channel over all its voxels (``intensity: official``).

    As the official loader: unbiased std, a std below 1e-8 taken as 1, then
    ``(x - mean) / (std + 1e-8)``.

    Args:
        images: ``(..., D, H, W)`` float, e.g. ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
    Returns:
        The same shape, mean 0 and std ~1 over each ``(D, H, W)``.
    """
    dims = (-3, -2, -1)
    mean = images.mean(dim=dims, keepdim=True)
    std = images.std(dim=dims, keepdim=True)
    std = torch.where(std < ZSCORE_EPS, torch.ones_like(std), std)
    return (images - mean) / (std + ZSCORE_EPS)


def zscores_per_item(cfg: PreprocessConfig, modality: str) -> bool:
    """True when an item is z-scored after resizing (and augmentation): official rule, MRI."""
    return cfg.intensity == "official" and not is_ct(modality)


def clip_percentiles(block: torch.Tensor, percentiles: tuple[float, float]) -> torch.Tensor:
    """Clip ``block`` (any shape) to its own ``percentiles`` over every voxel, zeros included."""
    # numpy: torch.quantile refuses inputs over 2^24 elements, a large box can exceed that
    lo, hi = np.percentile(block.numpy(), percentiles)
    return block.clamp(float(lo), float(hi))


def through_plane_axis(spacing: tuple[float, ...], isotropy_ratio: float) -> int | None:
    """The coarsest RAS axis if ``max / min spacing >= isotropy_ratio``, else None.

    ``preprocess.axis_rule: spacing`` picks the slice axis from this; ``official`` applies the
    same ratio to the cropped array's voxel counts instead (:func:`extent_slice_axis`). Spacing is
    the physical criterion (a thick-slice scan is anisotropic whatever its field of view); the
    two agree on typical thick-slice scans.
    """
    spacing = np.asarray(spacing, dtype=float)
    if spacing.max() / spacing.min() >= isotropy_ratio:
        return int(np.argmax(spacing))
    return None


def deterministic_stage(
    path: str | Path,
    cfg: PreprocessConfig,
    modality: str = "T1w",
    mask_file: str | Path | None = None,
) -> Preprocessed:
    """Load, mask, crop and normalise one scan (the cacheable part of the pipeline).

    Args:
        path: NIfTI file; modality: ``"CT"`` keeps HU, anything else is MRI.
        mask_file: a given brain mask; defaults to the ``*_mask.nii.gz`` beside ``path``.
    Returns:
        :class:`Preprocessed` with ``data`` ``(X', Y', Z')`` float32, cropped, RAS.
    Raises:
        VolumeError: unreadable scan or unusable mask.
    """
    volume = load_volume(path)
    mask, method = brain_mask(volume, cfg.mask, mask_file)
    box = bounding_box(mask, cfg.margin)
    data, mask = crop(volume.data, box), crop(mask, box)
    if not is_ct(modality):
        official = cfg.intensity == "official"
        data = strip(data, mask) if official else normalize_mri(data, mask, cfg.clip_percentiles)
    return Preprocessed(
        data=np.ascontiguousarray(data, dtype=np.float32),
        spacing=volume.spacing,
        depth_axis=through_plane_axis(volume.spacing, cfg.isotropy_ratio),
        modality=str(modality),
        mask_method=method,
        bbox=box,
    )


# ----------------------------------------------------------------------------- per item


# The official loader holds its array as (S, R, A) and takes `np.argsort(dims)[0]`: on equal
# voxel counts S wins, then R, then A.
EXTENT_TIE_ORDER = (2, 0, 1)


def extent_slice_axis(
    shape: tuple[int, ...], isotropy_ratio: float, rng: np.random.Generator | None
) -> int:
    """The official loader's slice axis, from a cropped ``(X, Y, Z)`` array's voxel counts.

    Training (``rng`` given) with ``max / min count < isotropy_ratio``: a random axis; otherwise,
    and always at evaluation, the axis with the fewest voxels.
    """
    dims = np.asarray(shape[:3])
    if rng is not None and dims.max() / dims.min() < isotropy_ratio:
        return int(rng.integers(3))
    return min(EXTENT_TIE_ORDER, key=lambda axis: dims[axis])


def slice_axis(
    depth_axis: int | None,
    cfg: PreprocessConfig,
    rng: np.random.Generator | None,
    shape: tuple[int, ...] | None = None,
) -> int:
    """RAS axis that becomes depth, by ``cfg.axis_rule``.

    ``spacing``: the through-plane axis ``depth_axis`` if anisotropic; else random (training,
    ``rng`` given) or ``cfg.eval_axis`` (evaluation, ``rng`` None). ``official``: from the
    cropped array's ``shape`` ``(X, Y, Z)`` (:func:`extent_slice_axis`).
    """
    if cfg.axis_rule == "official":
        if shape is None:
            raise ValueError("preprocess.axis_rule 'official' decides from the array's shape")
        return extent_slice_axis(shape, cfg.isotropy_ratio, rng)
    if depth_axis is not None:
        return int(depth_axis)
    if rng is not None:
        return int(rng.integers(3))
    if cfg.eval_axis not in SLICE_AXES:
        raise ValueError(
            f"preprocess.eval_axis must be one of {tuple(SLICE_AXES)}, got {cfg.eval_axis!r}"
        )
    return SLICE_AXES[cfg.eval_axis]


def square_window(height: int, width: int, rng: np.random.Generator | None) -> tuple[slice, slice]:
    """In-plane square of side ``min(height, width)``: random offset with ``rng``, else centred."""
    side = min(height, width)
    if rng is None:
        starts = ((height - side) // 2, (width - side) // 2)
    else:
        starts = (int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1)))
    return slice(starts[0], starts[0] + side), slice(starts[1], starts[1] + side)


def resize(volume: torch.Tensor, depth: int, size: int) -> torch.Tensor:
    """Trilinear resize of ``(C, D, H, W)`` to ``(C, depth, size, size)``."""
    return F.interpolate(
        volume[None], size=(depth, size, size), mode="trilinear", align_corners=False
    )[0]


def ct_window_channels(hu: torch.Tensor, windows: tuple[tuple[float, float], ...]) -> torch.Tensor:
    """Map HU through ``(level, width)`` windows: clip to ``level -+ width / 2``, scale to [0, 1].

    Args:
        hu: ``(1, D, H, W)`` Hounsfield units.
    Returns:
        ``(len(windows), D, H, W)`` in [0, 1].
    """
    level, width = torch.tensor(windows, dtype=hu.dtype).T.reshape(2, -1, 1, 1, 1)
    return ((hu - (level - width / 2)) / width).clamp(0.0, 1.0)


def item_stage(
    data: np.ndarray,
    depth_axis: int | None,
    modality: str,
    cfg: PreprocessConfig,
    rng: np.random.Generator | None = None,
    crop_rng: np.random.Generator | None = None,
    defer_zscore: bool = False,
) -> torch.Tensor:
    """Turn a deterministic-stage array into a model input.

    Args:
        data: ``(X, Y, Z)`` RAS array (float32 or a float16 memmap: only the crop is read).
        depth_axis: through-plane RAS axis or None (near-isotropic).
        rng: training randomness (slice axis, crop offset); None means evaluation.
        crop_rng: the square crop's offset at evaluation (``preprocess.eval_crop: random``);
            None = centred. Unused in training, where ``rng`` draws it.
        defer_zscore: ``intensity: official`` only: leave the :func:`zscore` to the caller,
            which augments first.
    Returns:
        ``(C, cfg.depth, cfg.crop_size, cfg.crop_size)`` float32; C = 1 (MRI) or
        ``len(cfg.ct_windows)`` (CT). ``(D, H, W)`` are the slice axis then the other two RAS axes
        in RAS order.
    """
    dhw = np.moveaxis(data, slice_axis(depth_axis, cfg, rng, data.shape), 0)
    rows, cols = square_window(dhw.shape[1], dhw.shape[2], crop_rng if rng is None else rng)
    # copy the crop as stored (reads only it from a memmap), then widen in torch: numpy's
    # float16 -> float32 conversion is several times slower
    block = torch.from_numpy(np.array(dhw[:, rows, cols], copy=True)).float()
    per_item = zscores_per_item(cfg, modality)
    if per_item:
        block = clip_percentiles(block, cfg.clip_percentiles)
    image = resize(block[None], cfg.depth, cfg.crop_size)
    if is_ct(modality):
        # windows after resizing: one interpolation instead of one per window
        image = ct_window_channels(image, cfg.ct_windows)
    if per_item and not defer_zscore:
        image = zscore(image)
    return image.contiguous()
