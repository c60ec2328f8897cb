"""Smooth random fields and separable resampling on axis-aligned grids (``(X, Y, Z)`` arrays).

Everything the demo cohort resamples lives on axis-aligned grids, where separable linear passes
along one axis at a time are an order of magnitude cheaper than generic spline resampling.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def world_axes(shape: tuple[int, ...], affine: np.ndarray) -> list[np.ndarray]:
    """World coordinates (mm) of the voxel centres along each axis of an axis-aligned grid."""
    return [affine[a, a] * np.arange(n, dtype=np.float32) + affine[a, 3] for a, n in enumerate(shape)]


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], coarse_mm: float, voxel_mm: float) -> np.ndarray:
    """Smooth random field of unit std, ``shape`` float32: noise on a coarse grid, upsampled.

    Working on a grid ``coarse_mm`` apart keeps the cost independent of the resolution.
    """
    coarse = tuple(max(3, int(np.ceil(n * voxel_mm / coarse_mm)) + 1) for n in shape)
    noise = ndi.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma=1.0, mode="wrap")
    noise /= noise.std() + 1e-6
    for axis, n in enumerate(shape):
        noise = interpolate_axis(noise, np.linspace(0.0, coarse[axis] - 1.0, n), axis)
    return noise


def interpolate_axis(volume: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``volume`` along ``axis`` at fractional voxel positions ``index``.

    Positions outside ``[0, n - 1]`` take the edge value.

    Returns:
        ``volume``'s shape with ``len(index)`` entries along ``axis``, float32.
    """
    n = volume.shape[axis]
    index = np.clip(np.asarray(index, dtype=np.float64), 0.0, n - 1.0)
    low = np.minimum(np.floor(index).astype(np.intp), max(n - 2, 0))
    weight = (index - low).astype(np.float32)
    shape = [1] * volume.ndim
    shape[axis] = len(index)
    weight = weight.reshape(shape)
    below = np.take(volume, low, axis=axis)
    above = np.take(volume, np.minimum(low + 1, n - 1), axis=axis)
    return (below + weight * (above - below)).astype(np.float32, copy=False)


def half_grid(shape: tuple[int, int, int], affine: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """Every second voxel of a grid (covering it, one node beyond at most): shape and affine."""
    coarse = affine.copy()
    coarse[:3, :3] *= 2.0
    return tuple(n // 2 + 1 for n in shape), coarse


def upsample_half(volume: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear upsampling from :func:`half_grid` back to ``shape`` (``(X, Y, Z)`` float32)."""
    for axis, n in enumerate(shape):
        volume = interpolate_axis(volume, np.arange(n) / 2.0, axis)
    return volume
