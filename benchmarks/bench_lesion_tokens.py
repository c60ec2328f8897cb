"""Does each encoder's token AT the glioma carry the grade, and does the attentive probe find it?

The glioma twin of ``bench_signal_tokens.py``: the grade (2 vs 3/4) is drawn into the lesion's
boundary and core (``neurossl.cohort.pathology.GRADES``), and the lesion sits somewhere else in
every subject, so no fixed token position holds it. The generator knows where: the lesion's
solid and necrotic fraction is rebuilt on the subject grid (as ``bench_conditions.py``'s positive
control does), resampled onto the scan, and sent through the same crop and resize as the cached
volume, which gives each scan's lesion fraction per token of the model input. On the task's
train / validation / test partitions of a finished ``make demo`` run, for the raw voxels (2x
pooled) and every encoder (the random twin, each pretrained run):

- ``lesion token``: a logistic regression (C = 0.01, standardised) on the one token with the
  most lesion in each scan;
- ``lesion-weighted mean``: on the tokens averaged with the lesion fraction as weights;
- ``mean of all tokens``: the same regression on mean-pooled tokens (no location given);
- ``attentive (profile)``: the demo's frozen attentive probe on all tokens, as evaluated;
- ``lesion statistics`` of the model input (the positive control of ``bench_conditions.py`` at
  the encoder's input scale instead of the scan's): spread and range of the intensities inside
  the lesion, gradient magnitude on its rim and inside, its size.

The first two are told where to look; the gap between them and the attentive probe is what the
probe fails to find, and the gap between an encoder and the random twin at the lesion is what
pretraining adds there. Nothing is fitted on or chosen by the test partition.

    python benchmarks/bench_lesion_tokens.py --run runs/demo --splits splits/demo \\
        --out lesion_tokens.csv [--show lesion_overlay.png]
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conditions import _subject_index  # noqa: E402
from bench_signal_tokens import (ENCODERS, attentive_probe, cached_images, demo_run_parser,  # noqa: E402
                                 encode, encoder_specs, regression)

from neurossl.analysis.runs import run_config  # noqa: E402
from neurossl.cohort.anatomy import load_template, make_subject  # noqa: E402
from neurossl.cohort.cohort_plan import ANATOMY, LESION, plan_cohort, subject_rng  # noqa: E402
from neurossl.cohort.pathology import make_glioma  # noqa: E402
from neurossl.config import load_config  # noqa: E402
from neurossl.data.io import load_volume  # noqa: E402
from neurossl.data.preprocess import bounding_box, brain_mask, crop, item_stage, through_plane_axis  # noqa: E402
from neurossl.evaluate.tasks import fold_partitions, task_folds  # noqa: E402
from neurossl.models import patchify  # noqa: E402
from neurossl.tasks import TASKS  # noqa: E402

TASK = "glioma_grade2_vs_34"


def lesion_item(cohort: Path, row: dict, plan, template, seed: int, pre) -> torch.Tensor:
    """``(D, H, W)`` lesion fraction (solid + necrosis) of one scan on its model-input grid: the
    generator's lesion resampled onto the scan, then the cache's crop and the evaluation's
    resize (:func:`~neurossl.data.preprocess.item_stage` without any intensity rule)."""
    scan = nib.load(cohort / row["path"])
    tissues = make_subject(template, subject_rng(seed, plan, ANATOMY))
    lesion = make_glioma(tissues, int(plan.phenotype[1:]), subject_rng(seed, plan, LESION))
    grid = np.zeros_like(tissues.gm)
    grid[lesion.box] = lesion.solid + lesion.necrosis
    coords = _subject_index(scan.affine, tissues.affine, scan.shape[:3])
    roi = ndi.map_coordinates(grid.astype(np.float32), coords, order=1, mode="constant")
    ras = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(roi, scan.affine)).dataobj, dtype=np.float32)
    volume = load_volume(cohort / row["path"])
    mask, _ = brain_mask(volume, pre.mask, None)
    cropped = crop(ras, bounding_box(mask, pre.margin))
    plain = dataclasses.replace(pre, intensity="brain")  # no clipping or z-scoring of a fraction
    return item_stage(cropped, through_plane_axis(volume.spacing, pre.isotropy_ratio), "T1w", plain)[0]


def located(tokens: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> dict[str, dict]:
    """The two readouts told where the lesion is: ``{name: {partition: (N, D)}}``."""
    top = {p: t[np.arange(len(t)), weights[p].argmax(axis=1)] for p, t in tokens.items()}
    share = {p: w / w.sum(axis=1, keepdims=True) for p, w in weights.items()}
    mean = {p: np.einsum("nt,ntd->nd", share[p], t) for p, t in tokens.items()}
    return {"lesion token": top, "lesion-weighted mean": mean}


def lesion_statistics(image: torch.Tensor, fraction: torch.Tensor) -> np.ndarray:
    """Positive control at the encoder's input scale, ``(6,)``: spread, 90-10 range and 5th
    percentile of the model input inside the lesion, mean gradient magnitude on its rim and
    inside, and the lesion's voxel count (the features ``bench_conditions.py`` reads on the
    full-resolution scan, here on ``image (1, D, H, W)`` with ``fraction (D, H, W)``)."""
    x = image[0].numpy()
    inside = fraction.numpy() > 0.5
    if not inside.any():  # a lesion thinner than a voxel of the model input
        inside = fraction.numpy() >= fraction.numpy().max() * 0.5
    values = x[inside]
    gradient = np.sqrt(sum(g ** 2 for g in np.gradient(x)))
    rim = ndi.binary_dilation(inside, iterations=1) & ~ndi.binary_erosion(inside, iterations=1)
    return np.array([values.std(), np.percentile(values, 90) - np.percentile(values, 10),
                     np.percentile(values, 5), gradient[rim].mean(), gradient[inside].mean(), inside.sum()])


def show(images: torch.Tensor, fractions: torch.Tensor, out: Path) -> None:
    """Mid-lesion slices of the first scans with the lesion fraction's outline over them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 6, figsize=(15, 2.8))
    for ax, image, fraction in zip(axes, images, fractions):
        d = int(fraction.sum(dim=(1, 2)).argmax())
        ax.imshow(image[0, d].T, cmap="gray", origin="lower")
        ax.contour(fraction[d].T, levels=[0.5], colors="r", linewidths=0.8)
        ax.set_axis_off()
    fig.savefig(out, dpi=100, bbox_inches="tight")


def main() -> None:
    parser = demo_run_parser(__doc__)
    parser.add_argument("--show", type=Path, help="a PNG of six scans with their lesion outline")
    parser.add_argument("--contrast", help="keep only the scans of this contrast (T1w, T2w, FLAIR) in every partition")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS[:4]),
                        help="pretraining runs under <run>/pretrain (the twin copies the first)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    torch.set_num_threads(1)
    task, cfg = TASKS[TASK], load_config(args.profile)
    run, encoders = args.run, tuple(args.encoders)
    scans = pd.read_csv(run / "cohort" / "scans.tsv", sep="\t", dtype={"session": str}).set_index("scan_uid")
    plans = {p.subject_id: p for p in plan_cohort(cfg.cohort)}
    template = load_template(cfg.cohort.resolution_mm)
    index = pd.read_csv(run / "cache" / "index.csv")
    pre = run_config(run / "pretrain" / encoders[0]).preprocess
    tubelet, patch = cfg.model.tubelet_size, cfg.model.patch_size
    rows = []
    for fold in task_folds(task, args.splits):
        parts = fold_partitions(task, args.splits, fold, pd.Series(index["label"].values, index=index["scan_uid"]))
        if args.contrast:
            parts = {p: f[scans.loc[f["scan_uid"], "modality"].to_numpy() == args.contrast] for p, f in parts.items()}
        uids = {p: f["scan_uid"].tolist() for p, f in parts.items()}
        images = cached_images(run, parts, pre)
        fractions = {p: torch.stack([lesion_item(run / "cohort", {"path": scans.loc[u, "path"]},
                                                 plans[scans.loc[u, "subject_id"]], template, cfg.cohort.seed, pre)
                                     for u in us]) for p, us in uids.items()}
        if args.show:
            show(images["test"][:6], fractions["test"][:6], args.show)
        weights = {p: patchify(f[:, None], tubelet, patch).mean(dim=-1).numpy() + 1e-6 for p, f in fractions.items()}
        y = {p: f["y"].to_numpy() for p, f in parts.items()}
        base = {"task": TASK, "fold": fold, "contrast": args.contrast or "all", **{f"n_{p}": len(v) for p, v in y.items()},
                "lesion_tokens_mean": float(np.mean([(w > 0.1).sum(axis=1).mean() for w in weights.values()]))}
        pooled = {p: patchify(F.avg_pool3d(x.float(), 2), tubelet // 2, patch // 2).numpy() for p, x in images.items()}
        for name, feats in located(pooled, weights).items():
            rows.append({**base, "features": "voxels (tubelet, pooled 2x)", "readout": name, **regression(feats, y)})
        control = {p: np.stack([lesion_statistics(x, f) for x, f in zip(images[p], fractions[p])]) for p in images}
        rows.append({**base, "features": "model input", "readout": "lesion statistics", **regression(control, y)})
        print(rows[-1], flush=True)
        for name, spec in encoder_specs(run, encoders).items():
            encoder, tokens = encode(spec, images)
            arrays = {p: t.numpy() for p, t in tokens.items()}
            readouts = {**located(arrays, weights), "mean of all tokens": {p: a.mean(axis=1) for p, a in arrays.items()}}
            for label, feats in readouts.items():
                rows.append({**base, "features": name, "readout": label, **regression(feats, y)})
            probe = attentive_probe(tokens, y, spec, encoder.num_heads, cfg, run, args.splits, task)
            rows.append({**base, "features": name, "readout": "attentive (profile)", **probe})
            print(*rows[-4:], sep="\n", flush=True)
    pd.DataFrame(rows).round(4).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
