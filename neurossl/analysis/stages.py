"""Pretrained against fine-tuned encoders on one test set (the paper's Table 7 and Figure 4).

The paper embeds the held-out ADNI NC vs AD test set with each encoder before and after
fine-tuning and scores how well the diagnostic labels cluster (silhouette, NMI) in the raw
embedding space and in the t-SNE plane. Fine-tuned encoders come from ``neurossl evaluate``'s
``finetuned/`` folder (``evaluate.export_finetuned``); a pretrained encoder without a fine-tuned
counterpart is still scored, its fine-tuned row absent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from neurossl.analysis.embeddings import EmbeddingAnalysis, analyse_encoders, clustering_table
from neurossl.analysis.features import pooled_features
from neurossl.config import Config
from neurossl.data.cache import read_index
from neurossl.evaluate.backbones import EncoderSpec, resolve_encoder
from neurossl.evaluate.feature_store import FeatureStore
from neurossl.pipeline import TABLE7
from neurossl.evaluate.tasks import fold_partitions, task_folds
from neurossl.tasks import get_task

STAGES = ("pretrained", "fine-tuned")


def task_test_scans(task_name: str, cache_dir: str | Path, splits_dir: str | Path) -> pd.DataFrame:
    """The first fold's test partition of ``task_name``: ``subject_id, scan_uid, y, label``."""
    task = get_task(task_name)
    labels = read_index(cache_dir).set_index("scan_uid")["label"]
    test = fold_partitions(task, splits_dir, task_folds(task, splits_dir)[0], labels)["test"]
    return test.assign(label=test["y"].map(dict(enumerate(task.classes))))


def finetuned_encoders(eval_dir: str | Path, task_name: str, names: list[str]) -> dict[str, EncoderSpec]:
    """The encoders of ``names`` fine-tuned on ``task_name`` under ``<eval_dir>/finetuned``."""
    folder = Path(eval_dir) / "finetuned"
    found = {name: folder / f"{name}__{task_name}.safetensors" for name in names}
    return {name: resolve_encoder(path) for name, path in found.items() if path.is_file()}


def stage_encoders(pretrained: dict[str, EncoderSpec], eval_dir: str | Path, task_name: str,
                   names: tuple[str, ...] = TABLE7) -> dict[str, dict[str, EncoderSpec]]:
    """stage -> encoder -> spec for Table 7: the ``names`` among ``pretrained`` and their copies
    fine-tuned on ``task_name`` (:func:`finetuned_encoders`)."""
    chosen = [name for name in names if name in pretrained]
    return {"pretrained": {name: pretrained[name] for name in chosen},
            "fine-tuned": finetuned_encoders(eval_dir, task_name, chosen)}


def stage_analyses(encoders: dict[str, dict[str, EncoderSpec]], scans: pd.DataFrame,
                   cache_dir: str | Path, cfg: Config, batch_size: int = 8,
                   device: str = "cpu", store: FeatureStore | None = None,
                   ) -> dict[str, dict[str, EmbeddingAnalysis]]:
    """Embed ``scans`` (``scan_uid``, ``label``) with every encoder of every stage and score the
    labels' clustering in the raw space and the t-SNE plane.

    Args:
        encoders: stage -> encoder name -> spec (see :func:`finetuned_encoders`).
        store: the feature store to read and extend (:func:`pooled_features`), or None.

    Returns:
        stage -> encoder name -> :class:`EmbeddingAnalysis` (``coords["tsne"]`` kept for plots).
    """
    uids, labels = scans["scan_uid"].tolist(), scans["label"].to_numpy()
    out = {}
    for stage, specs in encoders.items():
        features = {name: (pooled_features(spec, cache_dir, uids, cfg, batch_size, device, store), labels)
                    for name, spec in specs.items()}
        with threadpool_limits(1):  # t-SNE / k-means threads only thrash on a shared CPU
            out[stage] = analyse_encoders(features, methods=("tsne",))
    return out


def stage_table(analyses: dict[str, dict[str, EmbeddingAnalysis]], spaces=("raw", "tsne")) -> pd.DataFrame:
    """Table 7's layout: one row per (stage, encoder), silhouette and NMI per space.

    Args:
        analyses: stage (``pretrained`` / ``fine-tuned``) -> encoder -> its analysis.

    Returns:
        Index ``stage, encoder``; columns ``silhouette (raw), nmi (raw), silhouette (tsne),
        nmi (tsne)`` (the paper's order).
    """
    frames = [clustering_table(by_encoder).assign(stage=stage)
              for stage, by_encoder in analyses.items() if by_encoder]
    if not frames:
        raise ValueError("stage_table received no analyses")
    scores = pd.concat(frames, ignore_index=True)
    scores = scores[scores["space"].isin(spaces)]
    table = scores.pivot_table(index=["stage", "encoder"], columns="space", values=["silhouette", "nmi"],
                               sort=False)
    table = table.reindex(columns=[(m, s) for s in spaces for m in ("silhouette", "nmi")])
    table.columns = [f"{metric} ({space})" for metric, space in table.columns]
    order = [s for s in STAGES if s in analyses] + [s for s in analyses if s not in STAGES]
    return table.reindex(order, level="stage")
