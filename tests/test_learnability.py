"""The demo cohort's labels are learnable where they should be, and only there.

A fixed 150-subject cohort (one visit each, 32^3 volumes) is built once for this module. On the
contrast that carries a task's signal, NC vs AD on T1w and glioma grade 2 vs 3/4 on FLAIR carry
LOCAL signals with matched global statistics (issue 22: where the atrophy is, not how much; the
lesion's boundary, not its size or composition), so coarse intensities must NOT read them
(benchmarks/results/conditions.md has the positive controls that show the signals exist); autism
on T1w (a tiny diffuse effect by design) is read by nothing. Two readers:

- the ``voxels`` baseline (pooled intensities and their quantiles, logistic regression), every
  scan predicted out-of-fold over 5 folds grouped by subject;
- MONAI's ResNet50-3D from scratch, the package's own fit loop with a fixed recipe (12 epochs,
  AdamW 1e-3, batch 8, no augmentation) on two thirds of the subjects, tested on the rest. With
  20-35 training volumes there is no validation split to spare: early stopping on a handful of
  volumes picks a near-untrained epoch, so the recipe keeps the final weights.

Contrasts are kept apart because a linear probe cannot undo the different intensity of the same
tissue in T1w, T2w and FLAIR.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.model_selection import StratifiedGroupKFold

from neurossl.cli import main
from neurossl.config import load_config
from neurossl.data.cache import read_index
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.evaluate.backbones import ResNetClassifier
from neurossl.evaluate.fit import FitSettings, LabelledItems, fit_classifier, predict
from neurossl.evaluate.stats import bootstrap_ci
from neurossl.evaluate.tasks import Task, get_task
from neurossl.evaluate.voxel_probe import cached_intensity_features, cross_validated_voxels

COHORT = {
    "cohort": {"subjects": 150, "max_visits": 1,
               "dataset_shares": {"cognition": 0.45, "glioma": 0.35, "autism": 0.2, "pool": 0.0,
                                  "headct": 0.0}},
}


@pytest.fixture(scope="module")
def learnability_cohort(tmp_path_factory) -> tuple[Path, Path]:
    """``(cache folder, config file)`` of the fixed cohort (smoke profile + :data:`COHORT`)."""
    root = tmp_path_factory.mktemp("learnability")
    config = root / "cohort.yaml"
    config.write_text(yaml.safe_dump(COHORT))
    common = ["--profile", "smoke", "--config", str(config), "--quiet"]
    stages = [
        ["demo-data", "--out", str(root / "cohort"), "--workers", "2", *common],
        ["curate", str(root / "cohort"), "--report", str(root / "curation.csv"), *common],
        ["preprocess", str(root / "cohort"), "--curation", str(root / "curation.csv"),
         "--cache", str(root / "cache"), *common],
    ]
    for argv in stages:
        assert main(argv) == 0, argv
    return root / "cache", config


RESNET_RECIPE = FitSettings(epochs=12, lr=1e-3, warmup_epochs=1, batch_size=8, desc="resnet50")


def task_scans(cache: Path, task: Task, contrast: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``(scans, y, subjects)``: the cached ``contrast`` scans of ``task``'s dataset that carry
    one of its labels, their class indices and subject IDs."""
    index = read_index(cache)
    scans = index[(index["status"] == "ok") & (index["dataset"] == task.dataset)
                  & (index["modality"] == contrast) & index["label"].isin(list(task.label_map))]
    return scans, scans["label"].map(task.label_map).to_numpy(), scans["subject_id"].to_numpy()


def out_of_fold_auc(cache: Path, config: Path, task_name: str, contrast: str):
    """Bootstrap CI (over subjects) of the out-of-fold ROC-AUC of the voxel probe on the
    ``contrast`` scans of a task."""
    cfg = load_config("smoke", config)
    task = get_task(task_name)
    scans, y, subjects = task_scans(cache, task, contrast)
    x = cached_intensity_features(cache, scans["scan_uid"].tolist(), cfg.evaluate.voxel_size)
    proba = cross_validated_voxels(x, y, subjects, task.num_classes)
    return bootstrap_ci(y, proba, "roc_auc", n_boot=1000, groups=subjects)


def resnet_holdout_auc(cache: Path, config: Path, task_name: str, contrast: str):
    """Bootstrap CI (over subjects) of the test ROC-AUC of ResNet50-3D trained from scratch by
    :data:`RESNET_RECIPE` on two thirds of the subjects (first of 3 stratified, grouped folds)."""
    cfg = load_config("smoke", config)
    task = get_task(task_name)
    scans, y, subjects = task_scans(cache, task, contrast)
    train, test = next(StratifiedGroupKFold(3, shuffle=True, random_state=0).split(y, y, subjects))

    def items(rows):
        uids = scans["scan_uid"].iloc[rows].tolist()
        volumes = CachedVolumeDataset(cache, uids, train=False, preprocess=cfg.preprocess)
        return LabelledItems(volumes, y[rows])

    torch.manual_seed(0)
    model = ResNetClassifier(task.num_classes)
    fit_classifier(model, items(train), None, y[train], task.num_classes, RESNET_RECIPE,
                   torch.device("cpu"))
    proba, _ = predict(model, items(test), torch.device("cpu"))
    return bootstrap_ci(y[test], proba, "roc_auc", n_boot=1000, groups=subjects[test])


# reader -> (its read, the highest point AUC on a disease task, the widest |AUC - 0.5| for autism): the
# ResNet is tested on a third of the subjects, so its intervals are wider than the voxel probe's.
# For autism that third is 10 subjects, whose AUC under no signal at all has a standard deviation
# of ~0.19: only its interval covering chance is a fair test there, not its point (seen at 0.8,
# interval 0.48-1.0, on a fresh install where the same code had passed before)
# The voxel probe's bound: on the demo cohort (800 subjects) it scores 0.52 (NC vs AD) and 0.54
# (glioma), intervals covering 0.5. ResNet50-3D from scratch on ~30 volumes is not held to a bound
# on the local signals (None): it is run, and its autism interval must cover chance.
READERS = {"voxels": (out_of_fold_auc, 0.7, 0.2), "resnet50": (resnet_holdout_auc, None, None)}


@pytest.mark.slow
@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("task, contrast", [("cognition_nc_vs_ad", "T1w"), ("glioma_grade2_vs_34", "FLAIR")])
def test_coarse_intensities_do_not_read_the_local_disease_signals(learnability_cohort, reader, task, contrast):
    read, max_point, _ = READERS[reader]
    ci = read(*learnability_cohort, task, contrast)
    print(reader, task, ci)
    assert max_point is None or ci.point < max_point, ci


@pytest.mark.slow
@pytest.mark.parametrize("reader", READERS)
def test_autism_stays_near_chance(learnability_cohort, reader):
    read, _, max_gap = READERS[reader]
    ci = read(*learnability_cohort, "autism_asd_vs_td", "T1w")
    assert ci.low < 0.5 < ci.high, ci
    assert max_gap is None or abs(ci.point - 0.5) < max_gap, ci
