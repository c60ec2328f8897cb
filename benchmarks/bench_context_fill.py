"""How much of a masked tubelet the visible voxels beside it already give: a context-fill baseline.

The MAE learning check (``neurossl.analysis.learning``) asks for masked-voxel Pearson r >= 0.5.
Whether that bar is within reach of the demo's tubelets and mask ratio is a property of the
volumes, not of a model: this script fills every masked tubelet by normalised Gaussian
convolution of the visible voxels (``blur(x * visible) / blur(visible)``, no learning at all) and
scores it with the same masked-voxel r, on the validation volumes of ``bench_learning.py`` (the
``--val`` pretraining-pool scans with the smallest SHA-1 of their ``scan_uid``), for several
tubelet sizes, mask ratios and kernel widths. Masks come from the objective's own generator.

    python benchmarks/bench_context_fill.py --cache C --splits S --out context_fill.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import gaussian_filter

from neurossl.analysis.learning import pearson_r
from neurossl.config import load_config
from neurossl.data.cache import read_index
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.masks import RandomMaskGenerator3D, indices_to_mask
from neurossl.models import unpatchify
from neurossl.train.pretrain import pretraining_scans


def context_fill(volume: np.ndarray, visible: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised convolution: each voxel gets the Gaussian-weighted mean of the visible voxels.

    Args:
        volume: ``(D, H, W)`` intensities.
        visible: ``(D, H, W)`` bool, True where the voxel may be read.
        sigma: Gaussian width in voxels.
    Returns ``(D, H, W)``; visible voxels keep a blurred value too (only masked ones are scored).
    """
    weight = visible.astype(np.float64)
    num = gaussian_filter(volume.astype(np.float64) * weight, sigma)
    den = gaussian_filter(weight, sigma)
    return num / np.maximum(den, 1e-12)


def score(volumes: np.ndarray, size: int, ratio: float, sigma: float, seed: int = 0) -> float:
    """Masked-voxel r of the context fill over ``volumes`` ``(V, D, H, W)`` (D, H, W divisible
    by ``size``), one random mask of ``ratio`` per volume."""
    grid = tuple(s // size for s in volumes.shape[1:])
    masks = RandomMaskGenerator3D(grid, ratio)
    _, masked = masks(len(volumes), generator=torch.Generator().manual_seed(seed))
    is_masked = indices_to_mask(masked, int(np.prod(grid)))  # (V, N)
    # the tokens' voxels in the encoder's own tubelet order
    voxels = unpatchify(is_masked[..., None].expand(-1, -1, size ** 3), grid, size, size)[:, 0]
    preds, truths = [], []
    for x, vox in zip(volumes, voxels.numpy()):
        preds.append(context_fill(x, ~vox, sigma)[vox])
        truths.append(x[vox])
    return pearson_r(torch.from_numpy(np.concatenate(preds)), torch.from_numpy(np.concatenate(truths)))


def validation_volumes(cache: str, splits: str, n: int) -> np.ndarray:
    """The ``n`` validation volumes of ``bench_learning.py`` (the MAE's pretraining pool),
    ``(n, D, H, W)``. Run as a script, ``benchmarks/`` is on the import path."""
    from bench_learning import split_validation, stack

    cfg = load_config("demo", objective="mae")
    uids = pretraining_scans(splits, read_index(cache), cfg.train.datasets, cfg.train.scan_modalities)
    _, val = split_validation(uids, n)
    data = CachedVolumeDataset(cache, val, train=False, preprocess=cfg.preprocess,
                               augment=cfg.augment, seed=cfg.train.seed)
    return stack(data)["image"][:, 0].numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--splits", required=True)
    ap.add_argument("--val", type=int, default=16)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 4])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.75, 0.5])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--out")
    args = ap.parse_args()
    volumes = validation_volumes(args.cache, args.splits, args.val)
    rows = [{"tubelet": s, "mask_ratio": r, "sigma_vox": g, "n_volumes": len(volumes),
             "pearson_r": round(score(volumes, s, r, g), 4)}
            for s in args.sizes for r in args.ratios for g in args.sigmas]
    frame = pd.DataFrame(rows)
    print(frame.to_markdown(index=False))
    if args.out:
        frame.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
