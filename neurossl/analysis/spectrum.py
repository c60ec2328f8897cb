"""3-D power spectra of MRI volumes: radial profiles and high-frequency energy.

Frequencies use the same normalisation as SL-MAE's high-pass mask
(:func:`neurossl.losses.spectral.high_pass_mask`): ``f`` is the 3-D frequency vector of
``numpy.fft.fftfreq`` on each axis (cycles / voxel) and the normalised radial frequency is
``r = |f| / max|f|``. ``r = 1`` is the highest frequency on the grid, the Nyquist corner
``(0.5, 0.5, 0.5)`` for even sizes (``max|f| = 0.5 * sqrt(3)``), and a ``cutoff`` of 0.3 selects
exactly the frequencies the spectral loss compares. Because ``fftfreq`` is in cycles per voxel on
every axis, a given ``r`` means the same spatial period in voxels whatever the volume's shape.

Each volume is z-scored before its FFT, so spectra of volumes with different contrasts and
intensity scales are comparable, and the zero-frequency (DC) term is zero. Power is
``|F|^2 / n_voxels``, so by Parseval it averages to the volume's variance (1) over the grid:
white noise has a flat profile at 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from neurossl.progress import tqdm


def _check_volume(volume: np.ndarray) -> np.ndarray:
    """``volume`` as float64 ``(D, H, W)``; raises on other ranks and on constant volumes."""
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3:
        raise ValueError(f"expected a 3-D volume (D, H, W), got shape {volume.shape}")
    if not np.all(np.isfinite(volume)):
        raise ValueError("volume contains NaN or inf values")
    if volume.std() == 0:
        raise ValueError("volume is constant: its spectrum is undefined after z-scoring")
    return volume


def crop_to_mask(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The part of ``volume`` inside the bounding box of ``mask``.

    Args:
        volume: ``(D, H, W)``.
        mask: ``(D, H, W)``, non-zero inside the region (e.g. a brain mask).

    Returns:
        ``(d, h, w)`` view of ``volume``.
    """
    mask = np.asarray(mask) != 0
    if mask.shape != np.shape(volume):
        raise ValueError(f"mask shape {mask.shape} differs from volume shape {np.shape(volume)}")
    if not mask.any():
        raise ValueError("mask is empty: no bounding box to crop to")
    slices = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        slices.append(slice(hit[0], hit[-1] + 1))
    return np.asarray(volume)[tuple(slices)]


def power_spectrum(volume: np.ndarray) -> np.ndarray:
    """Power ``|FFT(z)|^2 / n_voxels`` of the z-scored volume, in ``numpy.fft.fftn`` order.

    The volume is standardised with its own mean and population std, so the DC term is 0 and the
    power averages to 1 over the grid.

    Args:
        volume: ``(D, H, W)``, any real dtype.

    Returns:
        ``(D, H, W)`` float64.
    """
    volume = _check_volume(volume)
    z = (volume - volume.mean()) / volume.std()
    return np.abs(np.fft.fftn(z)) ** 2 / z.size


def radial_frequency(shape: tuple[int, int, int]) -> np.ndarray:
    """Normalised radial frequency ``r = |f| / max|f|`` of each FFT coefficient, in [0, 1].

    ``f`` is the 3-D frequency vector from ``numpy.fft.fftfreq`` per axis (cycles / voxel);
    ``r = 1`` at the Nyquist corner (for even sizes). Same definition as the SL-MAE high-pass mask.

    Args:
        shape: ``(D, H, W)``.

    Returns:
        ``(D, H, W)`` float64, in ``numpy.fft.fftn`` order.
    """
    if len(shape) != 3:
        raise ValueError(f"radial_frequency needs a 3-D shape (D, H, W), got {tuple(shape)}")
    fd, fh, fw = np.meshgrid(*[np.fft.fftfreq(int(n)) for n in shape], indexing="ij")
    radius = np.sqrt(fd**2 + fh**2 + fw**2)
    # A 1 x 1 x 1 grid has only the DC term; avoid 0 / 0 there.
    return radius / max(radius.max(), np.finfo(np.float64).tiny)


def radial_profile(
    volume: np.ndarray, n_bins: int = 32, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum.

    ``r`` in [0, 1] is split into ``n_bins`` equal bins; each bin's value is the mean power of the
    FFT coefficients that fall in it. The DC term (zero by construction) is left out so that it
    does not pull the lowest bin down. Bins that no coefficient falls in (small volumes, many
    bins) are NaN.

    Args:
        volume: ``(D, H, W)``.
        n_bins: number of radial bins.
        mask: optional ``(D, H, W)``; the volume is first cropped to its bounding box.

    Returns:
        ``(bin_centres (n_bins,), mean_power (n_bins,))``.
    """
    if mask is not None:
        volume = crop_to_mask(volume, mask)
    return _bin_power(power_spectrum(volume), n_bins)


def _bin_power(power: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``power`` ``(D, H, W)`` in ``n_bins`` radial bins, DC left out (radial_profile)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    radius = radial_frequency(power.shape).ravel()
    power = power.ravel()
    keep = radius > 0
    bins = np.minimum((radius[keep] * n_bins).astype(np.int64), n_bins - 1)
    total = np.bincount(bins, weights=power[keep], minlength=n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    centres = (np.arange(n_bins) + 0.5) / n_bins
    return centres, mean


def high_frequency_energy(
    volume: np.ndarray, cutoff: float = 0.3, mask: np.ndarray | None = None
) -> float:
    """Share of the spectral power at normalised radial frequency ``r >= cutoff``.

    Args:
        volume: ``(D, H, W)``.
        cutoff: in [0, 1]; 0.3 is SL-MAE's high-pass cutoff.
        mask: optional ``(D, H, W)``; the volume is first cropped to its bounding box so that the
            empty background does not dilute the spectrum.

    Returns:
        A fraction in [0, 1].
    """
    if mask is not None:
        volume = crop_to_mask(volume, mask)
    return _high_share(power_spectrum(volume), cutoff)


def windowed_high_share(block: np.ndarray, cutoff: float = 0.3) -> float:
    """Share of the spectral power at ``r >= cutoff`` of one block, z-scored and tapered by a
    3-D Hann window.

    The window takes the block's faces to zero, so neither the jump between opposite faces that
    a periodic FFT sees nor a seam against a neighbouring block adds high-frequency power: the
    share is that of the block's own texture (a reconstructed tubelet's, seams left out).

    Args:
        block: ``(d, h, w)``, not constant.
        cutoff: in [0, 1]; 0.3 is SL-MAE's high-pass cutoff.
    """
    block = _check_volume(block)
    z = (block - block.mean()) / block.std()
    window = np.einsum("i,j,k->ijk", *(np.hanning(n) for n in z.shape))
    return _high_share(np.abs(np.fft.fftn(z * window)) ** 2, cutoff)


def _high_share(power: np.ndarray, cutoff: float) -> float:
    """Fraction of ``power`` ``(D, H, W)`` at ``r >= cutoff``."""
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must be in [0, 1], got {cutoff}")
    high = radial_frequency(power.shape) >= cutoff
    return float(power[high].sum() / power.sum())


def spectral_table(
    volumes: Iterable[tuple[str, str, np.ndarray]],
    cutoff: float = 0.3,
    n_bins: int = 32,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """High-frequency energy and radial profile of every volume.

    Args:
        volumes: ``(volume_id, dataset, volume)`` triples, volume ``(D, H, W)``; crop a volume
            with :func:`crop_to_mask` first if only the brain should count.
        cutoff: normalised radial cutoff of the high-frequency share.
        n_bins: radial bins of the profiles.
        progress: show a tqdm progress bar.

    Returns:
        ``(energy, profiles)``: ``energy`` has columns ``id, dataset, hf_energy`` (one row per
        volume); ``profiles`` has ``id, dataset, frequency, power`` (``n_bins`` rows per volume).
    """
    energy_rows, profile_frames = [], []
    for volume_id, dataset, volume in tqdm(volumes, desc="spectra", disable=not progress):
        power = power_spectrum(volume)
        energy_rows.append((volume_id, dataset, _high_share(power, cutoff)))
        centres, mean = _bin_power(power, n_bins)
        profile_frames.append(
            pd.DataFrame({"id": volume_id, "dataset": dataset, "frequency": centres, "power": mean})
        )
    if not energy_rows:
        raise ValueError("spectral_table received no volumes")
    energy = pd.DataFrame(energy_rows, columns=["id", "dataset", "hf_energy"])
    return energy, pd.concat(profile_frames, ignore_index=True)


def reconstruction_spectra(
    target: np.ndarray, recon_by_model: Mapping[str, np.ndarray], n_bins: int = 32
) -> pd.DataFrame:
    """Radial profiles of a target volume and of each model's reconstruction of it.

    Shows whether a model restores the high frequencies of its input (SL-MAE) or smooths them
    away (plain MAE): ``ratio < 1`` at high ``frequency`` means missing fine detail.

    Args:
        target: ``(D, H, W)`` input volume.
        recon_by_model: model name -> ``(D, H, W)`` reconstruction of ``target``.
        n_bins: radial bins.

    Returns:
        DataFrame with columns ``model, frequency, power, ratio``: ``n_bins`` rows for
        ``model == "target"`` (ratio 1) and for each model, ``ratio = power / power_target``.
    """
    if "target" in recon_by_model:
        raise ValueError('"target" is reserved for the target volume; rename that model')
    centres, target_power = radial_profile(target, n_bins)
    frames = [pd.DataFrame({"model": "target", "frequency": centres, "power": target_power})]
    for name, recon in recon_by_model.items():
        if np.shape(recon) != np.shape(target):
            raise ValueError(f"{name}: shape {np.shape(recon)} != target {np.shape(target)}")
        _, power = radial_profile(recon, n_bins)
        frames.append(pd.DataFrame({"model": name, "frequency": centres, "power": power}))
    table = pd.concat(frames, ignore_index=True)
    table["ratio"] = table["power"] / np.tile(target_power, len(frames))
    return table
