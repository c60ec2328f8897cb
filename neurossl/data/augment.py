"""Training augmentations of the official release, as MONAI transforms on ``(C, D, H, W)``.

Mapping from the official names (``AugmentConfig`` field; the official code uses TorchIO) to MONAI:

- rotation 10 degrees (``rotation_deg``; ``tio.RandomAffine(degrees)``) ->
  :class:`RandScaleAspectRotate`, each of the three angles ~ U(-deg, deg), applied with
  ``monai.transforms.Affine``;
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

All are applied to every training item (prob 1), spatial first, then intensity; the official
MAE transforms (``app/mae/transforms.py``) draw one spatial and one intensity transform per item
(``tio.OneOf``). Spatial padding is 0,
the value of the background after preprocessing (stripped MRI, CT below every window).
Reproducibility: :func:`apply_augment` reseeds the whole chain from the item's seed, so an
item's augmentation depends only on (seed, epoch, index), never on the worker that draws it.
"""

from __future__ import annotations

import math

import torch
from monai.transforms import (
    Affine,
    Compose,
    RandAdjustContrast,
    RandBiasField,
    RandGaussianNoise,
    RandomizableTransform,
)
from monai.utils import convert_to_tensor

from neurossl.config import AugmentConfig


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

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """``(C, D, H, W)`` -> ``(C, D, H, W)``, bilinear, zero padding."""
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        affine = Affine(
            rotate_params=self._angles,
            scale_params=self._grid,
            padding_mode="zeros",
            image_only=True,
        )
        return affine(img)


def build_augment(cfg: AugmentConfig | None) -> Compose | None:
    """The training augmentation chain of ``cfg``, or None when disabled / not given."""
    if cfg is None or not cfg.enabled:
        return None
    return Compose(
        [
            RandScaleAspectRotate(cfg.scale, cfg.aspect_ratio, cfg.rotation_deg),
            RandBiasField(coeff_range=(-cfg.bias_coeff, cfg.bias_coeff), prob=1.0),
            RandAdjustContrast(gamma=(1.0 - cfg.gamma, 1.0 + cfg.gamma), prob=1.0),
            RandGaussianNoise(mean=0.0, std=cfg.noise_std, prob=1.0),
        ]
    )


def apply_augment(image: torch.Tensor, chain: Compose, seed: int) -> torch.Tensor:
    """Augment one item reproducibly.

    Args:
        image: ``(C, D, H, W)`` float32.
        chain: from :func:`build_augment`; reseeded here, so its previous state never matters.
        seed: the item's seed (0 <= seed < 2**32).
    Returns:
        ``(C, D, H, W)`` float32 plain tensor (MONAI's metadata dropped).
    """
    chain.set_random_state(seed=int(seed) % (2**32))
    out = convert_to_tensor(chain(image), dtype=torch.float32, track_meta=False)
    return out.contiguous()
