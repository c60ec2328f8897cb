"""Notebook 05's analyses: spectral energy of the cached volumes per dataset and contrast, and
MAE against SL-MAE reconstructions of the same volumes.

Spectra are of the preprocessed model inputs (evaluation-mode items: fixed slice axis, centre
crop, no augmentation) cropped to the brain (non-zero voxels); the first channel of a CT (its
brain window) is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neurossl.analysis.reconstruction import reconstruct
from neurossl.analysis.runs import run_config
from neurossl.analysis.spectrum import (crop_to_mask, high_frequency_energy, reconstruction_spectra, spectral_table,
                                       windowed_high_share)
from neurossl.data.cache import read_index
from neurossl.models import patchify
from neurossl.splits.files import read_splits

SCAN_COLUMNS = ["scan_uid", "subject_id", "dataset", "modality", "label"]
PAIR = {"MAE": "mae", "SL-MAE": "slmae"}  # figure label -> objective


def split_scans(cache_dir: str | Path, splits_dir: str | Path) -> pd.DataFrame:
    """Every cached scan of the split folder, pretraining and downstream partitions alike, with
    ``downstream`` marking the latter; sorted by dataset and scan."""
    splits = read_splits(splits_dir)
    index = read_index(cache_dir)
    scans = index[(index["status"] == "ok") & index["scan_uid"].isin(splits["scan_uid"])]
    scans = scans[SCAN_COLUMNS].astype(str).sort_values(["dataset", "scan_uid"]).reset_index(drop=True)
    downstream = set(splits.loc[splits["partition"] != "pretrain", "scan_uid"])
    return scans.assign(downstream=scans["scan_uid"].isin(downstream))


def brain(volume: np.ndarray) -> np.ndarray:
    """``(D, H, W)`` cropped to the bounding box of its non-zero (brain) voxels."""
    return crop_to_mask(volume, volume != 0)


def _brains(items) -> Iterator[tuple[str, str, np.ndarray]]:
    for item in items:
        yield item["scan_uid"], item["dataset"], brain(item["image"][0].numpy())


def volume_spectra(items, scans: pd.DataFrame, cutoff: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """High-frequency energy (with ``modality``) and radial profile of every item's brain.

    Args:
        items: evaluation-mode dataset items (``scan_uid``, ``dataset``, ``image``) of ``scans``.
        scans: :func:`split_scans`.
    """
    energy, profiles = spectral_table(_brains(items), cutoff=cutoff)
    modality = scans.rename(columns={"scan_uid": "id"})[["id", "modality"]]
    return energy.merge(modality, on="id"), profiles


def hf_energy_tables(energy: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``tab05_hf_energy`` (per dataset) and ``tab05_hf_energy_by_contrast``: n, mean, median
    and standard deviation of the high-frequency energy."""
    def summary(by: list[str]) -> pd.DataFrame:
        stats = energy.groupby(by)["hf_energy"].agg(n="size", mean="mean", median="median", std="std")
        return stats.round(4)

    return {"tab05_hf_energy": summary(["dataset"]),
            "tab05_hf_energy_by_contrast": summary(["dataset", "modality"]).reset_index(level="modality")}


@dataclass(frozen=True)
class ReconstructionComparison:
    """MAE and SL-MAE mosaics of the same volumes under the same mask.

    Attributes:
        spectra: geometric mean over volumes of each model's power and power ratio to the target
            (``model, frequency, power, ratio``).
        hf: per volume (index ``dataset``): ``id``, the high-frequency energy of the target and of
            each mosaic (``target, MAE, SL-MAE``), and its mean inside the masked tubelets of the
            target and of each reconstruction (``*_tubelets``, :func:`tubelet_hf`).
        examples: dataset -> ``(scan_uid, target, mask, {label: mosaic})`` of its first volume.
        volumes: how many volumes were compared.
    """

    spectra: pd.DataFrame
    hf: pd.DataFrame
    examples: dict[str, tuple]
    volumes: int


def tubelet_hf(target: np.ndarray, mask: np.ndarray, recons: Mapping[str, np.ndarray],
               tubelet_size: int, patch_size: int, cutoff: float, min_brain: float = 0.5) -> dict[str, float]:
    """Mean :func:`~neurossl.analysis.spectrum.windowed_high_share` over the masked tubelets,
    of the target and of each reconstruction, inside each tubelet only (no seam counts).

    Args:
        target: ``(D, H, W)`` input; its non-zero voxels are the brain.
        mask: ``(D, H, W)`` True at the voxels of masked tubelets.
        recons: label -> ``(D, H, W)`` decoder output.
        tubelet_size, patch_size: the tubelets' depth and in-plane size in voxels.
        min_brain: tubelets with a smaller share of brain voxels are left out (mostly background).

    Returns:
        ``{"target_tubelets": .., "<label>_tubelets": ..}``; NaN when no tubelet qualifies.
    """
    def tubelets(volume: np.ndarray) -> np.ndarray:  # (N, t, p, p), the encoder's tokens
        x = torch.as_tensor(np.ascontiguousarray(volume))[None, None]
        return patchify(x, tubelet_size, patch_size)[0].reshape(-1, tubelet_size, patch_size, patch_size).numpy()

    truth = tubelets(target)
    scored = tubelets(mask).all(axis=(1, 2, 3)) & ((truth != 0).mean(axis=(1, 2, 3)) >= min_brain)
    return {f"{name}_tubelets": float(np.mean([windowed_high_share(b, cutoff) for b in blocks[scored]]))
            if scored.any() else float("nan")
            for name, blocks in {"target": truth, **{k: tubelets(v) for k, v in recons.items()}}.items()}


def _compare_one(runs: Mapping[str, Path], image, cutoff: float) -> tuple[pd.DataFrame, dict, tuple]:
    out = {label: reconstruct(runs[name], image, seed=0) for label, name in PAIR.items()}
    target, mask = out["MAE"]["input"], out["MAE"]["mask"]
    mosaics = {label: result["mosaic"] for label, result in out.items()}
    crop = {label: crop_to_mask(v, target != 0) for label, v in mosaics.items()}  # the brain box
    hf = {label: high_frequency_energy(v, cutoff) for label, v in {"target": brain(target), **crop}.items()}
    model = run_config(runs["mae"]).model
    recons = {label: r["reconstruction"] for label, r in out.items()}
    hf |= tubelet_hf(target, mask, recons, model.tubelet_size, model.patch_size, cutoff)
    return reconstruction_spectra(brain(target), crop), hf, (target, mask, mosaics)


def compare_reconstructions(runs: Mapping[str, Path], items, scans: pd.DataFrame, cutoff: float,
                            per_dataset: int = 4) -> ReconstructionComparison | None:
    """MAE vs SL-MAE on the first ``per_dataset`` downstream T1w volumes (by id) of each dataset,
    chosen before looking at any reconstruction; None unless ``runs`` holds both ``mae`` and
    ``slmae``.

    Args:
        runs: objective -> pretraining run folder.
        items: evaluation-mode dataset items in the row order of ``scans`` (:func:`split_scans`).
    """
    if not set(PAIR.values()) <= set(runs):
        return None
    chosen = scans[scans["downstream"] & (scans["modality"] == "T1w")].groupby("dataset").head(per_dataset)
    spectra, hf_rows, examples = [], [], {}
    for row, uid, dataset in zip(chosen.index, chosen["scan_uid"], chosen["dataset"]):
        spectrum, hf, example = _compare_one(runs, items[int(row)]["image"], cutoff)
        spectra.append(spectrum.assign(id=uid))
        hf_rows.append({"id": uid, "dataset": dataset, **hf})
        examples.setdefault(dataset, (uid, *example))
    spectra = pd.concat(spectra, ignore_index=True)
    logs = spectra.assign(power=np.log10(spectra["power"]), ratio=np.log10(spectra["ratio"]))
    mean = 10 ** logs.groupby(["model", "frequency"], sort=False)[["power", "ratio"]].mean()
    return ReconstructionComparison(mean.reset_index(), pd.DataFrame(hf_rows).set_index("dataset").round(4),
                                    examples, len(chosen))
