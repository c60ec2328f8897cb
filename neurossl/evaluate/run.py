"""Evaluate encoders on downstream tasks: frozen probes, fine-tuning, baselines, few-shot.

:class:`Evaluator` runs one (encoder, task, mode) over the task's folds and seeds and returns
tidy metric rows (``encoder, objective, task, mode, fold, seed, metric, value``) plus one row of
class probabilities per test scan, from which confidence intervals, paired comparisons and ROC
curves are computed later. Frozen tokens are encoded once per encoder and reused by every task,
fold and seed. Each fold trains on ``train``, early-stops on ``val`` and is scored on ``test``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from neurossl.config import Config
from neurossl.data.cache import read_index
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.evaluate.backbones import (EncoderClassifier, EncoderSpec, ResNetClassifier,
                                         TokenClassifier, build_token_encoder,
                                         encoder_heads, encoder_preprocess)
from neurossl.evaluate.feature_store import FeatureStore
from neurossl.evaluate.fewshot import sample_per_class, sample_test
from neurossl.evaluate.fit import FitSettings, LabelledItems, TokenItems, fit_classifier, predict
from neurossl.evaluate.heads import build_head
from neurossl.evaluate.metrics import classification_metrics
from neurossl.evaluate.tasks import fold_partitions, task_folds
from neurossl.tasks import Task, get_task
from neurossl.tasks import CT_INPUT
from neurossl.evaluate.voxel_probe import cached_intensity_features, fit_predict_voxels
from neurossl.models import save_encoder
from neurossl.progress import tqdm
from neurossl.runtime.device import resolve_device
from neurossl.runtime.host_memory import retain_on_cpu

MODES = ("frozen", "finetune")
JEPA_FAMILY = ("jepa", "vcr_jepa", "moe_jepa")


@dataclass
class EvalOutput:
    """Metric rows and per-scan predictions of one evaluation."""

    rows: list[dict] = field(default_factory=list)
    predictions: list[pd.DataFrame] = field(default_factory=list)

    def extend(self, other: "EvalOutput") -> None:
        self.rows += other.rows
        self.predictions += other.predictions

    def prediction_table(self) -> pd.DataFrame:
        return pd.concat(self.predictions, ignore_index=True) if self.predictions else pd.DataFrame()


class Evaluator:
    """Runs evaluations against one cache and one split folder.

    Args:
        cfg: the resolved config (``evaluate``, ``augment`` sections are read). An encoder's
            volumes are preprocessed as its own saved config says; ``cfg.preprocess`` serves the
            baselines and must agree with each encoder on the input's shape
            (:func:`~neurossl.evaluate.backbones.encoder_preprocess`).
        cache_dir: the preprocessing cache of the labelled datasets.
        splits_dir: split folder holding the tasks' downstream files (audited on every read).
        usable: scan_uids a coverage report found cached; split rows outside it are left out
            (None: every listed scan must be cached).
        export_dir: where fine-tuned encoders of ``evaluate.export_finetuned`` tasks are saved
            (first fold and seed), or None.
        features: where the mean-pooled tokens of every scan a frozen encoder encodes are kept
            for the embedding analysis (:class:`~neurossl.evaluate.feature_store.FeatureStore`),
            or None.
    """

    def __init__(self, cfg: Config, cache_dir: str | Path, splits_dir: str | Path,
                 usable: set[str] | None = None, export_dir: str | Path | None = None,
                 features: FeatureStore | None = None):
        self.cfg, self.cache_dir, self.splits_dir = cfg, Path(cache_dir), Path(splits_dir)
        self.usable = usable
        self.export_dir = None if export_dir is None else Path(export_dir)
        self.features = features
        self.last_model: torch.nn.Module | None = None
        index = read_index(cache_dir)
        self.labels = index.set_index("scan_uid")["label"]
        self.cache_keys = index.set_index("scan_uid")["key"]
        self.modality = index.set_index("scan_uid")["modality"]
        self.device = resolve_device(cfg.train.device)
        retain_on_cpu(self.device, cfg.train.retain_host_memory)
        self.tokens: dict[str, dict[str, torch.Tensor]] = {}
        self.intensities: dict[str, np.ndarray] = {}  # scan_uid -> `voxels` baseline features

    # ----------------------------------------------------------------- data
    def volumes(self, spec: EncoderSpec, frame: pd.DataFrame, train: bool, seed: int = 0) -> LabelledItems:
        """Labelled cached volumes of ``frame`` as ``spec``'s model takes them
        (:func:`encoder_preprocess`); augmented (training mode) when ``train``."""
        base = CachedVolumeDataset(self.cache_dir, frame["scan_uid"].tolist(), train=train,
                                   preprocess=encoder_preprocess(spec, self.cfg),
                                   augment=self.cfg.augment, seed=seed)
        return LabelledItems(base, frame["y"].to_numpy())

    @torch.no_grad()
    def encode(self, spec: EncoderSpec, uids: list[str]) -> None:
        """Encode (once) the tokens ``(N, D)`` per scan of ``uids`` with the frozen encoder; their
        means go to the feature store, when there is one."""
        cached = self.tokens.setdefault(f"{spec.name}:{spec.path}", {})
        missing = [u for u in dict.fromkeys(uids) if u not in cached]
        if not missing:
            return
        encoder = build_token_encoder(spec).to(self.device).eval()
        preprocess = encoder_preprocess(spec, self.cfg)
        data = CachedVolumeDataset(self.cache_dir, missing, train=False, preprocess=preprocess)
        batches = DataLoader(data, batch_size=self.cfg.evaluate.batch_size,
                             num_workers=self.cfg.train.num_workers)
        pooled = {}
        for batch in tqdm(batches, desc=f"encode {spec.name}", unit="batch", leave=False):
            tokens = encoder({**batch, "image": batch["image"].to(self.device)})
            means = tokens.mean(dim=1).float().cpu().numpy()
            for uid, t, mean in zip(batch["scan_uid"], tokens.to(torch.float16).cpu(), means):
                cached[uid] = t
                pooled[self.cache_keys[uid]] = mean
        if self.features is not None:
            self.features.add(spec, preprocess, pooled)

    def token_items(self, spec: EncoderSpec, frame: pd.DataFrame) -> TokenItems:
        cached = self.tokens[f"{spec.name}:{spec.path}"]
        return TokenItems(torch.stack([cached[u] for u in frame["scan_uid"]]), frame["y"].to_numpy())

    # ----------------------------------------------------------------- one fit
    def settings(self, spec: EncoderSpec, task: Task, mode: str, seed: int, desc: str,
                 epochs: int = 0) -> FitSettings:
        """How one model trains: ResNet50-3D, a frozen probe or fine-tuning (``epochs`` > 0
        overrides the count, as the few-shot curves do for ResNet50-3D)."""
        e = self.cfg.evaluate
        common = dict(weight_decay=e.weight_decay, warmup_epochs=e.warmup_epochs, patience=e.patience,
                      batch_size=e.batch_size, seed=seed, desc=desc, select=e.select)
        if spec.name == "resnet50":
            return FitSettings(epochs or e.resnet_epochs, e.resnet_lr,
                               num_workers=self.cfg.train.num_workers, **common)
        if mode == "frozen":
            common["batch_size"] = e.probe_batch_size or e.batch_size
            base_task = task.name.partition(":")[0]
            if spec.objective in JEPA_FAMILY and base_task in e.cross_domain_tasks and e.jepa_cross_domain_epochs:
                common["warmup_epochs"] = e.jepa_cross_domain_warmup_epochs or e.warmup_epochs
                return FitSettings(e.jepa_cross_domain_epochs, e.head_lr, **common)
            return FitSettings(e.probe_epochs, e.head_lr, **common)
        tuned = dict(num_workers=self.cfg.train.num_workers, freeze_epochs=e.encoder_freeze_epochs)
        if e.finetune_lr > 0:
            return FitSettings(e.finetune_epochs, e.finetune_lr, start_lr=e.finetune_start_lr,
                               final_lr=e.finetune_final_lr, **tuned, **common)
        return FitSettings(e.finetune_epochs, e.head_lr, lr_scales={"encoder.": e.encoder_lr_scale},
                           **tuned, **common)

    def fit_predict(self, spec: EncoderSpec, task: Task, mode: str, parts: dict[str, pd.DataFrame],
                    seed: int, desc: str, epochs: int = 0) -> np.ndarray:
        """Train on ``parts["train"]``, select on ``val``; class probabilities of ``test``."""
        if spec.name == "voxels":
            return self.fit_predict_voxels(task, parts)
        settings = self.settings(spec, task, mode, seed, desc, epochs)
        e = self.cfg.evaluate
        if spec.name == "resnet50" or mode == "finetune":
            torch.manual_seed(seed)
            if spec.name == "resnet50":
                # CT volumes arrive as one channel per HU window
                channels = len(self.cfg.preprocess.ct_windows) if task.input == CT_INPUT else 1
                model = ResNetClassifier(task.num_classes, in_channels=channels, input_size=e.resnet_input_size)
            else:
                encoder = build_token_encoder(spec)
                model = EncoderClassifier(encoder, build_head(e.head, encoder.embed_dim, task.num_classes,
                                                              encoder.num_heads, e.num_queries))
            data = {p: self.volumes(spec, f, train=p == "train", seed=seed) for p, f in parts.items()}
        else:
            self.encode(spec, [u for f in parts.values() for u in f["scan_uid"]])
            # seeded after encoding, which builds the encoder (drawing its initial weights) only
            # when tokens are missing: the seed alone then decides the probe, whichever tasks ran
            # before
            torch.manual_seed(seed)
            dim = next(iter(self.tokens[f"{spec.name}:{spec.path}"].values())).shape[-1]
            model = TokenClassifier(build_head(e.head, dim, task.num_classes, encoder_heads(spec),
                                               e.num_queries))
            data = {p: self.token_items(spec, f) for p, f in parts.items()}
        fit_classifier(model, data["train"], data["val"], parts["train"]["y"].to_numpy(),
                       task.num_classes, settings, self.device)
        self.last_model = model
        proba, _ = predict(model, data["test"], self.device, settings.batch_size)
        return proba

    def intensity_features(self, frame: pd.DataFrame) -> np.ndarray:
        """``voxels`` baseline features of ``frame``'s scans, computed once per scan: ``(N, F)``."""
        missing = [u for u in dict.fromkeys(frame["scan_uid"]) if u not in self.intensities]
        if missing:
            rows = cached_intensity_features(self.cache_dir, missing, self.cfg.evaluate.voxel_size)
            self.intensities.update(zip(missing, rows))
        return np.stack([self.intensities[u] for u in frame["scan_uid"]])

    def fit_predict_voxels(self, task: Task, parts: dict[str, pd.DataFrame]) -> np.ndarray:
        """The ``voxels`` baseline: logistic regression on intensity features of train + val
        (its regularisation is chosen by inner cross-validation, so val is training data here)."""
        fit = pd.concat([parts["train"], parts["val"]], ignore_index=True)
        return fit_predict_voxels(self.intensity_features(fit), fit["y"].to_numpy(),
                                  self.intensity_features(parts["test"]), task.num_classes)

    # ----------------------------------------------------------------- public
    def partitions(self, task: Task, fold: int | None, contrast: str | None) -> dict[str, pd.DataFrame]:
        """The fold's ``train / val / test`` frames, restricted to one contrast when given."""
        parts = fold_partitions(task, self.splits_dir, fold, self.labels, self.usable)
        if contrast is None:
            return parts
        parts = {p: f[f["scan_uid"].map(self.modality) == contrast].reset_index(drop=True)
                 for p, f in parts.items()}
        empty = [p for p, f in parts.items() if f.empty]
        if empty:
            raise ValueError(f"task {task.name}:{contrast} fold {fold}: no {contrast} scans in "
                             f"{', '.join(empty)}; contrasts cached: {sorted(set(self.modality))}")
        return parts

    def run(self, spec: EncoderSpec, task_name: str, mode: str) -> EvalOutput:
        """All folds and seeds of ``task_name`` for ``spec`` in ``mode`` (frozen / finetune).

        ``task_name`` may name one contrast, ``<task>:<contrast>`` (``glioma_grade2_vs_34:FLAIR``):
        every partition keeps that contrast's scans only, so a multi-contrast encoder (MoE-JEPA)
        is evaluated on each contrast of the same subjects.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
        base, _, contrast = task_name.partition(":")
        task = get_task(base)
        if contrast:
            task = replace(task, name=task_name)
        folds = task_folds(task, self.splits_dir)
        if self.cfg.evaluate.max_folds:
            folds = folds[: self.cfg.evaluate.max_folds]
        out = EvalOutput()
        for fold in folds:
            parts = self.partitions(task, fold, contrast or None)
            for seed in self.cfg.evaluate.seeds:
                desc = f"{spec.name} {task.name} {mode} fold {fold} seed {seed}"
                proba = self.fit_predict(spec, task, mode, parts, seed, desc)
                out.extend(scored(spec, task, mode, fold, seed, parts["test"], proba))
                if (mode, fold, seed) == ("finetune", folds[0], self.cfg.evaluate.seeds[0]):
                    self.export_finetuned(spec, task, fold, seed)
        return out

    def export_finetuned(self, spec: EncoderSpec, task: Task, fold: int, seed: int) -> Path | None:
        """Save the encoder just fine-tuned on ``task`` (an ``export_finetuned`` task) as
        ``<export_dir>/<encoder>__<task>.safetensors``, with its provenance in the sidecar."""
        if (self.export_dir is None or task.name not in self.cfg.evaluate.export_finetuned
                or not isinstance(self.last_model, EncoderClassifier)):
            return None
        meta = {"objective": spec.objective, "steps": None, "git_commit": None,
                "data": {"cache": str(self.cache_dir), "splits": str(self.splits_dir)},
                "finetuned": {"from": str(spec.path), "task": task.name, "fold": fold, "seed": seed}}
        path = self.export_dir / f"{spec.name}__{task.name}.safetensors"
        return save_encoder(self.last_model.encoder.encoder, path, meta)

    def run_fewshot(self, spec: EncoderSpec, task_name: str, shots: int, seed: int) -> EvalOutput:
        """``shots`` labelled training volumes per class (first fold's train partition, drawn
        with ``seed``); SSL encoders are probed frozen or fine-tuned (``evaluate.fewshot_mode``),
        ResNet50-3D trains from scratch for ``fewshot_resnet_epochs``."""
        task = get_task(task_name)
        fold = task_folds(task, self.splits_dir)[0]
        parts = fold_partitions(task, self.splits_dir, fold, self.labels, self.usable)
        parts["train"] = sample_per_class(parts["train"], shots, seed)
        parts["test"] = sample_test(parts["test"], self.cfg.evaluate.fewshot_test_size)
        desc = f"{spec.name} {task.name} {shots}-shot seed {seed}"
        e = self.cfg.evaluate
        mode = "finetune" if spec.name == "resnet50" else e.fewshot_mode
        epochs = e.fewshot_resnet_epochs if spec.name == "resnet50" else 0
        proba = self.fit_predict(spec, task, mode, parts, seed, desc, epochs)
        return scored(spec, task, f"fewshot_{shots}", fold, seed, parts["test"], proba)


def scored(spec: EncoderSpec, task: Task, mode: str, fold: int | None, seed: int,
           test: pd.DataFrame, proba: np.ndarray) -> EvalOutput:
    """Metric rows and the prediction table of one fitted model on its test partition."""
    key = {"encoder": spec.name, "objective": spec.objective, "task": task.name, "mode": mode,
           "fold": -1 if fold is None else fold, "seed": seed}
    y = test["y"].to_numpy()
    metrics = classification_metrics(y, proba)
    rows = [{**key, "metric": name, "value": value} for name, value in metrics.items()]
    predictions = test[["subject_id", "scan_uid", "y"]].assign(**key)
    for k in range(proba.shape[1]):
        predictions[f"p{k}"] = proba[:, k]
    return EvalOutput(rows, [predictions])
