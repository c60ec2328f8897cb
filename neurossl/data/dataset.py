"""Torch datasets of preprocessed volumes: from the cache (fast) or from NIfTI (baseline).

Both classes share one per-item path (:meth:`VolumeItems.render`): the same
:func:`~neurossl.data.preprocess.item_stage` and the same augmentation chain, so they differ
only in where the deterministic-stage array comes from:

- :class:`CachedVolumeDataset` memory-maps the ``.npy`` written by
  :func:`~neurossl.data.cache.build_cache` (only the crop is read from disk);
- :class:`NiftiVolumeDataset` re-reads and re-preprocesses the NIfTI on every item, as the
  paper's official loader does (kept as a baseline for benchmarks and cache checks).

An item is ``dict(image=(C, D, H, W) float32, scan_uid, subject_id, label, dataset, modality)``
(strings; ``""`` where unknown); with ``augment.on_device`` a training item also carries
``augment``, its drawn augmentation parameters, and its image is not yet augmented (nor, with
``preprocess.intensity: official``, z-scored): :func:`batch_to_device` applies them to the whole
batch on the training device. Randomness
(slice axis, crop offset, augmentations) comes from a seed derived from ``(seed, epoch, index)``,
so an item is the same whichever DataLoader worker draws it and however many workers there are;
an evaluation item's random crop offset (``preprocess.eval_crop: random``) from ``(seed, index)``.
Nothing is opened in ``__init__``: each item opens its memmap itself, so datasets pickle cheaply
into workers and hold no shared mutable state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from neurossl.config import AugmentConfig, PreprocessConfig
from neurossl.data.cache import config_hash, mask_file_for, read_index, text
from neurossl.data.preprocess import deterministic_stage, item_stage, zscores_per_item

ITEM_TEXT = ("scan_uid", "subject_id", "label", "dataset", "modality")


def _augment_chain(augment: AugmentConfig | None):
    """The training augmentation chain, or None. MONAI (whose import loads most of the library)
    is imported only when a chain is configured, so evaluation-mode readers of the cache (the
    probes, the notebooks' figures) start without it."""
    if augment is None or not augment.enabled:
        return None
    from neurossl.data.augment import build_augment

    return build_augment(augment)


def item_seeds(seed: int, epoch: int, index: int) -> tuple[np.random.Generator, int]:
    """Independent randomness of one item: (a Generator for the item stage, an augment seed)."""
    sequence = np.random.SeedSequence([seed, epoch, index])
    stage, augment = sequence.spawn(2)
    return np.random.default_rng(stage), int(augment.generate_state(1)[0])


def eval_crop_rng(seed: int, index: int) -> np.random.Generator:
    """The square crop's randomness of one evaluation item (``preprocess.eval_crop: random``):
    fixed per ``(seed, index)`` whatever the epoch, so an evaluation is reproducible."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


class VolumeItems(Dataset, ABC):
    """Shared item logic; subclasses say how to get an entry's deterministic-stage array."""

    def __init__(
        self,
        records: list[dict],
        train: bool,
        preprocess: PreprocessConfig | None,
        augment: AugmentConfig | None,
        seed: int,
    ) -> None:
        self.records = records
        self.train = train
        self.preprocess = preprocess or PreprocessConfig()
        # One chain per dataset (and per worker copy): draw_augment reseeds all of it per item.
        self.chain = _augment_chain(augment)
        self.augment_on_device = self.chain is not None and augment.on_device
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's randomness. Call before iterating a DataLoader; persistent workers
        keep the copy they were started with, so use ``persistent_workers=False`` with it."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    @abstractmethod
    def load(self, record: dict) -> tuple[np.ndarray, int | None, str]:
        """``((X, Y, Z) deterministic-stage array, depth_axis, modality)`` of one entry."""

    def render(
        self, data: np.ndarray, depth_axis: int | None, modality: str, index: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """``(X, Y, Z)`` -> (``(C, D, H, W)`` float32, augmentation parameters or None): item
        stage, then in training the augmentation, applied here unless it is left to the device."""
        if not self.train:
            crop_rng = (eval_crop_rng(self.seed, index)
                        if self.preprocess.eval_crop == "random" else None)
            return item_stage(data, depth_axis, modality, self.preprocess, crop_rng=crop_rng), None
        rng, augment_seed = item_seeds(self.seed, self.epoch, index)
        augmented = self.chain is not None
        # the official intensity rule z-scores after augmenting: left to the augmentation step
        image = item_stage(data, depth_axis, modality, self.preprocess, rng=rng,
                           defer_zscore=augmented)
        if not augmented:
            return image, None
        zscore = zscores_per_item(self.preprocess, modality)
        from neurossl.data.augment import apply_augment, draw_augment

        if self.augment_on_device:
            return image, draw_augment(self.chain, augment_seed, tuple(image.shape), zscore)
        return apply_augment(image, self.chain, augment_seed, zscore), None

    def __getitem__(self, index: int) -> dict:
        """``dict(image=(C, D, H, W) float32, scan_uid, subject_id, label, dataset, modality)``."""
        record = self.records[index]
        data, depth_axis, modality = self.load(record)
        item = {name: text(record.get(name)) for name in ITEM_TEXT}
        item["modality"] = modality
        item["image"], params = self.render(data, depth_axis, modality, index)
        if params is not None:
            item["augment"] = params
        return item


class CachedVolumeDataset(VolumeItems):
    """Items from a preprocessing cache (``build_cache``), memory-mapped per item.

    Args:
        cache_dir: folder holding ``index.csv`` and ``volumes/``.
        scan_uids: the entries to serve, in this order; None = every ``ok`` entry of the index.
        train: random slice axis / crop offset and augmentations; False = deterministic.
        preprocess: must match the cache's deterministic fields (checked); its ``crop_size``,
            ``depth``, ``eval_axis`` and ``ct_windows`` shape the items.
        augment: training augmentations; None or ``enabled=False`` for none.
        seed: base of the per-item seeds.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        scan_uids: list[str] | None = None,
        train: bool = True,
        preprocess: PreprocessConfig | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        preprocess = preprocess or PreprocessConfig()
        index = read_index(cache_dir)
        index = select_entries(index[index["status"] == "ok"], scan_uids, cache_dir)
        check_intensity_rule(index, preprocess, cache_dir)
        stale = index[index["config_hash"] != config_hash(preprocess)]
        if len(stale):
            raise ValueError(
                f"{cache_dir}: {len(stale)} entries were cached with other deterministic "
                f"preprocessing settings (e.g. {stale['scan_uid'].iloc[0]}); rebuild the cache "
                "with this config"
            )
        records = index.to_dict("records")
        for record in records:
            record["file"] = str(Path(cache_dir) / record["file"])
        super().__init__(records, train, preprocess, augment, seed)

    def load(self, record: dict) -> tuple[np.ndarray, int | None, str]:
        """Memory-map the cached array (opened here, in whichever process draws the item)."""
        return np.load(record["file"], mmap_mode="r"), record["depth_axis"], record["modality"]


def batch_to_device(batch: dict, device: torch.device | str) -> dict:
    """A collated batch with its tensors on ``device``, its deferred augmentation applied there.

    Args:
        batch: a DataLoader batch of items (``image (B, C, D, H, W)``, other fields, and, for
            items of a dataset with ``augment.on_device``, ``augment``: parameters ``(B, ...)``).
    Returns:
        The same fields without ``augment``; ``image`` augmented when ``augment`` was there.
    """
    out = {name: value.to(device, non_blocking=True) if torch.is_tensor(value) else value
           for name, value in batch.items() if name != "augment"}
    if "augment" in batch:
        from neurossl.data.augment_ops import apply_augment_params

        out["image"] = apply_augment_params(out["image"], batch["augment"])
    return out


def check_intensity_rule(index: pd.DataFrame, cfg: PreprocessConfig, cache_dir: str | Path) -> None:
    """Raise a ValueError naming both rules when entries of ``index`` were cached with another
    ``preprocess.intensity`` than ``cfg``'s: the two store different arrays (z-scored vs the
    scanner's units), so neither can serve the other."""
    other = sorted(set(index["intensity"]) - {cfg.intensity})
    if other:
        raise ValueError(
            f"{cache_dir}: cached with preprocess.intensity={other[0]}, but this config has "
            f"preprocess.intensity={cfg.intensity}; rebuild the cache with this config, or run "
            f"with preprocess.intensity={other[0]}"
        )


def select_entries(
    index: pd.DataFrame, scan_uids: list[str] | None, cache_dir: str | Path
) -> pd.DataFrame:
    """Rows of ``index`` for ``scan_uids`` in that order; all rows for None; unknown ids raise."""
    if scan_uids is None:
        return index
    by_uid = index.set_index("scan_uid", drop=False)
    unknown = [uid for uid in scan_uids if uid not in by_uid.index]
    if unknown:
        raise KeyError(
            f"{cache_dir}: {len(unknown)} scan_uids not cached (or failed), e.g. {unknown[:5]}"
        )
    return by_uid.loc[list(scan_uids)].reset_index(drop=True)


class NiftiVolumeDataset(VolumeItems):
    """Baseline: re-read and re-preprocess each NIfTI per item (the official loader's way).

    Args:
        entries: rows with ``scan_uid, path`` (relative to ``root``) and optionally
            ``mask_path, modality, subject_id, label, dataset``.
        root: folder the paths are relative to.
        train, preprocess, augment, seed: as :class:`CachedVolumeDataset`.
    """

    def __init__(
        self,
        entries: pd.DataFrame,
        root: str | Path,
        train: bool = True,
        preprocess: PreprocessConfig | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        super().__init__(entries.to_dict("records"), train, preprocess, augment, seed)

    def load(self, record: dict) -> tuple[np.ndarray, int | None, str]:
        """Run the deterministic stage on the NIfTI now."""
        scan = self.root / text(record["path"])
        modality = text(record.get("modality")) or "MRI"
        prep = deterministic_stage(
            scan, self.preprocess, modality, mask_file_for(record, self.root, scan)
        )
        return prep.data, prep.depth_axis, prep.modality
