"""Encoder features of downstream scans for embedding and clustering analyses.

:func:`downstream_scans` lists every scan of the downstream partitions of a split folder with its
label; :func:`pooled_features` encodes them with a frozen encoder (a pretraining run, an
``encoder.safetensors`` or an :class:`~neurossl.evaluate.backbones.EncoderSpec` such as the
random twin) and mean-pools the final tokens, as the paper's t-SNE analysis does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from neurossl.config import Config, PreprocessConfig
from neurossl.data.cache import read_index
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.splits.files import read_splits
from neurossl.evaluate.backbones import EncoderSpec, build_token_encoder, encoder_preprocess, resolve_encoder
from neurossl.evaluate.feature_store import FeatureStore
from neurossl.progress import tqdm

SCAN_COLUMNS = ["scan_uid", "subject_id", "dataset", "label", "modality"]


def downstream_scans(cache_dir: str | Path, splits_dir: str | Path,
                     modalities: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Every cached scan of the downstream (non-``pretrain``) partitions, once; only those of
    ``modalities`` when given (MRI encoders are compared on MRI, head CT has its own task).

    Returns:
        Columns ``scan_uid, subject_id, dataset, label, modality``, sorted by dataset and scan.
    """
    splits = read_splits(splits_dir)
    uids = set(splits.loc[splits["partition"] != "pretrain", "scan_uid"])
    index = read_index(cache_dir)
    scans = index[(index["status"] == "ok") & index["scan_uid"].isin(uids)]
    if modalities is not None:
        scans = scans[scans["modality"].isin(modalities)]
    if scans.empty:
        raise ValueError(f"no cached scans of {cache_dir} in the downstream partitions of {splits_dir}")
    scans = scans[SCAN_COLUMNS].astype(str).drop_duplicates("scan_uid")
    return scans.sort_values(["dataset", "scan_uid"]).reset_index(drop=True)


@torch.no_grad()
def pooled_features(
    encoder: str | Path | EncoderSpec,
    cache_dir: str | Path,
    scan_uids: list[str],
    cfg: Config,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    store: FeatureStore | None = None,
) -> np.ndarray:
    """Mean of the final tokens of a frozen encoder for each scan (evaluation-mode items).

    Args:
        encoder: run folder, ``encoder.safetensors`` or an ``EncoderSpec`` (e.g. ``random_twin``).
        cache_dir: preprocessing cache holding ``scan_uids``.
        scan_uids: scans to encode, in the order of the returned rows.
        cfg: the config the cache was built with; the encoder's items follow its own saved
            preprocessing (:func:`~neurossl.evaluate.backbones.encoder_preprocess`), which must
            agree with ``cfg`` on the input's shape.
        batch_size: volumes per forward pass.
        device: where the encoder runs.
        store: where features computed before (by evaluation) are read and new ones kept
            (:func:`~neurossl.evaluate.feature_store.cache_feature_store`), or None.

    Returns:
        ``(N, embed_dim)`` float32 features.
    """
    spec = encoder if isinstance(encoder, EncoderSpec) else resolve_encoder(encoder)
    preprocess = encoder_preprocess(spec, cfg)
    keys = read_index(cache_dir).set_index("scan_uid")["key"]
    unknown = sorted(set(scan_uids) - set(keys.index))
    if unknown:
        raise ValueError(f"{cache_dir}: {len(unknown)} scan(s) not in the cache's index.csv, "
                         f"e.g. {', '.join(unknown[:3])}")
    known = store.read(spec, preprocess) if store is not None else {}
    missing = [u for u in dict.fromkeys(scan_uids) if keys[u] not in known]
    if missing:
        computed = dict(zip((keys[u] for u in missing),
                            encode_pooled(spec, cache_dir, missing, preprocess, batch_size, device)))
        known = {**known, **computed}
        if store is not None:
            store.add(spec, preprocess, computed)
    return np.stack([known[keys[u]] for u in scan_uids]).astype(np.float32)


@torch.no_grad()
def encode_pooled(spec: EncoderSpec, cache_dir: str | Path, scan_uids: list[str],
                  preprocess: PreprocessConfig, batch_size: int, device: str | torch.device) -> np.ndarray:
    """Mean of ``spec``'s final tokens for each of ``scan_uids``: ``(N, embed_dim)`` float32."""
    model = build_token_encoder(spec).to(device).eval()
    data = CachedVolumeDataset(cache_dir, list(scan_uids), train=False, preprocess=preprocess)
    features = []
    for batch in tqdm(DataLoader(data, batch_size=batch_size), desc=f"features {spec.name}",
                      unit="batch", leave=False):
        tokens = model({**batch, "image": batch["image"].to(device)})  # (B, N, D)
        features.append(tokens.mean(dim=1).float().cpu())
    return torch.cat(features).numpy()


def exported_encoders(data_dir: str | Path, objectives: list[str]) -> dict[str, Path]:
    """The pretraining run folders ``data_dir/pretrain/<objective>``, each with its exported
    ``encoder.safetensors``.

    Analysis only reads encoders; the pipeline's ``pretrained`` stage trains them.

    Raises:
        FileNotFoundError: naming every run without an exported encoder and the stage that makes it.
    """
    runs = {name: Path(data_dir) / "pretrain" / name for name in objectives}
    missing = [str(run / "encoder.safetensors") for run in runs.values()
               if not (run / "encoder.safetensors").is_file()]
    if missing:
        raise FileNotFoundError(f"no exported encoder: {', '.join(missing)}; run the pretrained "
                                "stage first (neurossl.pipeline.pretrained, or `neurossl demo`)")
    return runs
