"""SL-MAE's spectral loss (3-D FFT, log-magnitude, high-pass) and its amortisation schedule.

The formula is the official code's, which the tests check numerically: for each channel every
volume is standardised, ``x' = (x - mean) / (std + 1e-6)`` (unbiased std over D, H, W), then
``F = fftn(x')`` over (D, H, W); both magnitude spectra are multiplied by the high-pass mask
``|f| / max|f| >= cutoff``; the loss is the mean over all B x D x H x W elements of
``(log1p(|F_rec| + eps) - log1p(|F_gt| + eps))^2``, so the zeroed low frequencies count in the
denominator; channels are averaged.

The spectra of real volumes are Hermitian (``|F(-f)| = |F(f)|``) and the high-pass mask is
symmetric, so the loss is computed on the half spectrum of ``rfftn``, each bin counted as often
as it appears in the full ``fftn`` spectrum: the same value for half the FFT and element-wise
work (SL-MAE pays this cost on every spectral step).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import torch


def high_pass_mask(
    shape: Sequence[int], cutoff: float = 0.3, device: torch.device | str | None = None
) -> torch.Tensor:
    """Frequencies kept by the spectral loss, in ``torch.fft.fftn`` order.

    ``f`` is the 3-D frequency vector built from ``torch.fft.fftfreq`` on each axis (cycles per
    voxel); a frequency is kept when ``|f| / max|f| >= cutoff``. Computed in float64 so that
    frequencies lying exactly on the cutoff are decided the same way on every device.

    Args:
        shape: spatial size ``(D, H, W)``.
        cutoff: normalised radial cutoff in [0, 1] (official 0.3).

    Returns:
        ``(D, H, W)`` bool.
    """
    if len(shape) != 3:
        raise ValueError(f"high_pass_mask needs a 3-D shape (D, H, W), got {tuple(shape)}")
    freqs = [torch.fft.fftfreq(int(n), dtype=torch.float64, device=device) for n in shape]
    fd, fh, fw = torch.meshgrid(*freqs, indexing="ij")
    radius = torch.sqrt(fd**2 + fh**2 + fw**2)
    # A 1 x 1 x 1 volume has only the DC term; the clamp avoids 0 / 0 there.
    return radius / radius.max().clamp_min(torch.finfo(torch.float64).tiny) >= cutoff


@functools.lru_cache(maxsize=16)
def _rfft_high_pass(shape: tuple[int, int, int], cutoff: float, device: torch.device) -> torch.Tensor:
    """:func:`high_pass_mask` restricted to the ``rfftn`` bins, ``(D, H, W // 2 + 1)``, built
    once per shape: building it costs as much as the loss's FFTs on a 64^3 batch."""
    # fftn order: the first W // 2 + 1 bins of the last axis are rfftn's (|f| is the same)
    return high_pass_mask(shape, cutoff, device)[..., : shape[-1] // 2 + 1].contiguous()


def half_spectrum_multiplicity(width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """How often each ``rfft`` bin of the last axis appears in the full spectrum: ``(W // 2 + 1,)``.

    Bin 0 (and, for even ``W``, the Nyquist bin) is its own mirror; every other bin stands for
    itself and its conjugate.
    """
    counts = torch.full((width // 2 + 1,), 2.0, device=device)
    counts[0] = 1.0
    if width % 2 == 0:
        counts[-1] = 1.0
    return counts


def standardize_volumes(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over the last three axes; unbiased std as in the official code."""
    dims = (-3, -2, -1)
    centred = x - x.mean(dim=dims, keepdim=True)
    # the std from the centred volume already at hand: torch.std's own pass over a 64^3 batch
    # costs ~7 ms on a CPU, a fifth of the loss
    count = x.shape[-3] * x.shape[-2] * x.shape[-1]
    std = (centred.square().sum(dim=dims, keepdim=True) / (count - 1)).sqrt()
    return centred / (std + eps)


def spectral_loss(
    recon: torch.Tensor, target: torch.Tensor, cutoff: float = 0.3, eps: float = 1e-6
) -> torch.Tensor:
    """High-pass log-magnitude spectral MSE between a reconstruction and its target.

    Args:
        recon: ``(B, D, H, W)`` or ``(B, C, D, H, W)`` rebuilt volumes.
        target: same shape, the input volumes.
        cutoff: normalised radial frequency below which the spectra are zeroed.
        eps: added to the magnitudes inside ``log1p``.

    Returns:
        Scalar tensor: the mean over channels of each channel's mean over B x D x H x W.
    """
    if recon.shape != target.shape:
        raise ValueError(f"spectral_loss: shapes differ, {tuple(recon.shape)} vs {tuple(target.shape)}")
    if recon.ndim == 4:
        recon, target = recon.unsqueeze(1), target.unsqueeze(1)
    elif recon.ndim != 5:
        raise ValueError(
            f"spectral_loss expects (B, D, H, W) or (B, C, D, H, W), got {tuple(recon.shape)}"
        )
    # FFTs of half-precision inputs are either unsupported or too coarse for log-spectra.
    if recon.dtype not in (torch.float32, torch.float64):
        recon, target = recon.float(), target.float()
    d, h, w = recon.shape[-3:]
    keep = _rfft_high_pass((d, h, w), float(cutoff), recon.device)
    dims = (-3, -2, -1)
    mag_rec = torch.fft.rfftn(standardize_volumes(recon), dim=dims).abs() * keep
    mag_gt = torch.fft.rfftn(standardize_volumes(target), dim=dims).abs() * keep
    squared = (torch.log1p(mag_rec + eps) - torch.log1p(mag_gt + eps)) ** 2
    per_channel = (squared * half_spectrum_multiplicity(w, recon.device)).sum(dim=(0, 2, 3, 4))
    return (per_channel / (recon.shape[0] * d * h * w)).mean()


class SpectralLossSchedule:
    """When the spectral term is computed, with which weight, and what is added in between.

    The official rule (``app/mae/train.py``), on EVERY step::

        loss = loss_mae + (spectral_coeff_eff / spec_loss_every_n_iter) * loss_spec

    The spectral loss is computed (with gradient) only on optimiser steps with
    ``step % every == 0`` (official ``every`` 25, paper text 10) and only from epoch
    ``start_epoch`` on (official 10, paper text 5). On a compute step the effective weight is
    refreshed to ``weight * min(1, (epoch - start_epoch + 1) / warmup_epochs)`` (official weight
    0.01, warm-up 20 epochs, integer epochs); on the steps in between the cached value of the last
    compute step is added again as a constant, with the weight of that step. So the term is
    ``(w / every) * loss`` with gradient on a compute step and ``(w / every) * cached`` without
    gradient in between: the spectral gradient acts on one step in ``every`` with weight
    ``w / every`` (``w / every**2`` averaged over steps).

    ``every=1`` is the plain, un-amortised loss: ``w * loss`` on every step.

    A non-finite value, or one above ``max_value`` (1e3, as officially), is dropped with a warning:
    that step adds 0 and the cache is reset to 0, as the official code does.

    State (cached value and weight) is checkpointed through :meth:`state_dict`.

    Usage::

        term, info = schedule(step, epoch, lambda: spectral_loss(rebuilt, volumes))
        loss = pixel_loss + term
    """

    def __init__(
        self,
        weight: float = 0.01,
        every: int = 25,
        start_epoch: float = 10,
        warmup_epochs: float = 20,
        max_value: float = 1e3,
    ):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if weight < 0 or warmup_epochs < 0:
            raise ValueError("weight and warmup_epochs must be >= 0")
        self.weight = weight
        self.every = every
        self.start_epoch = start_epoch
        self.warmup_epochs = warmup_epochs
        self.max_value = max_value
        self._cached: torch.Tensor | None = None
        self._cached_weight = 0.0

    def weight_at(self, epoch: float) -> float:
        """Spectral weight in ``epoch`` (0-based; counted in whole epochs, as officially)."""
        epoch = math.floor(epoch)
        if epoch < self.start_epoch:
            return 0.0
        if self.warmup_epochs == 0:
            return self.weight
        return self.weight * min(1.0, (epoch - self.start_epoch + 1) / self.warmup_epochs)

    def is_compute_step(self, step: int, epoch: float) -> bool:
        """Whether the spectral loss is computed at optimiser step ``step`` in ``epoch``."""
        return self.weight_at(epoch) > 0 and step % self.every == 0

    def __call__(
        self, step: int, epoch: float, compute_fn: Callable[[], torch.Tensor]
    ) -> tuple[torch.Tensor, dict]:
        """The spectral term to add to the loss at this step.

        Args:
            step: global optimiser step (0-based).
            epoch: current epoch (0-based; fractional epochs are floored).
            compute_fn: returns the spectral loss (scalar tensor); called on compute steps only.

        Returns:
            ``(term, info)``: a scalar tensor, and ``{"computed", "dropped", "value", "weight"}``
            where ``value`` is the raw spectral loss (the cached one between compute steps, NaN
            when there is none) and ``weight`` the effective ``w / every`` applied to it.
        """
        info = {"computed": False, "dropped": False, "value": math.nan, "weight": 0.0}
        if self.is_compute_step(step, epoch):
            self._cached_weight = self.weight_at(epoch) / self.every
            info["weight"] = self._cached_weight
            loss = compute_fn()
            value = float(loss.detach())
            info["value"] = value
            if not math.isfinite(value) or value > self.max_value:
                warnings.warn(
                    f"spectral loss {value:.3g} at step {step} is non-finite or above "
                    f"{self.max_value:g}; dropped for this step (cache reset to 0)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                info["dropped"] = True
                self._cached = torch.zeros(())
                return torch.zeros((), device=loss.device), info
            self._cached = loss.detach()
            info["computed"] = True
            return self._cached_weight * loss, info
        if self._cached is None or self.weight_at(epoch) == 0:
            return torch.zeros(()), info
        info["value"] = float(self._cached)
        info["weight"] = self._cached_weight
        return self._cached_weight * self._cached, info

    def state_dict(self) -> dict:
        return {"cached": None if self._cached is None else float(self._cached),
                "cached_weight": self._cached_weight}

    def load_state_dict(self, state: dict) -> None:
        cached = state["cached"]
        self._cached = None if cached is None else torch.tensor(float(cached))
        self._cached_weight = float(state.get("cached_weight", 0.0))
