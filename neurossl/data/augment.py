"""Training augmentations of the official release, as MONAI transforms on ``(C, D, H, W)``.

Mapping from the official names (``AugmentConfig`` field; the official code uses TorchIO,
``app/mae/transforms.py`` and ``app/vjepa/transforms.py`` alike) to MONAI:

- rotation 10 degrees (``rotation_deg``; ``tio.RandomAffine(degrees)``) ->
  :class:`RandScaleAspectRotate`, each of the three angles ~ U(-deg, deg), applied with
  MONAI's rotation and scale matrices (:func:`resample_affine`);
- ``affine_rule: area``: scale 0.9-1.0 (``scale``; V-JEPA's ``random_resize_scale``, the kept
  share of the in-plane area) -> in-plane grid scales whose product ``s`` ~ U(scale), a zoom-in
  as with a random-resized crop; aspect ratio 0.9-1.1 (``aspect_ratio``;
  ``random_resize_aspect_ratio``, width / height of the kept area) -> ``grid_w / grid_h = r``
  ~ U(aspect_ratio);
- ``affine_rule: per_axis``, what the official code does with those two settings:
  ``tio.RandomAffine(scales=random_resize_aspect_ratio)`` zooms each of the three axes by its own
  factor ~ U(aspect_ratio) (grid scale = 1 / factor); ``random_resize_scale`` feeds only a crop
  the official code leaves commented out;
- left-right flip (``flip_prob``; ``tio.RandomFlip(axes=('LR',))``, flip probability 0.5) ->
  ``RandFlip(spatial_axis=1)``: TorchIO's 'LR' on the official identity-affine tensor is its first
  in-plane axis, here H (left-right when depth is axial);
- bias 0.1 (``bias_coeff``; ``tio.RandomBiasField(coefficients=0.1)``, coefficients
  ~ U(-0.1, 0.1); the official transforms leave it commented out) ->
  ``RandBiasField(coeff_range=(-c, c))``;
- gamma 0.1 (``gamma``; ``tio.RandomGamma(log_gamma=(-0.1, 0.1))``) ->
  ``RandAdjustContrast(gamma=(1 - g, 1 + g))`` (exp(+-0.1) ~ 1 +- 0.1; on a volume whose minimum
  is 0 its min-max gamma is TorchIO's ``x ** gamma`` times a constant);
- blur (``blur_sigma``; ``tio.RandomBlur(std=(0.01, 0.02))``, the default the official training
  scripts keep, in voxels on its identity-affine tensor) -> ``RandGaussianSmooth`` with each
  axis' sigma ~ U(blur_sigma); sigmas this small leave a volume as it is, in both libraries;
- additive noise 0.01 (``noise_std``; ``tio.RandomNoise(std=0.01)``) ->
  ``RandGaussianNoise(mean=0, std)`` (MONAI draws the std in [0, std], as TorchIO).

Which of them an item gets (``policy``): ``all`` applies every one (the flip with
``flip_prob``); ``one_of``, as the official ``tio.OneOf`` pair, one spatial transform (affine,
flip or none, by ``spatial_weights``) and one intensity transform (bias, gamma, noise, blur or
none, by ``intensity_weights``) per item (:class:`RandSelect`).

MONAI draws every parameter (its transforms' own ``randomize`` on their own RandomStates, so
the distributions are MONAI's); the arithmetic is :mod:`neurossl.data.augment_ops`, batched torch
code equal to MONAI's transforms to float precision (tested): the affine is one
``grid_sample`` on MONAI's rotation and scale matrices, the bias field MONAI's Legendre
polynomial as three small contractions, the contrast MONAI's ``AdjustContrast``, and the noise is
drawn by torch from a seed MONAI's generator draws. The loader workers apply it per item
(:func:`apply_augment`, 26-30 ms for a 64^3 item on one core); with ``on_device`` the items carry
their drawn parameters instead and the trainer applies them to the whole batch on its device
(:func:`neurossl.data.dataset.batch_to_device`), with the same result on the CPU.

Spatial transforms come first, then the intensity ones. Spatial padding is 0, the value of the
background after preprocessing (stripped MRI, CT below every window; TorchIO pads with the
volume's minimum, 0 on a stripped volume).
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
    RandFlip,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandomizableTransform,
)
from monai.transforms.utils import create_rotate, create_scale

from neurossl.config import AugmentConfig
from neurossl.data.augment_ops import apply_augment_params, gaussian_noise, resample_affine


class RandScaleAspectRotate(RandomizableTransform):
    """Random in-plane scale + aspect ratio and 3-D rotation of a ``(C, D, H, W)`` tensor.

    Grid scales (MONAI's ``Affine`` convention: < 1 zooms in): depth 1,
    ``h = sqrt(s / r)``, ``w = sqrt(s * r)`` so that ``h * w = s`` and ``w / h = r``; with
    ``per_axis``, ``1 / z`` for a zoom ``z`` ~ U(aspect_ratio) drawn per axis (TorchIO's scales).
    """

    def __init__(
        self,
        scale: tuple[float, float],
        aspect_ratio: tuple[float, float],
        rotation_deg: float,
        prob: float = 1.0,
        per_axis: bool = False,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.scale = scale
        self.aspect_ratio = aspect_ratio
        self.rotation_rad = math.radians(rotation_deg)
        self.per_axis = per_axis
        self._grid = (1.0, 1.0, 1.0)
        self._angles = (0.0, 0.0, 0.0)

    def randomize(self, data: object = None) -> None:
        """Draw scale, aspect ratio and the three angles from this transform's RandomState."""
        super().randomize(None)
        if self.per_axis:
            self._grid = tuple((1.0 / self.R.uniform(*self.aspect_ratio, 3)).tolist())
        else:
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


SPATIAL = ("affine", "flip", "none")
INTENSITY = ("bias", "gamma", "noise", "blur", "none")


class RandSelect(RandomizableTransform):
    """Which transforms an item gets; draws only, its call leaves an image as it is.

    ``all``: every one. ``one_of``: one of :data:`SPATIAL` by ``spatial_weights`` and one of
    :data:`INTENSITY` by ``intensity_weights`` (each normalised to sum 1), as ``tio.OneOf``.
    """

    def __init__(self, policy: str, spatial_weights: tuple[float, ...],
                 intensity_weights: tuple[float, ...]) -> None:
        RandomizableTransform.__init__(self, 1.0)
        self.policy = policy
        self.weights = [normalised(spatial_weights, SPATIAL),
                        normalised(intensity_weights, INTENSITY)]
        self.kept = set(SPATIAL + INTENSITY)

    def randomize(self, data: object = None) -> None:
        """Draw this item's spatial and intensity transform (``one_of``)."""
        if self.policy == "all":
            return
        self.kept = {names[self.R.choice(len(names), p=p)]
                     for names, p in zip((SPATIAL, INTENSITY), self.weights)}

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """The image unchanged: :func:`draw_augment` reads :attr:`kept`."""
        return img


def normalised(weights: tuple[float, ...], names: tuple[str, ...]) -> np.ndarray:
    """``weights`` (one per name) as probabilities; ValueError unless >= 0 with a positive sum."""
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(names),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights for {names} must be {len(names)} values >= 0 with a positive "
                         f"sum, got {weights}")
    return w / w.sum()


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
    per_axis = cfg.affine_rule == "per_axis"
    blur = {f"sigma_{axis}": cfg.blur_sigma for axis in "xyz"}
    # Compose seeds its members in list order: later additions go last, so that a config
    # without them draws exactly as before they existed
    return Compose(
        [
            RandScaleAspectRotate(cfg.scale, cfg.aspect_ratio, cfg.rotation_deg, per_axis=per_axis),
            RandBiasField(coeff_range=(-cfg.bias_coeff, cfg.bias_coeff), prob=1.0),
            RandAdjustContrast(gamma=(1.0 - cfg.gamma, 1.0 + cfg.gamma), prob=1.0),
            SeededRandGaussianNoise(mean=0.0, std=cfg.noise_std, prob=1.0),
            RandFlip(prob=cfg.flip_prob, spatial_axis=1),
            RandGaussianSmooth(**blur, prob=1.0),
            RandSelect(cfg.policy, cfg.spatial_weights, cfg.intensity_weights),
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
        ``bias (4, 4, 4)``, ``blur (3,)``, scalars), on the CPU; a transform the item does not
        get (``policy: one_of``) as its identity; stacked over items they feed
        :func:`~neurossl.data.augment_ops.apply_augment_params`.
    """
    chain.set_random_state(seed=int(seed) % (2**32))
    spatial, bias, contrast, noise, flip, blur, select = chain.transforms
    spatial.randomize()
    bias.randomize(img_size=shape[1:])
    contrast.randomize()
    noise.randomize()
    flip.randomize(None)
    blur.randomize()
    select.randomize()
    kept = select.kept
    return {
        "theta": (affine_theta(spatial.matrix(), tuple(shape[1:])) if "affine" in kept
                  else torch.eye(3)),
        "flip": torch.tensor(bool(flip._do_transform and "flip" in kept)),
        "bias": (bias_table(bias._coeff, bias.degree) if bias._do_transform and "bias" in kept
                 else torch.zeros((bias.degree + 1,) * 3)),
        "gamma": torch.tensor(contrast.gamma_value if contrast._do_transform and "gamma" in kept
                              else 1.0),
        "blur": torch.tensor([blur.x, blur.y, blur.z] if "blur" in kept else [0.0] * 3,
                             dtype=torch.float32),
        "noise_std": torch.tensor(float(noise.std_value) if "noise" in kept else 0.0),
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
