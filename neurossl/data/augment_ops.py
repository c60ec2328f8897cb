"""The numerical core of the training augmentations, batched and on any device.

:mod:`neurossl.data.augment` draws each item's parameters with MONAI's randomisation; the
functions here apply them to a batch ``(B, C, D, H, W)`` wherever it lives. The loader workers
call them on one item at a time (a batch of 1, on the CPU); with ``augment.on_device`` the
trainer calls them on the whole batch on the training device, which is what keeps a GPU fed at
160^3: there an augmented item costs ~0.3 s of a CPU core (the affine resample 0.27 s) against
~0.05 s for the crop alone.

An item's parameters (:func:`apply_augment_params` takes them stacked over the batch):

- ``theta`` ``(3, 3)``: output -> input point in ``grid_sample``'s normalised ``(x, y, z)``
  coordinates (no translation: the rotation and scales act about the volume's centre);
- ``flip`` ``()`` bool: mirror the first in-plane axis (H);
- ``bias`` ``(k, k, k)``: Legendre coefficients of the log bias field, ``[i, j, k]`` for degree
  ``i`` along D, ``j`` along H, ``k`` along W (zero where ``i + j + k`` exceeds the degree);
- ``gamma`` ``()``: the contrast exponent on the min-max-normalised volume;
- ``blur`` ``(3,)``: Gaussian sigmas along (D, H, W) in voxels, MONAI's ``GaussianSmooth``
  (zeros: no blur);
- ``noise_std`` ``()`` and ``noise_seed`` ``()``: additive Gaussian noise, drawn by a torch
  generator seeded per item (on CUDA a different but equally distributed stream than on CPU);
- ``zscore`` ``()`` bool: not an augmentation but the step after it, the per-volume
  :func:`~neurossl.data.preprocess.zscore` of ``preprocess.intensity: official``, carried with
  the parameters so that it runs wherever the augmentation runs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.layers import GaussianFilter

from neurossl.data.preprocess import zscore

PARAM_NAMES = ("theta", "flip", "bias", "gamma", "blur", "noise_std", "noise_seed", "zscore")
CONTRAST_EPS = 1e-7  # as monai.transforms.AdjustContrast


def resample_affine(images: torch.Tensor, theta: torch.Tensor,
                    out_size: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Bilinear resampling with zero padding, one ``grid_sample`` call for the batch.

    Args:
        images: ``(B, C, D, H, W)`` float.
        theta: ``(B, 3, 3)`` output -> input map in normalised ``(x, y, z) = (W, H, D)`` units,
            or ``(B, 3, 4)`` with a translation column (``F.affine_grid``'s convention).
        out_size: ``(D', H', W')`` of the output; default the input's.
    Returns:
        ``(B, C, D', H', W')``, equal to ``grid_sample`` on ``F.affine_grid(theta)``.
    """
    theta = theta.to(images.dtype)
    # affine_grid's (B, D, H, W, 3) grid as a sum of broadcast axes: a third of its cost
    d, h, w = (((torch.arange(n, dtype=images.dtype, device=images.device) * 2 + 1) / n - 1)
               for n in (out_size or images.shape[2:]))
    rows = theta.view(-1, 1, 1, 1, 3, theta.shape[-1])
    grid = (rows[..., 0] * w[:, None] + rows[..., 1] * h[:, None, None]
            + rows[..., 2] * d[:, None, None, None])
    if theta.shape[-1] == 4:
        grid = grid + rows[..., 3]
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def legendre_basis(n: int, degree: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(n, degree + 1)`` Legendre polynomials at ``n`` points evenly spaced over [-1, 1],
    float32, as MONAI's ``RandBiasField`` evaluates them."""
    points = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    basis = np.polynomial.legendre.legvander(points, degree).astype(np.float32)
    return torch.from_numpy(basis).to(device)


def log_bias_field(coeff: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """The polynomial log bias fields ``(B, D, H, W)`` of coefficient tables ``(B, k, k, k)``.

    Evaluated as three contractions with one ``(n, k)`` basis per axis, the small ones first
    (``B k^2 W``, ``B k D H W`` ... multiply-adds), never as a 3-D Vandermonde tensor.
    """
    degree = coeff.shape[-1] - 1
    vd, vh, vw = (legendre_basis(n, degree, coeff.device) for n in size)
    field = torch.einsum("ck,nijk->nijc", vw, coeff.float())
    field = torch.einsum("bj,nijc->nibc", vh, field)
    return torch.einsum("ai,nibc->nabc", vd, field)


def adjust_contrast(images: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """MONAI's ``AdjustContrast`` per volume: ``((x - min) / (range + eps)) ** gamma * range + min``.

    Args:
        images: ``(B, C, D, H, W)``; min and range are each volume's, over all its channels.
        gamma: ``(B,)``.
    """
    dims = tuple(range(1, images.dim()))
    low = images.amin(dim=dims, keepdim=True)
    span = images.amax(dim=dims, keepdim=True) - low
    exponent = gamma.to(images.dtype).view(-1, *[1] * len(dims))
    return ((images - low) / (span + CONTRAST_EPS)).pow(exponent) * span + low


def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """MONAI's ``GaussianSmooth`` per volume, with its own sigmas.

    Args:
        images: ``(B, C, D, H, W)``.
        sigmas: ``(B, 3)`` along (D, H, W), in voxels; a row of zeros leaves its volume as it is.
    Returns:
        ``(B, C, D, H, W)`` (a loop over the volumes that blur).
    """
    rows = [GaussianFilter(3, [s.to(images.device) for s in sigma], approx="erf")(image[None])[0]
            if bool((sigma > 0).all()) else image for image, sigma in zip(images, sigmas.float())]
    return torch.stack(rows)


def gaussian_noise(like: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` standard normal noise, row ``i`` drawn from a generator seeded ``seeds[i]``
    (a loop over the volumes, each drawn on ``like``'s device)."""
    rows = [torch.randn(like.shape[1:], device=like.device, dtype=like.dtype,
                        generator=torch.Generator(like.device).manual_seed(int(seed)))
            for seed in seeds.tolist()]
    return torch.stack(rows)


def apply_augment_params(images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Augment a batch with its items' drawn parameters: affine, flip, bias field, contrast,
    blur, noise; then z-score the items whose ``zscore`` is set.

    Args:
        images: ``(B, C, D, H, W)`` float32, on any device.
        params: :data:`PARAM_NAMES` -> ``(B, ...)`` tensors (see the module docstring), as
            :func:`neurossl.data.augment.draw_augment` makes them per item and a DataLoader
            stacks them; moved to ``images``' device here (``noise_seed`` is read on the CPU).
    Returns:
        ``(B, C, D, H, W)`` float32 on ``images``' device.
    """
    device = images.device
    theta = params["theta"].to(device)
    # items the affine leaves as they are (policy one_of) pass through exactly, not resampled
    kept = (theta == torch.eye(3, device=device)).flatten(1).all(1).view(-1, *[1] * 4)
    x = images.float()
    if not bool(kept.all()):
        x = torch.where(kept, x, resample_affine(x, theta))
    flip = params["flip"].to(device).view(-1, *[1] * (x.dim() - 1))
    x = torch.where(flip, x.flip(3), x) if bool(flip.any()) else x
    x = x * log_bias_field(params["bias"].to(device), tuple(x.shape[2:])).exp().unsqueeze(1)
    x = adjust_contrast(x, params["gamma"].to(device))
    x = gaussian_blur(x, params["blur"]) if bool(params["blur"].any()) else x
    std = params["noise_std"].to(device=device, dtype=x.dtype).view(-1, *[1] * (x.dim() - 1))
    x = x + gaussian_noise(x, params["noise_seed"].cpu()) * std if bool(std.any()) else x
    standardise = params["zscore"].to(device).view(-1, *[1] * (x.dim() - 1))
    return torch.where(standardise, zscore(x), x) if bool(standardise.any()) else x
