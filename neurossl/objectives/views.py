"""Random 3-D views of a batch of volumes for the joint-embedding objectives (SimCLR, DINO-MIM).

A view is drawn in two parts, both on the batch's device and batched over volumes:

1. spatial, ONE ``grid_sample`` call for the whole batch (``resample_affine``): a random box
   (each axis an independent fraction of the volume, so this is also the scale / aspect part of
   the affine), a random rotation about each axis (in voxel units, so an anisotropic grid is not
   sheared), and random flips (a negative axis scale), resampled (trilinear) to ``out_size``;
2. intensity, per volume and channel: gamma on the min-max-normalised foreground, contrast around
   its mean, a brightness shift (these three together with probability ``jitter_prob``), then
   additive Gaussian noise. Shifts and noise are in units of the view's own per-channel
   foreground std, so one setting suits z-scored MRI (std 1) and CT's [0, 1] window channels alike.
   The foreground is every non-zero voxel: preprocessing leaves the background at exactly 0
   (skull-stripped MRI, air below every CT window) and the jitter leaves it there, since no scan
   has a bright background (shifting it would move every background token of a view by one
   random constant, a change no scanner makes).

The strengths are a :class:`neurossl.config.ViewConfig` (``objective.simclr_views``,
``objective.dino_views``). Defaults follow the 3D-Neuro-SimCLR release (MONAI chain: random-size
crop of at least ~20 % of each axis resized back, flip p 0.5, rotation, intensity shift +-0.5 and
gamma 0.5-1.5 each with p 0.8), with four deliberate changes: rotations are small (10 degrees per
axis, the official mjepa augmentation) rather than 45 degrees about one axis; every axis may flip,
since preprocessing already picks the slice axis of near-isotropic volumes at random, so no array
axis has a fixed anatomical meaning; weak Gaussian noise is added; and the intensity jitter spares
the background (above). Padding is 0, the background value after preprocessing (see
``neurossl.data.augment``).

Reproducibility: every parameter is drawn from ``StepInfo.generator`` for the GLOBAL batch
(``B * world_size`` volumes) and each rank keeps its rows (``StepInfo.local_rows``), so a view
depends only on (seed, step, global position). Noise volumes are too large to draw for the global
batch on every rank, so the generator draws one seed per volume and each rank draws its own rows'
noise from generators seeded with them (a loop over the local volumes, not over voxels).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from neurossl.config import ConfigError, ViewConfig
from neurossl.data.augment_ops import gaussian_noise, resample_affine
from neurossl.objectives.base import StepInfo


def check_views(spec: ViewConfig, key: str = "views") -> ViewConfig:
    """``spec`` unchanged, or a :class:`ConfigError` naming ``key`` and the bad field."""
    lo, hi = spec.crop_scale
    if not 0.0 < lo <= hi <= 1.0:
        raise ConfigError(f"'{key}.crop_scale' must satisfy 0 < lo <= hi <= 1, got {spec.crop_scale}")
    if len(spec.flip_prob) != 3 or not all(0.0 <= p <= 1.0 for p in spec.flip_prob):
        raise ConfigError(f"'{key}.flip_prob' needs one probability in [0, 1] per axis (D, H, W), "
                          f"got {spec.flip_prob}")
    if not 0.0 <= spec.jitter_prob <= 1.0:
        raise ConfigError(f"'{key}.jitter_prob' must lie in [0, 1], got {spec.jitter_prob}")
    if not 0.0 < spec.gamma[0] <= spec.gamma[1]:
        raise ConfigError(f"'{key}.gamma' must satisfy 0 < lo <= hi, got {spec.gamma}")
    negative = [f for f in ("rotation_deg", "brightness", "contrast", "noise_std") if getattr(spec, f) < 0]
    if negative:
        raise ConfigError(f"'{key}.{negative[0]}' must be >= 0, got {getattr(spec, negative[0])}")
    return spec


@dataclass
class ViewParams:
    """Parameters of one view of ``B`` volumes (every field has ``B`` rows).

    Attributes:
        theta: ``(B, 3, 4)`` affine from output to input normalised ``(x, y, z) = (W, H, D)``
            coordinates, as ``F.affine_grid`` takes it.
        jitter: ``(B,)`` bool, whether gamma / contrast / brightness apply.
        gamma, contrast, brightness, noise_std: ``(B,)`` float.
        noise_seed: ``(B,)`` int64 seeds of the per-volume noise generators.
    """

    theta: torch.Tensor
    jitter: torch.Tensor
    gamma: torch.Tensor
    contrast: torch.Tensor
    brightness: torch.Tensor
    noise_std: torch.Tensor
    noise_seed: torch.Tensor

    def local(self, info: StepInfo) -> ViewParams:
        """This rank's rows of parameters drawn for the global batch."""
        return ViewParams(**{f.name: info.local_rows(getattr(self, f.name))
                             for f in dataclasses.fields(self)})


def _uniform(shape: tuple[int, ...], lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=generator)


def _matrix(rows: list[list[torch.Tensor]]) -> torch.Tensor:
    """3 x 3 nested lists of ``(B,)`` tensors -> ``(B, 3, 3)``."""
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` angles (radians) about x, y, z -> ``(B, 3, 3)`` rotations ``Rz @ Ry @ Rx``."""
    one, zero = torch.ones_like(angles[:, 0]), torch.zeros_like(angles[:, 0])
    c, s = angles.cos().unbind(1), angles.sin().unbind(1)
    rx = _matrix([[one, zero, zero], [zero, c[0], -s[0]], [zero, s[0], c[0]]])
    ry = _matrix([[c[1], zero, s[1]], [zero, one, zero], [-s[1], zero, c[1]]])
    rz = _matrix([[c[2], -s[2], zero], [s[2], c[2], zero], [zero, zero, one]])
    return rz @ ry @ rx


def sample_view_params(spec: ViewConfig, batch: int, in_size: tuple[int, int, int],
                       generator: torch.Generator) -> ViewParams:
    """Draw one view's parameters for ``batch`` volumes of ``in_size = (D, H, W)`` voxels (CPU).

    The input point sampled for output point ``u`` (normalised, ``(x, y, z)`` order) is
    ``c + diag(2 / n) R diag(n / 2) diag(s * f) u``: a box of half-extents ``s`` (fraction of
    each axis) centred at ``c`` (inside the volume), flipped by ``f = +-1`` and rotated by ``R``
    in voxel units (``n`` = voxels per axis).
    """
    b = batch
    scale = _uniform((b, 3), *spec.crop_scale, generator)  # (D, H, W) order
    flips = torch.rand(b, 3, generator=generator) < torch.tensor(spec.flip_prob)
    centre = (2 * torch.rand(b, 3, generator=generator) - 1) * (1 - scale)
    rad = math.radians(spec.rotation_deg)
    angles = _uniform((b, 3), -rad, rad, generator)
    jitter = torch.rand(b, generator=generator) < spec.jitter_prob
    gamma = _uniform((b,), *spec.gamma, generator)
    contrast = _uniform((b,), 1 - spec.contrast, 1 + spec.contrast, generator)
    brightness = _uniform((b,), -spec.brightness, spec.brightness, generator)
    noise_std = _uniform((b,), 0.0, spec.noise_std, generator)
    noise_seed = torch.randint(0, 2**62, (b,), generator=generator)

    # affine_grid orders coordinates (x, y, z) = (W, H, D): reverse every per-axis quantity
    n = torch.tensor(in_size[::-1], dtype=torch.float32)
    signed = scale.flip(1) * (1 - 2 * flips.flip(1).float())
    linear = rotation_matrices(angles) * (n * signed).unsqueeze(1) / n.view(1, 3, 1)
    theta = torch.cat([linear, centre.flip(1).unsqueeze(-1)], dim=-1)
    return ViewParams(theta, jitter, gamma, contrast, brightness, noise_std, noise_seed)


def _foreground_stats(x: torch.Tensor, foreground: torch.Tensor):
    """Per volume and channel mean, std, min and max of ``x`` over its ``foreground = x != 0``
    voxels, each ``(B, C, 1, 1, 1)`` (all zeros for a channel without foreground)."""
    dims = (2, 3, 4)
    voxels = foreground.sum(dim=dims, keepdim=True, dtype=x.dtype)
    count = voxels.clamp_min(1.0)
    # x is 0 off the foreground, so plain sums over the volume are the foreground's sums: two
    # passes over the voxels instead of the five of weighted, centred sums
    mean = x.sum(dim=dims, keepdim=True) / count
    var = (x.square().sum(dim=dims, keepdim=True) / count - mean.square()).clamp_min(0.0)
    lo = torch.where(foreground, x, float("inf")).amin(dim=dims, keepdim=True)
    hi = torch.where(foreground, x, float("-inf")).amax(dim=dims, keepdim=True)
    lo, hi = lo.masked_fill(voxels == 0, 0.0), hi.masked_fill(voxels == 0, 0.0)
    return mean, var.sqrt().clamp_min(1e-6), lo, hi


def apply_view(images: torch.Tensor, params: ViewParams, out_size: tuple[int, int, int]) -> torch.Tensor:
    """Render a view.

    Args:
        images: ``(B, C, D, H, W)``.
        params: ``B`` rows of :class:`ViewParams` (see :meth:`ViewParams.local`).
        out_size: ``(D', H', W')`` of the view (the encoder's ``img_size``).

    Returns:
        ``(B, C, D', H', W')`` float32 on ``images.device``.
    """
    device = images.device
    x = resample_affine(images.float(), params.theta.to(device), out_size)

    foreground = x != 0
    mean, std, lo, hi = _foreground_stats(x, foreground)
    row = (-1, 1, 1, 1, 1)
    gamma, contrast, brightness, noise_std, jitter = (
        p.to(device).view(row) for p in (params.gamma, params.contrast, params.brightness,
                                         params.noise_std, params.jitter))
    span = (hi - lo).clamp_min(1e-6)
    # gamma on the min-max-normalised foreground, then contrast about its mean and a brightness
    # shift: ((x - lo) / span) ** gamma * (span * contrast) + (lo - mean) * contrast + mean +
    # brightness * std, as two fused multiply-adds around in-place clamp and pow (the views are
    # a large share of a SimCLR / DINO step on a CPU)
    jittered = torch.addcmul(-lo / span, x, 1.0 / span).clamp_(0, 1).pow_(gamma)
    shift = (lo - mean) * contrast + mean + brightness * std
    jittered = torch.addcmul(shift, jittered, span * contrast)
    x = torch.where(jitter & foreground, jittered, x)
    if bool((params.noise_std > 0).any()):
        x.addcmul_(gaussian_noise(x, params.noise_seed), noise_std * std)
    return x


def random_view(images: torch.Tensor, spec: ViewConfig, info: StepInfo,
                out_size: tuple[int, int, int]) -> torch.Tensor:
    """One random view of this rank's volumes ``(B, C, D, H, W) -> (B, C, *out_size)``, its
    parameters drawn from ``info.generator`` for the global batch ``B * world_size``."""
    params = sample_view_params(spec, images.shape[0] * info.world_size, tuple(images.shape[2:]),
                                info.generator)
    return apply_view(images, params.local(info), out_size)


def token_box_indices(grid: tuple[int, int, int], size: tuple[int, int, int],
                      starts: torch.Tensor) -> torch.Tensor:
    """Flat indices of a box of ``size = (t, h, w)`` tokens at ``starts (B, 3)`` in ``grid``.

    Returns ``(B, t * h * w)`` long, ascending (the encoder's depth-major token order).
    """
    _, hp, wp = grid
    axes = [torch.arange(n, device=starts.device) for n in size]
    offsets = (axes[0].view(-1, 1, 1) * hp * wp + axes[1].view(1, -1, 1) * wp
               + axes[2].view(1, 1, -1)).flatten()
    origin = starts[:, 0] * hp * wp + starts[:, 1] * wp + starts[:, 2]
    return origin.unsqueeze(1) + offsets.unsqueeze(0)


def random_token_box(grid: tuple[int, int, int], scale: tuple[float, float], batch: int,
                     info: StepInfo) -> torch.Tensor:
    """A local crop in token space: a random box of tokens per volume of this rank.

    One box size is drawn per call (each axis a fraction ~ U(scale) of the grid, at least one
    token) so that every volume keeps the same number of tokens; each volume of the global batch
    gets its own position.

    Returns:
        ``(B, K)`` long kept-token indices for the encoder's ``masks=`` argument.
    """
    fractions = _uniform((3,), *scale, info.generator)
    size = tuple(max(1, min(g, round(f * g))) for f, g in zip(fractions.tolist(), grid))
    room = torch.tensor([g - s + 1 for g, s in zip(grid, size)])
    starts = (torch.rand(batch * info.world_size, 3, generator=info.generator) * room).long()
    return token_box_indices(grid, size, info.local_rows(starts))
