"""Training augmentations: MONAI's randomisation, the batched arithmetic, and where it runs."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.transforms import Affine, AdjustContrast, Flip, GaussianSmooth, RandBiasField
from monai.transforms.utils import create_rotate, create_scale
from torch.utils.data import DataLoader

from neurossl.config import AugmentConfig, PreprocessConfig, load_config
from neurossl.data.augment import (
    SeededRandGaussianNoise,
    affine_theta,
    apply_augment,
    bias_table,
    build_augment,
    draw_augment,
)
from neurossl.data.augment_ops import (
    PARAM_NAMES,
    adjust_contrast,
    apply_augment_params,
    log_bias_field,
    resample_affine,
)
from neurossl.data.dataset import (
    CachedVolumeDataset,
    NiftiVolumeDataset,
    batch_to_device,
    item_seeds,
)
from neurossl.data.preprocess import zscore


def smooth(*shape: int, seed: int = 0) -> torch.Tensor:
    """A smooth random ``shape`` tensor (resampling differences show on smooth data only)."""
    noise = torch.rand(1, *shape, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.avg_pool3d(noise, 5, 1, 2)[0]


def test_augment_chain_keeps_shape_and_is_seeded():
    image = torch.randn(3, 8, 16, 16)
    chain = build_augment(AugmentConfig())
    out = apply_augment(image, chain, seed=7)
    assert out.shape == image.shape and type(out) is torch.Tensor and out.dtype == torch.float32
    assert torch.equal(out, apply_augment(image, build_augment(AugmentConfig()), seed=7))
    assert not torch.equal(out, apply_augment(image, chain, seed=8))


def test_affine_resampling_equals_monai():
    image = smooth(2, 20, 24, 28)  # non-cubic
    angles, scales = (0.1, -0.15, 0.07), (1.0, 0.93, 0.97)
    affine = Affine(rotate_params=angles, scale_params=scales, padding_mode="zeros", image_only=True)
    reference = affine(image)
    theta = affine_theta(create_rotate(3, angles) @ create_scale(3, scales), (20, 24, 28))
    out = resample_affine(image[None], theta[None])[0]
    assert torch.allclose(out, torch.as_tensor(reference), atol=1e-5)
    identity = affine_theta(np.eye(4), (20, 24, 28))
    assert torch.allclose(resample_affine(image[None], identity[None])[0], image, atol=1e-6)


def test_affine_resampling_is_per_volume_in_a_batch():
    images = torch.stack([smooth(1, 12, 14, 16, seed=s) for s in range(3)])
    thetas = torch.stack([affine_theta(create_rotate(3, (0.1 * s, 0.0, -0.05 * s)), (12, 14, 16))
                          for s in range(3)])
    batched = resample_affine(images, thetas)
    for i in range(3):
        assert torch.allclose(batched[i], resample_affine(images[i:i + 1], thetas[i:i + 1])[0], atol=1e-7)
    assert not torch.allclose(batched[1], batched[2], atol=1e-3)


@pytest.mark.parametrize("out_size", [None, (8, 10, 12)])
def test_affine_resampling_equals_affine_grid_with_translation_and_a_new_size(out_size):
    images = torch.stack([smooth(2, 12, 14, 16, seed=s) for s in range(2)])
    theta = torch.tensor([[[0.9, 0.1, 0.0, 0.05], [-0.1, 0.8, 0.05, 0.0], [0.0, 0.0, -1.0, -0.1]],
                          [[0.5, 0.0, 0.0, 0.3], [0.0, 0.6, 0.0, -0.2], [0.0, 0.0, 0.7, 0.1]]])
    size = out_size or (12, 14, 16)
    grid = torch.nn.functional.affine_grid(theta, [2, 2, *size], align_corners=False)
    reference = torch.nn.functional.grid_sample(images, grid, align_corners=False)
    out = resample_affine(images, theta, out_size)
    assert out.shape == (2, 2, *size) and torch.allclose(out, reference, atol=1e-5)


@pytest.mark.parametrize("shape", [(16, 16, 16), (9, 13, 21)])
def test_bias_field_equals_monai(shape):
    monai = RandBiasField(coeff_range=(-0.1, 0.1), prob=1.0)
    monai.set_random_state(5)
    image = torch.rand(1, *shape) + 0.5
    reference = torch.as_tensor(monai(image))
    assert np.ptp(monai._coeff) > 0.05  # a real polynomial, not a constant field
    field = log_bias_field(bias_table(monai._coeff, monai.degree)[None], shape)[0]
    assert torch.allclose(image * field.exp(), reference, rtol=1e-5)


def test_contrast_equals_monai_per_volume():
    images = torch.stack([smooth(2, 6, 7, 8, seed=1) * 3 - 1, smooth(2, 6, 7, 8, seed=2)])
    gamma = torch.tensor([0.9, 1.1])
    out = adjust_contrast(images, gamma)
    for i in range(2):
        reference = torch.as_tensor(AdjustContrast(float(gamma[i]))(images[i]))
        assert torch.allclose(out[i], reference, atol=1e-6)


def test_noise_is_seeded_with_the_requested_std():
    noise = SeededRandGaussianNoise(mean=0.0, std=0.5, prob=1.0, sample_std=False)
    image = torch.zeros(1, 32, 32, 32)
    noise.set_random_state(1)
    first = torch.as_tensor(noise(image))
    noise.set_random_state(1)
    assert torch.equal(first, torch.as_tensor(noise(image)))
    assert abs(first.std().item() - 0.5) < 0.01 and abs(first.mean().item()) < 0.01
    assert not torch.equal(first, torch.as_tensor(noise(image)))  # the next draw differs


def test_drawn_parameters_follow_the_config():
    cfg = AugmentConfig(rotation_deg=10.0, scale=(0.9, 1.0), aspect_ratio=(0.9, 1.1), gamma=0.1,
                        noise_std=0.01, bias_coeff=0.1)
    chain = build_augment(cfg)
    draws = [draw_augment(chain, seed, (1, 16, 16, 16)) for seed in range(200)]
    assert all(set(d) == set(PARAM_NAMES) for d in draws)
    det = torch.stack([torch.linalg.det(d["theta"].double()) for d in draws])
    # |det| of a rotation times grid scales (1, h, w) is h * w = s ~ U(0.9, 1.0)
    assert 0.9 - 1e-6 <= det.min() and det.max() <= 1.0 + 1e-6 and det.std() > 0.02
    gamma = torch.stack([d["gamma"] for d in draws])
    assert 0.9 <= gamma.min() and gamma.max() <= 1.1 and gamma.std() > 0.03
    std = torch.stack([d["noise_std"] for d in draws])
    assert 0 <= std.min() and std.max() <= 0.01
    bias = torch.stack([d["bias"] for d in draws])
    assert bias.abs().max() <= 0.1 and (bias != 0).sum(dim=(1, 2, 3)).eq(20).all()  # degree 3: 20 terms
    assert len({int(d["noise_seed"]) for d in draws}) == 200


OFFICIAL = AugmentConfig(affine_rule="per_axis", flip_prob=0.5, blur_sigma=(0.01, 0.02),
                         bias_coeff=0.0, policy="one_of")
EVERY_ONE = AugmentConfig(affine_rule="per_axis", flip_prob=1.0, blur_sigma=(0.5, 1.0))


@pytest.mark.parametrize("cfg", [AugmentConfig(), OFFICIAL, EVERY_ONE])
def test_a_batch_augments_as_its_items_do(cfg):
    chain = build_augment(cfg)
    images = torch.stack([smooth(2, 10, 12, 14, seed=s) for s in range(4)])
    params = [draw_augment(chain, seed, (2, 10, 12, 14)) for seed in (3, 4, 5, 6)]
    stacked = {name: torch.stack([p[name] for p in params]) for name in PARAM_NAMES}
    batched = apply_augment_params(images, stacked)
    for i, seed in enumerate((3, 4, 5, 6)):
        assert torch.allclose(batched[i], apply_augment(images[i], chain, seed), atol=1e-6)


def test_flip_and_blur_equal_monai():
    # official app/mae/transforms.py and app/vjepa/transforms.py, in their tio.OneOf pools:
    #   "tio.RandomFlip(axes=('LR',)): 0.3," and "tio.RandomBlur(std=self.random_blur): 0.2,"
    only = AugmentConfig(flip_prob=1.0, blur_sigma=(0.8, 1.2), policy="one_of",
                         spatial_weights=(0, 1, 0), intensity_weights=(0, 0, 0, 1, 0))
    image = smooth(2, 10, 12, 14)
    params = draw_augment(build_augment(only), 3, tuple(image.shape))
    sigma = params["blur"].tolist()
    assert bool(params["flip"]) and all(0.8 <= s <= 1.2 for s in sigma) and len(set(sigma)) == 3
    reference = GaussianSmooth(sigma)(Flip(spatial_axis=1)(image))
    out = apply_augment(image, build_augment(only), 3)
    assert torch.allclose(out, torch.as_tensor(reference), atol=1e-6)
    assert not torch.allclose(out, image, atol=1e-2)
    official_sigma = AugmentConfig(blur_sigma=(0.01, 0.02), bias_coeff=0.0, gamma=0.0,
                                   noise_std=0.0, rotation_deg=0.0, scale=(1, 1),
                                   aspect_ratio=(1, 1))
    assert torch.allclose(apply_augment(image, build_augment(official_sigma), 1), image, atol=1e-6)


def test_one_of_draws_one_spatial_and_one_intensity_transform_by_weight():
    # official app/mae/transforms.py (app/vjepa/transforms.py alike):
    #   "spatial_transform = tio.OneOf({"
    #     "tio.RandomAffine(scales=self.random_resize_aspect_ratio, degrees=self.rot_degree): 0.3,"
    #     "tio.RandomFlip(axes=('LR',)): 0.3,"
    #     "tio.Lambda(lambda x: x): 0.4,"
    #   "intensity_transform = tio.OneOf({"
    #     "tio.RandomGamma(log_gamma=(-self.intensity_gamma, self.intensity_gamma)): 0.2,"
    #     "tio.RandomNoise(mean=0.0, std=self.random_noise): 0.2,"
    #     "tio.RandomBlur(std=self.random_blur): 0.2,"
    #     "tio.Lambda(lambda x: x): 0.4,"
    #   no bias field: only "# tio.RandomBiasField(coefficients=self.random_bias)," (commented out)
    chain = build_augment(OFFICIAL)
    draws = [draw_augment(chain, seed, (1, 8, 8, 8)) for seed in range(400)]
    affine = torch.tensor([not torch.allclose(d["theta"], torch.eye(3)) for d in draws])
    flip = torch.stack([d["flip"] for d in draws])
    gamma = torch.tensor([float(d["gamma"]) != 1.0 for d in draws])
    noise = torch.stack([d["noise_std"] > 0 for d in draws])
    blur = torch.stack([d["blur"].gt(0).all() for d in draws])
    assert not (affine & flip).any() and 0.22 < affine.float().mean() < 0.38
    assert 0.09 < flip.float().mean() < 0.21  # chosen 0.3, then flipped with p 0.5
    assert (gamma.int() + noise.int() + blur.int()).max() <= 1
    for chosen in (gamma, noise, blur):
        assert 0.13 < chosen.float().mean() < 0.27
    assert all(not d["bias"].any() for d in draws)


def test_per_axis_affine_zooms_each_axis_by_its_own_factor():
    # official app/mae/transforms.py: "tio.RandomAffine(scales=self.random_resize_aspect_ratio,
    # degrees=self.rot_degree)" with "random_resize_aspect_ratio: [0.9, 1.1]" (configs/pretrain)
    cfg = AugmentConfig(affine_rule="per_axis", rotation_deg=0.0)
    chain = build_augment(cfg)
    scales = torch.stack([draw_augment(chain, s, (1, 8, 8, 8))["theta"].diagonal()
                          for s in range(200)])
    assert (scales >= 1 / 1.1 - 1e-6).all() and (scales <= 1 / 0.9 + 1e-6).all()
    assert (scales.std(dim=0) > 0.03).all()  # depth zoomed too, each axis on its own
    assert abs(float(torch.corrcoef(scales.T)[0, 1])) < 0.3
    area = torch.stack([draw_augment(build_augment(AugmentConfig(rotation_deg=0.0)), s,
                                     (1, 8, 8, 8))["theta"].diagonal() for s in range(20)])
    assert torch.all(area[:, 2] == 1.0)  # the area rule keeps depth (theta's z row)


def test_on_device_items_carry_parameters_and_augment_to_the_same_batch(smoke_data):
    cfg = load_config("smoke")
    cache = smoke_data / "cache"
    kwargs = dict(train=True, preprocess=cfg.preprocess, seed=11)
    in_loader = CachedVolumeDataset(cache, augment=AugmentConfig(), **kwargs)
    on_device = CachedVolumeDataset(cache, augment=AugmentConfig(on_device=True), **kwargs)
    plain = CachedVolumeDataset(cache, augment=None, **kwargs)
    for dataset in (in_loader, on_device, plain):
        dataset.set_epoch(2)
    item = on_device[0]
    assert set(item["augment"]) == set(PARAM_NAMES) and "augment" not in in_loader[0]
    assert torch.equal(item["image"], plain[0]["image"])  # not yet augmented

    batch = next(iter(DataLoader(on_device, batch_size=4)))
    moved = batch_to_device(batch, "cpu")
    expected = next(iter(DataLoader(in_loader, batch_size=4)))
    assert "augment" not in moved and moved["scan_uid"] == expected["scan_uid"]
    assert torch.allclose(moved["image"], expected["image"], atol=1e-6)
    assert not torch.allclose(moved["image"], batch["image"], atol=1e-3)
    evaluated = CachedVolumeDataset(cache, train=False, preprocess=cfg.preprocess,
                                    augment=AugmentConfig(on_device=True))
    assert "augment" not in evaluated[0]  # evaluation never augments


def test_official_intensity_zscores_after_augmenting_in_the_loader_and_on_the_device(tmp_path):
    # official src/datasets/mri_dataset.py, __getitem__:
    #   "padded_volume = self.transform(padded_volume)" then
    #   "volume = self.intensity_normalize(padded_volume)"
    data = np.zeros((18, 20, 16), np.float32)
    data[3:15, 4:16, 3:13] = np.random.default_rng(1).gamma(4.0, 50.0, (12, 12, 10))
    for name, array in (("a", data), ("a_mask", (data > 0).astype(np.uint8))):
        nib.save(nib.Nifti1Image(array, np.eye(4)), str(tmp_path / f"{name}.nii.gz"))
    entries = pd.DataFrame({"scan_uid": ["a", "b"], "path": ["a.nii.gz"] * 2})
    cfg = PreprocessConfig(crop_size=12, depth=10, intensity="official")

    def dataset(augment):
        items = NiftiVolumeDataset(entries, tmp_path, True, cfg, augment=augment, seed=2)
        items.set_epoch(1)
        return items

    in_loader, on_device = dataset(AugmentConfig()), dataset(AugmentConfig(on_device=True))
    expected = next(iter(DataLoader(in_loader, batch_size=2)))["image"]
    deferred = next(iter(DataLoader(on_device, batch_size=2)))
    assert bool(deferred["augment"]["zscore"].all())
    assert torch.allclose(batch_to_device(deferred, "cpu")["image"], expected, atol=1e-5)
    assert expected.mean(dim=(2, 3, 4)).abs().max() < 1e-5
    assert torch.allclose(expected.std(dim=(2, 3, 4)), torch.ones(2, 1), atol=1e-4)
    raw = deferred["image"][0]  # clipped and resized, in the scanner's units
    assert raw.std() > 10
    chain, (_, seed) = build_augment(AugmentConfig()), item_seeds(2, 1, 0)
    assert torch.allclose(expected[0], zscore(apply_augment(raw, chain, seed)), atol=1e-5)
    # z-scoring first, as the brain rule's cache does, gives another volume
    assert not torch.allclose(expected[0], apply_augment(zscore(raw), chain, seed), atol=1e-2)
    plain = dataset(None)[0]["image"]
    assert abs(plain.mean()) < 1e-5 and abs(plain.std() - 1) < 1e-4  # no augmentation: z-scored


def test_the_paper_profile_augments_on_the_device_and_the_others_in_the_loader():
    assert load_config("paper").augment.on_device
    assert not load_config("demo").augment.on_device and not load_config("smoke").augment.on_device
