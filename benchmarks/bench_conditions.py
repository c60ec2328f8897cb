"""Which features read each demo condition's label? Global statistics, the ``voxels`` baseline,
a random-init ViT and a positive control, on the cached volumes of a generated demo cohort.

Usage (after ``neurossl demo-data``, ``curate`` and ``preprocess`` of the demo profile)::

    python benchmarks/bench_conditions.py --cohort runs/demo/cohort --cache runs/demo/cache \\
        --out benchmarks/results/conditions.md

Per task, one scan per subject (its first session, in the task's contrast), all labelled
subjects, grouped and stratified 5-fold cross-validated logistic regression (the ``voxels``
probe's pipeline, :func:`neurossl.evaluate.voxel_probe.cross_validated_voxels`) on:

(i)   global statistics: brain voxel count, 9 intensity percentiles and a 12-bin histogram of the
      brain voxels (the tissue fractions' proxy) of the cached volume;
(ii)  the ``voxels`` baseline's features (6^3 pooled cells + 25 quantiles);
(iii) a random-init ViT of the demo profile's model config (the random twin), mean-pooled tokens
      of the 64^3 model input;
(iv)  a positive control that knows where to look: for MRI, features of the scan inside a region
      the generator provides (hippocampi for cognition, the tumour for glioma, frontal grey
      matter for autism); for CT, a handcrafted local feature without any location (the volume
      of brain voxels at clot attenuation after a 3^3 median filter).

A condition that rewards anatomy is near chance on (i)-(iii) and high on (iv). AUCs with a 95 %
bootstrap interval over subjects. Nothing here reads the split files: it is a property of the
generated data, not a model selection.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from scipy import ndimage as ndi
from sklearn.metrics import roc_auc_score

from joblib import Parallel, delayed

from neurossl.cohort.anatomy import hippocampus_weight, load_template, make_subject
from neurossl.cohort.cohort_plan import ANATOMY, LESION, plan_cohort, subject_rng
from neurossl.cohort.pathology import make_glioma
from neurossl.config import load_config
from neurossl.data.cache import read_index
from neurossl.data.dataset import CachedVolumeDataset, select_entries
from neurossl.evaluate.voxel_probe import cached_intensity_features, cross_validated_voxels
from neurossl.objectives.common import encoder_from_config
from neurossl.tasks import get_task

# (task, contrast of the one scan per subject): glioma subjects all have FLAIR, the others T1w / CT.
TASKS = (("cognition_nc_vs_ad", "T1w"), ("glioma_grade2_vs_34", "FLAIR"), ("autism_asd_vs_td", "T1w"),
         ("headct_ich", "CT"))
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
BOOTSTRAP = 1000


def task_scans(scans: pd.DataFrame, cache_index: pd.DataFrame, task_name: str, contrast: str) -> pd.DataFrame:
    """First cached scan of ``contrast`` per subject of the task, with its class ``y``."""
    task = get_task(task_name)
    ok = set(cache_index.loc[cache_index["status"] == "ok", "scan_uid"])
    rows = scans[(scans["dataset"] == task.dataset) & (scans["modality"] == contrast)
                 & scans["label"].isin(task.label_map) & scans["scan_uid"].isin(ok)]
    rows = rows.sort_values(["subject_id", "session"]).drop_duplicates("subject_id")
    return rows.assign(y=rows["label"].map(task.label_map).astype(int)).reset_index(drop=True)


def global_features(cache: Path, uids: list[str], ct: bool) -> np.ndarray:
    """``(N, 1 + 9 + 12)``: brain voxel count, percentiles and histogram of the cached volumes."""
    entries = select_entries(read_index(cache), uids, cache)
    edges = np.linspace(-20.0, 100.0, 13) if ct else np.linspace(-3.0, 3.0, 13)
    rows = []
    for file in entries["file"]:
        volume = np.load(cache / file).astype(np.float32)
        brain = volume[(volume > -50) & (volume < 150)] if ct else volume[volume != 0]
        hist = np.histogram(np.clip(brain, edges[0], edges[-1]), bins=edges)[0] / max(brain.size, 1)
        rows.append(np.concatenate([[brain.size], np.percentile(brain, PERCENTILES), hist]))
    return np.asarray(rows)


@torch.no_grad()
def random_vit_features(cfg, cache: Path, uids: list[str]) -> np.ndarray:
    """``(N, D)`` mean-pooled tokens of a random-init ViT (demo model config) on the model input."""
    data = CachedVolumeDataset(cache, uids, train=False, preprocess=cfg.preprocess)
    torch.manual_seed(0)
    encoder = encoder_from_config(cfg, tuple(data[0]["image"].shape)).eval()
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    return torch.cat([encoder(batch["image"]).mean(dim=1) for batch in loader]).numpy()


def _subject_index(scan_affine: np.ndarray, grid_affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(3, X, Y, Z)`` subject-grid voxel coordinates of every scan voxel."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = scan_affine[:3, :3] @ ijk + scan_affine[:3, 3:4]
    inverse = np.linalg.inv(grid_affine)
    return (inverse[:3, :3] @ world + inverse[:3, 3:4]).reshape(3, *shape)


def oracle_features(dataset: str, image: np.ndarray, mask: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """Positive-control features of one MR scan inside a generator-given ``roi`` (``(X, Y, Z)`` in [0, 1])."""
    brain = image[mask]
    scale = float(np.median(brain)) + 1e-6
    inside = roi > 0.5
    values = image[inside & mask] / scale
    if dataset == "glioma":
        gradient = np.sqrt(sum(g ** 2 for g in np.gradient(image / scale)))
        rim = ndi.binary_dilation(inside, iterations=2) & ~ndi.binary_erosion(inside, iterations=2)
        return np.array([values.std() / (values.mean() + 1e-6), np.percentile(values, 90) - np.percentile(values, 10),
                         np.percentile(values, 5), gradient[rim].mean(), gradient[inside].mean()])
    weighted = float((image * roi * mask).sum() / ((roi * mask).sum() + 1e-6)) / scale
    return np.array([weighted, float((values < np.percentile(brain / scale, 25)).mean())])


def scan_control(cohort: Path, row: dict, plan, template, seed: int) -> np.ndarray:
    """Positive-control features ``(F,)`` of one scan (see the module docstring)."""
    scan = nib.load(cohort / row["path"])
    image = np.asarray(scan.dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(cohort / row["mask_path"]).dataobj) > 0
    if row["dataset"] == "ich":
        # clot attenuation, away from the bone at the brain's border
        smooth = ndi.median_filter(image, size=3)
        inner = ndi.binary_erosion(mask, iterations=3)
        blood = inner & (smooth >= 48.0) & (smooth <= 90.0)
        return np.array([np.log1p(blood.sum()), np.percentile(smooth[inner], 99.9)])
    # the subject's warped anatomy (the skull shell drawn after it is not needed)
    tissues = make_subject(template, subject_rng(seed, plan, ANATOMY))
    if row["dataset"] == "glioma":
        lesion = make_glioma(tissues, int(plan.phenotype[1:]), subject_rng(seed, plan, LESION))
        roi_grid = np.zeros_like(tissues.gm)
        roi_grid[lesion.box] = lesion.solid + lesion.necrosis
    elif row["dataset"] == "cognition":
        roi_grid = hippocampus_weight(tissues.mni)
    else:
        roi_grid = (tissues.gm > 0.5) * np.clip((tissues.mni[1] + 30.0) / 40.0, 0.0, 1.0)
    coords = _subject_index(scan.affine, tissues.affine, image.shape)
    roi = ndi.map_coordinates(roi_grid.astype(np.float32), coords, order=1, mode="constant")
    return oracle_features(row["dataset"], image, mask, roi)


def positive_control(cohort: Path, rows: pd.DataFrame, plans: dict, template, seed: int,
                     workers: int = 2) -> np.ndarray:
    """``(N, F)`` positive-control features of the task's scans, ``workers`` processes."""
    jobs = (delayed(scan_control)(cohort, row, plans[row["subject_id"]], template, seed)
            for row in rows.to_dict("records"))
    return np.asarray(Parallel(n_jobs=workers)(jobs))


def auc_interval(y: np.ndarray, score: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """AUC and its 95 % bootstrap interval over subjects (one scan each)."""
    rng = np.random.default_rng(seed)
    auc = roc_auc_score(y, score)
    boots = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(y), len(y))
        if len(set(y[pick])) == 2:
            boots.append(roc_auc_score(y[pick], score[pick]))
    low, high = np.percentile(boots, [2.5, 97.5])
    return auc, low, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohort", type=Path, default=Path("runs/demo/cohort"))
    parser.add_argument("--cache", type=Path, default=Path("runs/demo/cache"))
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/conditions.md"))
    parser.add_argument("--tasks", nargs="*", default=[t for t, _ in TASKS], help="subset of the tasks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.profile)
    scans = pd.read_csv(args.cohort / "scans.tsv", sep="\t", dtype={"session": str})
    cache_index = read_index(args.cache)
    plans = {p.subject_id: p for p in plan_cohort(cfg.cohort)}
    template = load_template(cfg.cohort.resolution_mm)
    lines = []
    for task_name, contrast in TASKS:
        if task_name not in args.tasks:
            continue
        start = time.time()
        rows = task_scans(scans, cache_index, task_name, contrast)
        y, groups, uids = rows["y"].to_numpy(), rows["subject_id"].to_numpy(), rows["scan_uid"].tolist()
        ct = contrast == "CT"
        features = {
            "(i) global statistics": global_features(args.cache, uids, ct),
            "(ii) voxels baseline": cached_intensity_features(args.cache, uids, cfg.evaluate.voxel_size),
            "(iii) random-init ViT, mean-pooled": random_vit_features(cfg, args.cache, uids),
            "(iv) positive control": positive_control(args.cohort, rows, plans, template, cfg.cohort.seed),
        }
        counts = ", ".join(f"{label} {n}" for label, n in rows["label"].value_counts().sort_index().items())
        for name, x in features.items():
            proba = cross_validated_voxels(x, y, groups, 2)
            auc, low, high = auc_interval(y, proba[:, 1])
            lines.append(f"| {task_name} | {contrast} | {counts} | {name} | {x.shape[1]} | {auc:.2f} | {low:.2f}-{high:.2f} |")
            print(lines[-1], flush=True)
        print(f"{task_name}: {time.time() - start:.0f} s", flush=True)
    write_page(args, lines)


def write_page(args: argparse.Namespace, lines: list[str]) -> None:
    header = ("| task | contrast | subjects | features | dims | AUC | 95 % CI |\n"
              "|---|---|---|---|---|---|---|")
    page = (f"# Which features read each demo condition\n\n"
            f"`python benchmarks/bench_conditions.py --cohort {args.cohort} --cache {args.cache} "
            f"--profile {args.profile}`: one scan per subject (first session), all labelled subjects, "
            "grouped stratified 5-fold cross-validated logistic regression, AUC with a 95 % bootstrap "
            "interval over subjects. See the script's docstring for the four feature sets.\n\n"
            f"{header}\n" + "\n".join(lines) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
