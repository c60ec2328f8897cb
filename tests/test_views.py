"""Tests of the random 3-D views (neurossl.objectives.views) on tiny volumes."""

import dataclasses

import pytest
import torch

from neurossl.objectives.base import StepInfo
from neurossl.config import ConfigError, ViewConfig
from neurossl.objectives.views import (apply_view, check_views, random_token_box, random_view,
                                       sample_view_params, token_box_indices)

IMG = (16, 32, 32)
# Geometry only: no rotation, no flips, no intensity change.
PLAIN = ViewConfig(crop_scale=(1.0, 1.0), flip_prob=(0.0, 0.0, 0.0), rotation_deg=0.0,
                   jitter_prob=0.0, noise_std=0.0)


def info(seed=0, rank=0, world_size=1):
    return StepInfo(step=0, epoch=0.0, total_steps=10, generator=torch.Generator().manual_seed(seed),
                    rank=rank, world_size=world_size)


def volumes(batch=4, channels=1, seed=0):
    return torch.randn(batch, channels, *IMG, generator=torch.Generator().manual_seed(seed))


def test_views_are_deterministic_for_a_seed_and_differ_across_volumes_and_seeds():
    same = volumes(1).expand(4, -1, -1, -1, -1).contiguous()  # four copies of one volume
    a = random_view(same, ViewConfig(), info(seed=3), IMG)
    b = random_view(same, ViewConfig(), info(seed=3), IMG)
    c = random_view(same, ViewConfig(), info(seed=4), IMG)
    assert a.shape == (4, 1, *IMG) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(a[i], a[j]), f"volumes {i} and {j} got the same view"


@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_gets_rows_r_of_the_global_batch_view(world_size):
    """Views drawn for B * W volumes then sliced: rank r's view equals rows r::W of the global one."""
    spec = ViewConfig()
    images = volumes(2 * world_size, channels=3)
    whole = random_view(images, spec, info(seed=7), IMG)
    for rank in range(world_size):
        mine = random_view(images[rank::world_size], spec, info(7, rank, world_size), IMG)
        torch.testing.assert_close(mine, whole[rank::world_size], rtol=0, atol=1e-6)


def test_flip_view_equals_torch_flip():
    images = volumes(2)
    for axis in range(3):
        probs = tuple(1.0 if a == axis else 0.0 for a in range(3))
        view = random_view(images, dataclasses.replace(PLAIN, flip_prob=probs), info(), IMG)
        torch.testing.assert_close(view, torch.flip(images, dims=(2 + axis,)), atol=1e-5, rtol=0)
    view = random_view(images, PLAIN, info(), IMG)  # no flip: the identity
    torch.testing.assert_close(view, images, atol=1e-5, rtol=0)


def test_random_resized_crop_is_an_axis_aligned_sub_box_resampled():
    """On a ramp along one axis, trilinear resampling is exact: the view is the ramp over a box."""
    in_size, out = (32, 64, 64), IMG
    spec = dataclasses.replace(PLAIN, crop_scale=(0.5, 1.0))  # box >= out size: no padding reached
    for axis in range(3):
        coords = torch.arange(in_size[axis], dtype=torch.float32)
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = -1
        ramp = coords.view(shape).expand(3, 1, *in_size).contiguous()
        params = sample_view_params(spec, 3, in_size, torch.Generator().manual_seed(axis))
        view = apply_view(ramp, params, out)
        profile = view.movedim(2 + axis, -1).reshape(3, -1, out[axis])
        assert torch.allclose(profile, profile[:, :1], atol=1e-4), "ramp must be constant off-axis"
        steps = profile[:, 0].diff(dim=-1)
        scale = params.theta[:, 2 - axis, 2 - axis]  # the kept fraction of this axis
        expected = scale * in_size[axis] / out[axis]
        torch.testing.assert_close(steps, expected[:, None].expand_as(steps), atol=1e-4, rtol=1e-4)
        assert profile.min() >= -1e-4 and profile.max() <= in_size[axis] - 1 + 1e-4
        assert not torch.allclose(profile[0, 0], profile[1, 0]), "crops must be placed at random"


def test_rotation_by_90_degrees_in_plane_is_rot90():
    params = sample_view_params(PLAIN, 2, IMG, torch.Generator().manual_seed(0))
    params.theta[:, :, :3] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    images = volumes(2)
    view = apply_view(images, params, IMG)
    matches = [torch.allclose(view, torch.rot90(images, k, dims=(3, 4)), atol=1e-5) for k in (1, -1)]
    assert any(matches)


def test_sampled_rotation_is_rigid_in_voxel_units():
    """Rotations act on voxels, so on a non-cubic grid the normalised affine is not orthogonal but
    diag(n) A diag(1/n) is (up to the crop scales, 1 here)."""
    spec = dataclasses.replace(PLAIN, rotation_deg=30.0)
    params = sample_view_params(spec, 4, IMG, torch.Generator().manual_seed(1))
    n = torch.tensor(IMG[::-1], dtype=torch.float32)
    voxel = params.theta[:, :, :3] * n.view(1, 3, 1) / n.view(1, 1, 3)
    eye = torch.eye(3).expand(4, 3, 3)
    torch.testing.assert_close(voxel @ voxel.transpose(1, 2), eye, atol=1e-5, rtol=0)
    assert not torch.allclose(voxel, eye, atol=1e-3)


def test_intensity_jitter_and_noise_change_values_per_channel_scale():
    ct = torch.rand(2, 3, *IMG, generator=torch.Generator().manual_seed(0))  # CT windows in [0, 1]
    jitter = dataclasses.replace(PLAIN, jitter_prob=1.0)
    noisy = dataclasses.replace(PLAIN, noise_std=0.5)
    a = random_view(ct, jitter, info(), IMG)
    b = random_view(ct, noisy, info(), IMG)
    assert a.shape == b.shape == ct.shape
    assert not torch.allclose(a, ct, atol=1e-3) and not torch.allclose(b, ct, atol=1e-3)
    # noise is in units of each channel's std, so a channel scaled by 10 gets 10x the noise
    scaled = ct * torch.tensor([1.0, 10.0, 1.0]).view(1, 3, 1, 1, 1)
    residual = random_view(scaled, noisy, info(), IMG) - scaled
    ratio = residual[:, 1].std() / residual[:, 0].std()
    assert 5.0 < ratio < 20.0


def test_intensity_jitter_leaves_the_zero_background_alone():
    """Gamma, contrast and brightness act on the foreground (non-zero voxels) only, with the
    foreground's own statistics: a skull-stripped volume keeps its 0 background, as a real scan
    would. Brightness alone is a known value: a shift of ``brightness * std(foreground)``."""
    images = volumes(2).abs() + 1.0
    images[:, :, :, :8] = 0.0  # a background slab
    shift_only = dataclasses.replace(PLAIN, jitter_prob=1.0, gamma=(1.0, 1.0), contrast=0.0)
    params = sample_view_params(shift_only, 2, IMG, torch.Generator().manual_seed(2))
    shift = apply_view(images, params, IMG) - images
    for i in range(2):
        fg = images[i] != 0
        assert torch.equal(shift[i][~fg], torch.zeros_like(shift[i][~fg]))
        expected = params.brightness[i] * images[i][fg].std(correction=0)
        torch.testing.assert_close(shift[i][fg], expected.expand(int(fg.sum())), atol=1e-4, rtol=0)
    full = random_view(images, dataclasses.replace(PLAIN, jitter_prob=1.0), info(seed=2), IMG)
    assert torch.equal(full[:, :, :, :8], torch.zeros_like(full[:, :, :, :8]))
    assert not torch.allclose(full[:, :, :, 8:], images[:, :, :, 8:], atol=1e-3)


@pytest.mark.parametrize("field, value", [("crop_scale", (0.0, 1.0)), ("crop_scale", (0.8, 0.5)),
                                          ("flip_prob", (0.5, 0.5)), ("flip_prob", (0.5, 1.5, 0.5)),
                                          ("jitter_prob", 1.2), ("gamma", (0.0, 1.0)),
                                          ("rotation_deg", -1.0), ("noise_std", -0.1)])
def test_bad_view_settings_are_config_errors_naming_the_field(field, value):
    spec = dataclasses.replace(ViewConfig(), **{field: value})
    with pytest.raises(ConfigError, match=rf"'objective\.simclr_views\.{field}'"):
        check_views(spec, "objective.simclr_views")
    assert check_views(ViewConfig()) == ViewConfig()


def test_token_boxes_are_contiguous_boxes_sliced_per_rank():
    grid = (4, 6, 5)
    idx = token_box_indices(grid, (2, 3, 2), torch.tensor([[1, 2, 3], [0, 0, 0]]))
    flat = torch.zeros(2, 4 * 6 * 5, dtype=torch.bool)
    flat.scatter_(1, idx, True)
    box = flat.view(2, *grid)
    assert box[0, 1:3, 2:5, 3:5].all() and box[0].sum() == 12
    assert box[1, 0:2, 0:3, 0:2].all() and box[1].sum() == 12
    assert torch.equal(idx, idx.sort(dim=1).values)

    whole = random_token_box(grid, (0.4, 0.6), 6, info(seed=5))
    assert whole.shape[0] == 6 and whole.max() < 4 * 6 * 5
    for rank in range(2):
        mine = random_token_box(grid, (0.4, 0.6), 3, info(5, rank, 2))
        assert torch.equal(mine, whole[rank::2])
