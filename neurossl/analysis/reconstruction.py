"""What an MAE / SL-MAE run reconstructs: input, mask, decoder output and mosaic of one volume.

A pretraining run folder holds the resolved ``config.yaml`` and ``checkpoints/last.pt`` with the
state of the whole objective (encoder *and* decoder), so the decoder that the exported encoder
leaves behind can be rebuilt. :func:`reconstruct` draws one of the run's own masks (its
masking settings, a seeded generator) and returns numpy volumes ready for slice figures and
:func:`neurossl.analysis.spectrum.reconstruction_spectra`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neurossl.analysis.runs import load_run_objective, run_config
from neurossl.config import PreprocessConfig
from neurossl.masks import indices_to_mask
from neurossl.models import patchify, unpatchify
from neurossl.objectives.mae import MAE

RECONSTRUCTING = ("mae", "slmae")


def load_mae(run_dir: str | Path, input_shape: tuple[int, int, int, int]) -> MAE:
    """The MAE / SL-MAE objective of ``run_dir`` with its last checkpoint's weights, in eval mode.

    Args:
        run_dir: pretraining run folder (``config.yaml``, ``checkpoints/last.pt``).
        input_shape: ``(C, D, H, W)`` of the volumes the run was trained on.

    Raises:
        FileNotFoundError: no ``config.yaml`` or no ``checkpoints/last.pt`` in ``run_dir``.
        ValueError: the run's objective does not reconstruct voxels (not mae / slmae).
    """
    cfg = run_config(run_dir)
    if cfg.objective.name not in RECONSTRUCTING:
        raise ValueError(f"{run_dir}: objective '{cfg.objective.name}' has no pixel decoder; "
                         f"reconstructions need one of {', '.join(RECONSTRUCTING)}")
    return load_run_objective(run_dir, input_shape)[0]


@torch.no_grad()
def reconstruct(run_dir: str | Path, image: torch.Tensor, seed: int = 0) -> dict[str, np.ndarray]:
    """Mask one volume with the run's masking, reconstruct it, and return the pieces.

    Args:
        run_dir: an MAE or SL-MAE pretraining run folder.
        image: ``(C, D, H, W)`` volume, e.g. ``CachedVolumeDataset(..., train=False)[i]["image"]``.
        seed: seed of the mask draw (same seed, same mask for every run of the same grid).

    Returns:
        ``{"input", "mask", "reconstruction", "mosaic"}``, each ``(D, H, W)`` (first channel):
        the input; True at voxels of masked tubelets; the decoder's output for every tubelet;
        visible tubelets from the input and masked ones from the decoder.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (C, D, H, W), got shape {tuple(image.shape)}")
    objective = load_mae(run_dir, tuple(image.shape))
    student = objective.student
    images = image[None].float()
    keep, masked = objective.masks(1, generator=torch.Generator().manual_seed(seed))
    pred = objective.reconstruct(images, keep)
    shape = (student.grid_size, student.tubelet_size, student.patch_size)
    num_tokens = pred.shape[1]
    token_mask = indices_to_mask(masked, num_tokens)  # (1, N)
    voxel_mask = token_mask[..., None].expand(-1, -1, patchify(images, *shape[1:]).shape[-1])
    return {
        "input": image[0].float().numpy(),
        "mask": unpatchify(voxel_mask.float(), *shape)[0, 0].numpy() > 0.5,
        "reconstruction": unpatchify(pred, *shape)[0, 0].numpy(),
        "mosaic": objective.mosaic(images, pred, masked)[0, 0].numpy(),
    }


def example_reconstructions(runs: dict[str, Path], cache_dir: str | Path,
                            preprocess: PreprocessConfig, seed: int = 0) -> dict[str, dict]:
    """:func:`reconstruct` of the first cached T1w volume by every MAE-family run of ``runs``,
    under the same mask; each result also carries ``depth_axis`` (for RAS-ordered planes) and
    ``scan_uid``. Empty when ``runs`` holds no MAE-family run.
    """
    from neurossl.data.catalog import read_table
    from neurossl.data.dataset import CachedVolumeDataset
    from neurossl.plots.examples import depth_axis_of

    chosen = {name: run for name, run in runs.items() if name in RECONSTRUCTING}
    if not chosen:
        return {}
    index = read_table(Path(cache_dir) / "index.csv", sep=",")
    entry = index[(index["status"] == "ok") & (index["modality"] == "T1w")].iloc[0]
    image = CachedVolumeDataset(cache_dir, [entry["scan_uid"]], train=False, preprocess=preprocess)[0]["image"]
    extra = {"depth_axis": depth_axis_of(entry, preprocess), "scan_uid": entry["scan_uid"]}
    return {name: {**reconstruct(run, image, seed=seed), **extra} for name, run in chosen.items()}
