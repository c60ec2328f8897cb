"""Training augmentations of the official release, as MONAI transforms on ``(C, D, H, W)``.

Mapping from the official names (``AugmentConfig`` field; the official code uses TorchIO) to MONAI:

- rotation 10 degrees (``rotation_deg``; ``tio.RandomAffine(degrees)``) ->
  :class:`RandScaleAspectRotate`, each of the three angles ~ U(-deg, deg), applied with
  MONAI's rotation and scale matrices (:func:`resample_affine`);
- scale 0.9-1.0 (``scale``; V-JEPA's ``random_resize_scale``, the kept share of the in-plane
  area) -> the same transform: in-plane grid scales whose product ``s`` ~ U(scale), a zoom-in as
  with a random-resized crop;
- aspect ratio 0.9-1.1 (``aspect_ratio``; ``random_resize_aspect_ratio``, width / height of the
  kept area) -> the same transform: ``grid_w / grid_h = r`` ~ U(aspect_ratio);
- bias 0.1 (``bias_coeff``; ``tio.RandomBiasField(coefficients=0.1)``, coefficients
  ~ U(-0.1, 0.1)) -> ``RandBiasField(coeff_range=(-c, c))``;
- gamma 0.1 (``gamma``; ``tio.RandomGamma(log_gamma=(-0.1, 0.1))``) ->
  ``RandAdjustContrast(gamma=(1 - g, 1 + g))`` (exp(+-0.1) ~ 1 +- 0.1);
- additive noise 0.01 (``noise_std``; ``tio.RandomNoise(std=0.01)``) ->
  ``RandGaussianNoise(mean=0, std)`` (MONAI draws the std in [0, std]).

MONAI draws every parameter (its transforms' own ``randomize`` on their own RandomStates, so
the distributions are MONAI's); the arithmetic is :mod:`neurossl.data.augment_ops`, batched torch
code equal to MONAI's transforms to float precision (tested): the affine is one
``grid_sample`` on MONAI's rotation and scale matrices, the bias field MONAI's Legendre
polynomial as three small contractions, the contrast MONAI's ``AdjustContrast``, and the noise is
drawn by torch from a seed MONAI's generator draws. The loader workers apply it per item
(:func:`apply_augment`, 26-30 ms for a 64^3 item on one core); with ``on_device`` the items carry
their drawn parameters instead and the trainer applies them to the whole batch on its device
(:func:`neurossl.data.dataset.batch_to_device`), with the same result on the CPU.

All are applied to every training item (prob 1), spatial first, then intensity; the official
MAE transforms (``app/mae/transforms.py``) draw one spatial and one intensity transform per item
(``tio.OneOf``). Spatial padding is 0,
the value of the background after preprocessing (stripped MRI, CT below every window).
Reproducibility: :func:`draw_augment` reseeds the whole chain from the item's seed, so an
item's augmentation depends only on (seed, epoch, index), never on the worker that draws it nor
on where it is applied (loader or training device).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrast,
    RandBiasField,
    RandGaussianNoise,
    RandomizableTransform,
)
from monai.transforms.utils import create_rotate, create_scale

from neurossl.config import AugmentConfig
from neurossl.data.augment_ops import apply_augment_params, gaussian_noise, resample_affine


class RandScaleAspectRotate(RandomizableTransform):
    """Random in-plane scale + aspect ratio and 3-D rotation of a ``(C, D, H, W)`` tensor.

    Grid scales (MONAI's ``Affine`` convention: < 1 zooms in): depth 1,
    ``h = sqrt(s / r)``, ``w = sqrt(s * r)`` so that ``h * w = s`` and ``w / h = r``.
    """

    def __init__(
        self,
        scale: tuple[float, float],
        aspect_ratio: tuple[float, float],
        rotation_deg: float,
        prob: float = 1.0,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.scale = scale
        self.aspect_ratio = aspect_ratio
        self.rotation_rad = math.radians(rotation_deg)
        self._grid = (1.0, 1.0, 1.0)
        self._angles = (0.0, 0.0, 0.0)

    def randomize(self, data: object = None) -> None:
        """Draw scale, aspect ratio and the three angles from this transform's RandomState."""
        super().randomize(None)
        s = self.R.uniform(*self.scale)
        r = self.R.uniform(*self.aspect_ratio)
        self._grid = (1.0, math.sqrt(s / r), math.sqrt(s * r))
        self._angles = tuple(self.R.uniform(-self.rotation_rad, self.rotation_rad, 3).tolist())

    def matrix(self) -> np.ndarray:
        """The drawn ``(4, 4)`` map in ``monai.transforms.Affine``'s convention (identity when
        the transform does not apply)."""
        if not self._do_transform:
            return np.eye(4)
        return create_rotate(3, self._angles) @ create_scale(3, self._grid)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """``(C, D, H, W)`` -> ``(C, D, H, W)``, bilinear, zero padding."""
        if randomize:
            self.randomize()
        image = torch.as_tensor(img, dtype=torch.float32)
        theta = affine_theta(self.matrix(), tuple(image.shape[1:]))
        return resample_affine(image[None], theta[None])[0]


def affine_theta(matrix: np.ndarray, size: tuple[int, int, int]) -> torch.Tensor:
    """``(3, 3)`` float32 ``grid_sample`` map of a ``(4, 4)`` MONAI-convention ``matrix``.

    ``matrix`` maps output to input voxels in array axis order, centred voxel units, no
    translation (``monai.transforms.Affine``); resampling with the result equals MONAI's
    bilinear, zero-padded ``Affine`` to float precision.
    """
    n = torch.tensor(size, dtype=torch.float64)
    linear = torch.as_tensor(np.asarray(matrix)[:3, :3], dtype=torch.float64)
    # centred voxel units -> grid_sample's [-1, 1] units (align_corners=False), then (x, y, z) =
    # (W, H, D) order
    return (torch.diag(1.0 / n) @ linear @ torch.diag(n)).flip(0).flip(1).float()


def bias_table(coeff: list[float], degree: int) -> torch.Tensor:
    """MONAI ``RandBiasField`` coefficients -> the ``(k, k, k)`` table, ``k = degree + 1``."""
    # MONAI's layout: every (i, j, k) with i + j + k <= degree, in this order
    powers = [(i, j, k) for i in range(degree + 1) for j in range(degree + 1 - i)
              for k in range(degree + 1 - i - j)]
    table = torch.zeros((degree + 1,) * 3, dtype=torch.float32)
    table[tuple(torch.tensor(powers).T)] = torch.tensor(coeff, dtype=torch.float32)
    return table


class SeededRandGaussianNoise(RandGaussianNoise):
    """MONAI's ``RandGaussianNoise`` with the noise drawn by torch in float32.

    MONAI's generator still draws the standard deviation and, instead of one float64 normal per
    voxel, one seed for a ``torch.Generator``: same distribution, a third of the cost, and a
    draw that any device can make.
    """

    def randomize(self, img: object = None, mean: float | None = None) -> None:
        """Draw the std in ``[0, std]`` (or ``std``) and the noise seed; ``img`` is unused."""
        RandomizableTransform.randomize(self, None)
        self.std_value, self.seed = 0.0, 0
        if self._do_transform:
            self.std_value = self.R.uniform(0, self.std) if self.sample_std else self.std
            self.seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, img: torch.Tensor, mean: float | None = None, randomize: bool = True) -> torch.Tensor:
        """``img + mean + std * noise`` for a ``(C, D, H, W)`` tensor."""
        if randomize:
            self.randomize()
        image = torch.as_tensor(img, dtype=torch.float32)
        noise = gaussian_noise(image[None], torch.tensor([self.seed]))[0]
        return image + noise * self.std_value + (self.mean if mean is None else mean)


def build_augment(cfg: AugmentConfig | None) -> Compose | None:
    """The training augmentation chain of ``cfg`` (its randomisation: see :func:`draw_augment`),
    or None when disabled / not given."""
    if cfg is None or not cfg.enabled:
        return None
    return Compose(
        [
            RandScaleAspectRotate(cfg.scale, cfg.aspect_ratio, cfg.rotation_deg),
            RandBiasField(coeff_range=(-cfg.bias_coeff, cfg.bias_coeff), prob=1.0),
            RandAdjustContrast(gamma=(1.0 - cfg.gamma, 1.0 + cfg.gamma), prob=1.0),
            SeededRandGaussianNoise(mean=0.0, std=cfg.noise_std, prob=1.0),
        ]
    )


def draw_augment(
    chain: Compose, seed: int, shape: tuple[int, ...], zscore: bool = False
) -> dict[str, torch.Tensor]:
    """Draw one item's augmentation parameters.

    Args:
        chain: from :func:`build_augment`; reseeded here, so its previous state never matters.
        seed: the item's seed (0 <= seed < 2**32).
        shape: the item's ``(C, D, H, W)``.
        zscore: z-score the item after augmenting it (``preprocess.intensity: official``).
    Returns:
        :data:`neurossl.data.augment_ops.PARAM_NAMES` -> tensors (``theta (3, 3)``,
        ``bias (4, 4, 4)``, scalars), on the CPU; stacked over items they feed
        :func:`~neurossl.data.augment_ops.apply_augment_params`.
    """
    chain.set_random_state(seed=int(seed) % (2**32))
    spatial, bias, contrast, noise = chain.transforms
    spatial.randomize()
    bias.randomize(img_size=shape[1:])
    contrast.randomize()
    noise.randomize()
    return {
        "theta": affine_theta(spatial.matrix(), tuple(shape[1:])),
        "bias": (bias_table(bias._coeff, bias.degree) if bias._do_transform
                 else torch.zeros((bias.degree + 1,) * 3)),
        "gamma": torch.tensor(contrast.gamma_value if contrast._do_transform else 1.0),
        "noise_std": torch.tensor(float(noise.std_value)),
        "noise_seed": torch.tensor(noise.seed, dtype=torch.int64),
        "zscore": torch.tensor(bool(zscore)),
    }


def apply_augment(
    image: torch.Tensor, chain: Compose, seed: int, zscore: bool = False
) -> torch.Tensor:
    """Augment one item reproducibly (on its device).

    Args:
        image: ``(C, D, H, W)`` float32.
        chain: from :func:`build_augment`; reseeded here, so its previous state never matters.
        seed: the item's seed (0 <= seed < 2**32).
        zscore: z-score it afterwards (``preprocess.intensity: official``).
    Returns:
        ``(C, D, H, W)`` float32 plain tensor.
    """
    params = draw_augment(chain, seed, tuple(image.shape), zscore)
    batch = {name: value[None] for name, value in params.items()}
    return apply_augment_params(torch.as_tensor(image)[None], batch)[0].contiguous()
