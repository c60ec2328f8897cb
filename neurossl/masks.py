"""Token masking for 3-D volumes: which tokens the encoder sees and which it must predict.

A volume of ``(D, H, W)`` voxels cut into tubelets gives a token grid ``(T, Hp, Wp)`` (depth
tokens, in-plane tokens); token ``(t, h, w)`` has the flat index ``t * Hp * Wp + h * Wp + w``,
the order in which the patch embedding flattens its output.

Two generators share one call signature::

    keep_idx, mask_idx = generator(batch_size, torch.Generator().manual_seed(0))
    # keep_idx: (B, K) long, sorted -- the context (visible) tokens
    # mask_idx: (B, M) long, sorted -- the tokens to reconstruct / predict

- :class:`RandomMaskGenerator3D`, the paper's setting. The paper uses V-JEPA's multi-block
  generator with blocks of a single token placed at random until 75 % of the tokens are masked;
  that is exactly a uniformly random subset of ``round(0.75 N)`` tokens, drawn here MAE-style by
  an argsort of uniform noise (one sort per batch, no loop over tokens).
- :class:`OfficialRandomMaskGenerator3D`, what the official release's generator really does with
  the paper's settings (``src/masks/multiblock3d.py``): ``int(0.75 N)`` single-token blocks
  placed WITH replacement, so overlaps leave about ``1 - e^-0.75`` = 53 % of the tokens masked,
  and one mask shared by every volume of the batch.
- :class:`MultiBlockMaskGenerator3D`, V-JEPA's general multi-block generator: several random
  boxes are masked, the context is their complement.

Apart from the official sampling, masks are sampled independently for every volume; ``K`` and
``M`` are the same for every volume of a batch so that the indices stack into one tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Grid = tuple[int, int, int]


def _check_grid(grid: Sequence[int]) -> Grid:
    grid = tuple(int(g) for g in grid)
    if len(grid) != 3 or min(grid) < 1:
        raise ValueError(f"token grid must be three positive sizes (T, Hp, Wp), got {grid}")
    return grid  # type: ignore[return-value]


def _check_range(name: str, bounds: Sequence[float], low: float, high: float) -> tuple[float, float]:
    lo, hi = (float(b) for b in bounds)
    if not (low <= lo <= hi <= high):
        raise ValueError(f"{name} must satisfy {low} <= lo <= hi <= {high}, got ({lo}, {hi})")
    return lo, hi


def _sorted_split(
    is_keep: torch.Tensor, num_keep: int, num_mask: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices of the first ``num_keep`` kept and first ``num_mask`` masked tokens per row.

    ``is_keep`` is ``(B, N)`` bool. A stable sort on the key ``(not kept, index)`` lists every row's
    kept tokens in ascending order, then its masked ones, with no loop over rows or tokens.
    """
    n = is_keep.shape[1]
    position = torch.arange(n, device=is_keep.device)
    order = torch.argsort((~is_keep).long() * n + position, dim=1)
    num_kept_per_row = is_keep.sum(dim=1, keepdim=True)
    keep_idx = order[:, :num_keep]
    # Each row's masked tokens start right after its kept ones; gather them from that offset.
    offsets = num_kept_per_row + torch.arange(num_mask, device=is_keep.device)
    mask_idx = torch.gather(order, 1, offsets)
    return keep_idx, mask_idx


def indices_to_mask(idx: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Boolean mask from token indices.

    Args:
        idx: ``(B, K)`` long token indices.
        num_tokens: ``N``, the number of tokens in the grid.

    Returns:
        ``(B, N)`` bool, True at the listed indices.
    """
    mask = torch.zeros(idx.shape[0], num_tokens, dtype=torch.bool, device=idx.device)
    return mask.scatter_(1, idx, True)


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Select tokens by index: ``x (B, N, C)``, ``idx (B, K)`` -> ``(B, K, C)``."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class RandomMaskGenerator3D:
    """Mask a uniformly random ``round(mask_ratio * N)`` tokens of every volume (the paper).

    Args:
        grid: token grid ``(T, Hp, Wp)``.
        mask_ratio: fraction of tokens masked (paper 0.75); rounded half up to a token count,
            which must leave at least one token on each side.
    """

    def __init__(self, grid: Sequence[int], mask_ratio: float = 0.75):
        self.grid = _check_grid(grid)
        self.num_tokens = math.prod(self.grid)
        self.num_masked = int(math.floor(mask_ratio * self.num_tokens + 0.5))
        if not 0 < self.num_masked < self.num_tokens:
            raise ValueError(
                f"mask_ratio={mask_ratio} masks {self.num_masked} of {self.num_tokens} tokens; "
                "at least one token must be masked and one kept"
            )
        self.mask_ratio = mask_ratio

    def __call__(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample masks for ``batch_size`` volumes.

        Returns:
            ``keep_idx (B, N - M)`` and ``mask_idx (B, M)``, long, each row sorted ascending;
            together they list every token exactly once.
        """
        noise = torch.rand(batch_size, self.num_tokens, generator=generator)
        order = torch.argsort(noise, dim=1)
        num_keep = self.num_tokens - self.num_masked
        keep_idx = order[:, :num_keep].sort(dim=1).values
        mask_idx = order[:, num_keep:].sort(dim=1).values
        return keep_idx.to(device), mask_idx.to(device)


class OfficialRandomMaskGenerator3D:
    """The official release's single-token masking: ``int(mask_ratio * N)`` tokens drawn uniformly
    WITH replacement and masked (duplicates collapse), one mask for the whole batch.

    The expected masked fraction is ``1 - (1 - 1/N)^int(mask_ratio N)``, about
    ``1 - exp(-mask_ratio)``: 53 % for ``mask_ratio = 0.75``. The official generator redraws a
    mask that leaves no context token; so does this one.

    Args:
        grid: token grid ``(T, Hp, Wp)``.
        mask_ratio: number of single-token blocks as a fraction of ``N`` (official ``num_blocks``
            0.75).
    """

    def __init__(self, grid: Sequence[int], mask_ratio: float = 0.75, max_tries: int = 50):
        self.grid = _check_grid(grid)
        self.num_tokens = math.prod(self.grid)
        self.num_blocks = int(mask_ratio * self.num_tokens)
        if self.num_blocks < 1:
            raise ValueError(f"mask_ratio={mask_ratio} places no block in {self.num_tokens} tokens")
        self.mask_ratio = mask_ratio
        self.max_tries = max_tries

    def __call__(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask, repeated for ``batch_size`` volumes.

        Returns:
            ``keep_idx (B, K)`` and ``mask_idx (B, M)``, long, rows sorted and identical.
        """
        for _ in range(self.max_tries):
            positions = torch.randint(0, self.num_tokens, (self.num_blocks,), generator=generator)
            masked = torch.zeros(self.num_tokens, dtype=torch.bool)
            masked[positions] = True
            if not masked.all():
                break
        else:
            raise RuntimeError(f"{self.num_blocks} blocks covered all {self.num_tokens} tokens "
                               f"in {self.max_tries} draws; lower mask_ratio")
        keep_idx = torch.nonzero(~masked).squeeze(1).expand(batch_size, -1)
        mask_idx = torch.nonzero(masked).squeeze(1).expand(batch_size, -1)
        return keep_idx.contiguous().to(device), mask_idx.contiguous().to(device)


class MultiBlockMaskGenerator3D:
    """V-JEPA's 3-D multi-block masking: ``num_blocks`` random boxes masked, context = the rest.

    For each call one box size ``(t, h, w)`` is drawn (shared by the batch, as in V-JEPA):
    ``t = max(1, int(T * s_t))`` with ``s_t ~ U(depth_scale)``; an in-plane area
    ``a = int(Hp * Wp * s)`` with ``s ~ U(spatial_scale)`` shaped by an aspect ratio
    ``r ~ U(aspect_ratio)`` into ``h = round(sqrt(a r))``, ``w = round(sqrt(a / r))`` (clipped to
    the grid, at least 1). Each volume then places its ``num_blocks`` boxes independently and
    uniformly inside the grid; overlapping boxes simply overlap. A volume whose context has fewer
    than ``min_keep`` tokens is redrawn (V-JEPA redraws empty contexts).

    Batching: the union of overlapping boxes differs in size between volumes, so, as V-JEPA's
    collator does, each volume's sorted index lists are truncated to the batch minimum. The
    truncation keeps the lowest indices, so a truncated token is neither context nor target for
    that step. ``max_keep`` caps the context length further.

    Args:
        grid: token grid ``(T, Hp, Wp)``.
        spatial_scale: range of the in-plane fraction of one box.
        aspect_ratio: range of the box's ``h / w``.
        depth_scale: range of the depth (temporal) fraction of one box.
        num_blocks: boxes per volume.
        max_keep: upper bound on the context length, or None.
        max_depth_keep: fraction of depth tokens the context may span (V-JEPA's
            ``max_temporal_keep``); tokens beyond it are always targets.
        min_keep: fewest context tokens accepted before batching.
        max_tries: redraws allowed before a configuration is declared impossible.
    """

    def __init__(
        self,
        grid: Sequence[int],
        spatial_scale: Sequence[float] = (0.15, 0.15),
        aspect_ratio: Sequence[float] = (0.75, 1.5),
        depth_scale: Sequence[float] = (1.0, 1.0),
        num_blocks: int = 8,
        max_keep: int | None = None,
        max_depth_keep: float = 1.0,
        min_keep: int = 1,
        max_tries: int = 50,
    ):
        self.grid = _check_grid(grid)
        self.num_tokens = math.prod(self.grid)
        self.spatial_scale = _check_range("spatial_scale", spatial_scale, 0.0, 1.0)
        self.aspect_ratio = _check_range("aspect_ratio", aspect_ratio, 1e-6, math.inf)
        self.depth_scale = _check_range("depth_scale", depth_scale, 0.0, 1.0)
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        if not 0.0 < max_depth_keep <= 1.0:
            raise ValueError(f"max_depth_keep must be in (0, 1], got {max_depth_keep}")
        if not 1 <= min_keep < self.num_tokens:
            raise ValueError(f"min_keep must be in [1, {self.num_tokens}), got {min_keep}")
        self.num_blocks = num_blocks
        self.max_keep = max_keep
        self.max_context_depth = max(1, int(self.grid[0] * max_depth_keep))
        self.min_keep = min_keep
        self.max_tries = max_tries

    def sample_block_size(self, generator: torch.Generator | None = None) -> Grid:
        """One box size ``(t, h, w)`` in tokens."""
        T, Hp, Wp = self.grid
        u_t, u_s, u_r = torch.rand(3, generator=generator).tolist()
        s_t = self.depth_scale[0] + u_t * (self.depth_scale[1] - self.depth_scale[0])
        s = self.spatial_scale[0] + u_s * (self.spatial_scale[1] - self.spatial_scale[0])
        r = self.aspect_ratio[0] + u_r * (self.aspect_ratio[1] - self.aspect_ratio[0])
        t = max(1, int(T * s_t))
        area = int(Hp * Wp * s)
        h = min(max(1, round(math.sqrt(area * r))), Hp)
        w = min(max(1, round(math.sqrt(area / r))), Wp)
        return t, h, w

    def _place_blocks(
        self, batch_size: int, size: Grid, generator: torch.Generator | None
    ) -> torch.Tensor:
        """``(B, num_blocks, T, Hp, Wp)`` bool, one box of ``size`` per (volume, block)."""
        axes = []
        for extent, length in zip(size, self.grid):
            shape = (batch_size, self.num_blocks, 1)
            start = torch.randint(0, length - extent + 1, shape, generator=generator)
            position = torch.arange(length)
            axes.append((position >= start) & (position < start + extent))  # (B, nb, length)
        in_t, in_h, in_w = axes
        return in_t[..., :, None, None] & in_h[..., None, :, None] & in_w[..., None, None, :]

    def sample_masked(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Grid]:
        """Sample before batching.

        Returns:
            ``masked (B, T, Hp, Wp)`` bool (True = target), ``blocks (B, num_blocks, T, Hp, Wp)``
            bool (each box), and the box size ``(t, h, w)``.
        """
        size = self.sample_block_size(generator)
        blocks = self._place_blocks(batch_size, size, generator)
        for _ in range(self.max_tries):
            masked = blocks.any(dim=1)
            masked[:, self.max_context_depth :] = True
            short = (~masked).flatten(1).sum(dim=1) < self.min_keep
            if not short.any():
                return masked, blocks, size
            blocks[short] = self._place_blocks(int(short.sum()), size, generator)
        raise RuntimeError(
            f"{self.num_blocks} blocks of size {size} in grid {self.grid} left fewer than "
            f"min_keep={self.min_keep} context tokens after {self.max_tries} draws; "
            "lower num_blocks or spatial_scale / depth_scale"
        )

    def __call__(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample masks for ``batch_size`` volumes.

        Returns:
            ``keep_idx (B, K)`` and ``mask_idx (B, M)``, long, rows sorted ascending, ``K`` and
            ``M`` the batch minima of the per-volume counts (``K`` also capped by ``max_keep``).
        """
        masked, _, _ = self.sample_masked(batch_size, generator)
        is_keep = ~masked.flatten(1)
        counts = is_keep.sum(dim=1)
        num_keep = int(counts.min())
        if self.max_keep is not None:
            num_keep = min(num_keep, self.max_keep)
        num_mask = int((self.num_tokens - counts).min())
        keep_idx, mask_idx = _sorted_split(is_keep, num_keep, num_mask)
        return keep_idx.to(device), mask_idx.to(device)


MaskGenerator = RandomMaskGenerator3D | OfficialRandomMaskGenerator3D | MultiBlockMaskGenerator3D
GENERATORS = {"random": RandomMaskGenerator3D, "official_random": OfficialRandomMaskGenerator3D,
              "multiblock": MultiBlockMaskGenerator3D}


def build_mask_generator(kind: str, grid: Sequence[int], **cfg) -> MaskGenerator:
    """Mask generator by name: ``"random"`` (the paper's text), ``"official_random"`` (the
    official release) or ``"multiblock"`` (V-JEPA).

    ``cfg`` holds the chosen generator's keyword arguments; an argument the generator does not
    take is an error naming it.
    """
    if kind not in GENERATORS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {sorted(GENERATORS)}")
    try:
        return GENERATORS[kind](grid, **cfg)
    except TypeError as err:
        raise ValueError(f"bad settings for the {kind!r} mask generator: {err}") from None
