"""Masking: exact ratios, complementary index sets, per-volume independence, V-JEPA boxes."""

import pytest
import torch

from neurossl.masks import (
    MultiBlockMaskGenerator3D,
    OfficialRandomMaskGenerator3D,
    RandomMaskGenerator3D,
    build_mask_generator,
    gather_tokens,
    indices_to_mask,
)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# -- helpers --------------------------------------------------------------------------------


def test_indices_to_mask_and_gather_tokens():
    idx = torch.tensor([[0, 3], [1, 2]])
    assert indices_to_mask(idx, 4).tolist() == [[True, False, False, True], [False, True, True, False]]
    x = torch.arange(2 * 4 * 3).reshape(2, 4, 3)
    picked = gather_tokens(x, idx)
    assert picked.shape == (2, 2, 3)
    assert torch.equal(picked[0], x[0, [0, 3]]) and torch.equal(picked[1], x[1, [1, 2]])


# -- the paper's random generator -----------------------------------------------------------


@pytest.mark.parametrize(
    "grid, masked",
    [((4, 5, 5), 75), ((2, 3, 3), 14), ((1, 2, 3), 5), ((20, 20, 20), 6000)],  # 4.5 -> 5: half up
)
def test_random_masks_exactly_the_rounded_ratio(grid, masked):
    n = grid[0] * grid[1] * grid[2]
    keep, mask = RandomMaskGenerator3D(grid, mask_ratio=0.75)(3, seeded())
    assert mask.shape == (3, masked) and keep.shape == (3, n - masked)
    assert keep.dtype == mask.dtype == torch.long


def test_random_keep_and_mask_partition_the_tokens_sorted():
    keep, mask = RandomMaskGenerator3D((4, 5, 5))(6, seeded())
    kept, masked = indices_to_mask(keep, 100), indices_to_mask(mask, 100)
    assert not (kept & masked).any()
    assert (kept | masked).all()
    assert torch.equal(keep, keep.sort(dim=1).values) and torch.equal(mask, mask.sort(dim=1).values)


def test_random_masks_are_independent_per_volume_and_uniform():
    keep, mask = RandomMaskGenerator3D((4, 5, 5))(4000, seeded())
    masked = indices_to_mask(mask, 100)
    assert len({tuple(row.tolist()) for row in mask}) == 4000  # no two volumes share a mask
    frequency = masked.float().mean(dim=0)  # each token masked in ~75 % of volumes
    assert (frequency - 0.75).abs().max() < 0.04
    # Independence across volumes: consecutive volumes agree on a token as often as chance.
    agreement = (masked[1:] == masked[:-1]).float().mean()
    assert abs(agreement - (0.75**2 + 0.25**2)) < 0.01


def test_random_masks_are_deterministic_for_a_seed():
    gen = RandomMaskGenerator3D((4, 5, 5))
    a, b, c = gen(4, seeded(7)), gen(4, seeded(7)), gen(4, seeded(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_random_rejects_ratios_that_leave_a_side_empty():
    with pytest.raises(ValueError, match="at least one token"):
        RandomMaskGenerator3D((1, 1, 2), mask_ratio=0.9)
    with pytest.raises(ValueError, match="at least one token"):
        RandomMaskGenerator3D((2, 2, 2), mask_ratio=0.0)


# -- V-JEPA multi-block ---------------------------------------------------------------------


def box_extent(volume):
    """Extent (t, h, w) of the bounding box of a (T, Hp, Wp) bool volume, and its voxel count."""
    coords = volume.nonzero()
    extent = (coords.max(dim=0).values - coords.min(dim=0).values + 1).tolist()
    return tuple(extent), int(volume.sum())


def test_multiblock_blocks_are_boxes_inside_the_grid():
    gen = MultiBlockMaskGenerator3D(
        (6, 8, 8), spatial_scale=(0.2, 0.4), depth_scale=(0.3, 0.7), num_blocks=3
    )
    for seed in range(5):
        masked, blocks, size = gen.sample_masked(4, seeded(seed))
        assert blocks.shape == (4, 3, 6, 8, 8)
        assert torch.equal(masked, blocks.any(dim=1))
        for block in blocks.flatten(0, 1):
            extent, count = box_extent(block)
            assert extent == size
            assert count == size[0] * size[1] * size[2]  # a full, contiguous box


def test_multiblock_ratio_within_the_configured_range():
    # One box: depth fraction in [0.25, 0.5] of 8 slices, in-plane area 20-30 % of 10 x 10.
    gen = MultiBlockMaskGenerator3D(
        (8, 10, 10), spatial_scale=(0.2, 0.3), depth_scale=(0.25, 0.5), num_blocks=1
    )
    fractions = []
    for seed in range(40):
        keep, mask = gen(2, seeded(seed))
        t, h, w = box_extent(indices_to_mask(mask, 800)[0].reshape(8, 10, 10))[0]
        assert 2 <= t <= 4
        assert 0.2 * 100 * 0.7 <= h * w <= 0.3 * 100 * 1.3  # aspect-ratio rounding tolerance
        fractions.append(mask.shape[1] / 800)
    assert 0.25 * 0.2 * 0.7 <= min(fractions) and max(fractions) <= 0.5 * 0.3 * 1.3
    assert max(fractions) > min(fractions)  # the size really is sampled


def test_multiblock_min_keep_respected_and_impossible_settings_named():
    gen = MultiBlockMaskGenerator3D((2, 4, 4), spatial_scale=(0.5, 0.5), num_blocks=4, min_keep=6)
    for seed in range(10):
        masked, _, _ = gen.sample_masked(8, seeded(seed))
        assert ((~masked).flatten(1).sum(dim=1) >= 6).all()
        keep, _ = gen(8, seeded(seed))
        assert keep.shape[1] >= 6
    full = MultiBlockMaskGenerator3D((2, 4, 4), spatial_scale=(1.0, 1.0), num_blocks=1, max_tries=3)
    with pytest.raises(RuntimeError, match="min_keep"):
        full(2, seeded())


def test_multiblock_batches_by_truncating_to_the_batch_minimum():
    gen = MultiBlockMaskGenerator3D((4, 6, 6), spatial_scale=(0.15, 0.15), num_blocks=4)
    masked, _, _ = gen.sample_masked(6, seeded(3))
    keep, mask = gen(6, seeded(3))  # same seed: the same masks before batching
    context = ~masked.flatten(1)
    assert keep.shape[1] == int(context.sum(dim=1).min())
    assert mask.shape[1] == int(masked.flatten(1).sum(dim=1).min())
    assert context.sum(dim=1).unique().numel() > 1  # the truncation is really exercised
    for row in range(6):
        ctx = context[row].nonzero().squeeze(1)
        tgt = (~context[row]).nonzero().squeeze(1)
        assert torch.equal(keep[row], ctx[: keep.shape[1]])  # V-JEPA keeps the lowest indices
        assert torch.equal(mask[row], tgt[: mask.shape[1]])
    assert not (indices_to_mask(keep, 144) & indices_to_mask(mask, 144)).any()


def test_multiblock_max_keep_and_depth_limit():
    gen = MultiBlockMaskGenerator3D((4, 6, 6), num_blocks=2, max_keep=10, max_depth_keep=0.5)
    keep, mask = gen(3, seeded())
    assert keep.shape[1] == 10
    masked, _, _ = gen.sample_masked(3, seeded(1))
    assert masked[:, 2:].all()  # context never spans beyond the first half of the depth tokens


def test_multiblock_is_deterministic_for_a_seed():
    gen = MultiBlockMaskGenerator3D((4, 6, 6))
    a, b = gen(3, seeded(5)), gen(3, seeded(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# -- the official release's sampling ---------------------------------------------------------
# src/masks/multiblock3d.py: "self.npred = int(npred * self.height * self.width * self.duration)"
# with npred (num_blocks) 0.75 and blocks of 1 x 1 x 1 token placed by
# "top = torch.randint(0, self.height - h + 1, (num_masks,))" (with replacement), and one mask
# for the batch: "collated_masks_enc *= batch_size".


def test_official_sampling_masks_about_one_minus_exp_of_minus_ratio():
    grid = (8, 8, 8)
    gen = OfficialRandomMaskGenerator3D(grid, mask_ratio=0.75)
    assert gen.num_blocks == int(0.75 * 512)
    fractions = torch.tensor([gen(1, seeded(s))[1].shape[1] / 512 for s in range(200)])
    expected = 1 - (1 - 1 / 512) ** int(0.75 * 512)  # 0.5283; 1 - e^-0.75 = 0.5276
    assert abs(float(fractions.mean()) - expected) < 0.005
    assert float(fractions.max()) < 0.6  # never the paper's 75 %


def test_official_sampling_shares_one_mask_across_the_batch_and_partitions_the_tokens():
    keep, masked = OfficialRandomMaskGenerator3D((4, 4, 4))(5, seeded(1))
    assert (keep == keep[0]).all() and (masked == masked[0]).all()
    assert sorted(torch.cat([keep[0], masked[0]]).tolist()) == list(range(64))
    assert torch.equal(masked[0], masked[0].sort().values)


def test_masking_sampling_is_chosen_by_config_and_validated():
    from neurossl.config import MaskConfig
    from neurossl.objectives.common import mask_generator_from_config

    assert isinstance(mask_generator_from_config(MaskConfig(sampling="official"), (2, 4, 4)),
                      OfficialRandomMaskGenerator3D)
    assert isinstance(mask_generator_from_config(MaskConfig(), (2, 4, 4)), RandomMaskGenerator3D)
    assert isinstance(mask_generator_from_config(MaskConfig(kind="multiblock"), (2, 4, 4)),
                      MultiBlockMaskGenerator3D)
    with pytest.raises(ValueError, match="'masking.sampling' must be one of paper, official; got 'offical'"):
        mask_generator_from_config(MaskConfig(sampling="offical"), (2, 4, 4))
    # a misspelt kind is refused, never taken for another generator
    with pytest.raises(ValueError, match="'masking.kind' must be one of random, multiblock; got 'multiblok'"):
        mask_generator_from_config(MaskConfig(kind="multiblok"), (2, 4, 4))


def test_random_masking_honours_the_ratio_and_multiblock_refuses_one():
    from neurossl.config import MaskConfig
    from neurossl.objectives.common import mask_generator_from_config

    keep, masked = mask_generator_from_config(MaskConfig(ratio=0.5), (2, 4, 4))(3, torch.Generator().manual_seed(0))
    assert keep.shape == masked.shape == (3, 16)
    with pytest.raises(ValueError, match=r"'masking.ratio' \(0.5\) applies to masking.kind=random only"):
        mask_generator_from_config(MaskConfig(kind="multiblock", ratio=0.5), (2, 4, 4))


def test_the_config_choices_of_masking_are_the_generators_registered():
    from neurossl.config import CHOICES
    from neurossl.objectives.common import MASKINGS, RANDOM_SAMPLINGS

    assert CHOICES["masking.kind"] == tuple(MASKINGS)
    assert CHOICES["masking.sampling"] == tuple(RANDOM_SAMPLINGS)


# -- factory --------------------------------------------------------------------------------


def test_build_mask_generator():
    assert isinstance(build_mask_generator("random", (2, 4, 4), mask_ratio=0.5), RandomMaskGenerator3D)
    multi = build_mask_generator("multiblock", (2, 4, 4), num_blocks=2, spatial_scale=(0.2, 0.3))
    assert isinstance(multi, MultiBlockMaskGenerator3D) and multi.num_blocks == 2
    with pytest.raises(ValueError, match="unknown mask kind"):
        build_mask_generator("tube", (2, 4, 4))
    with pytest.raises(ValueError, match="num_blocks"):
        build_mask_generator("random", (2, 4, 4), num_blocks=3)
