"""Loader throughput: the preprocessing cache vs re-reading every NIfTI per item.

Both datasets serve the same items with the same per-item code (training mode: random slice axis
and crop offset; no augmentations unless ``--augment``, whose cost is the same on both sides), so
the difference is the deterministic stage (load, reorient, mask, crop, clip, z-score) that the
official loader repeats for every item and the cache does once.

    python benchmarks/bench_loader.py                       # phantoms (+ demo cohort) made here
    python benchmarks/bench_loader.py --sources phantom --sizes 64x64
    python benchmarks/bench_loader.py --cohort runs/demo/cohort

Prints a Markdown table and writes it to ``benchmarks/results/loader.md`` (+ ``loader.csv``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from neurossl.config import AugmentConfig, CohortConfig, PreprocessConfig
from neurossl.data.cache import build_cache
from neurossl.data.catalog import read_scans
from neurossl.data.dataset import CachedVolumeDataset, NiftiVolumeDataset

RESULTS = Path(__file__).resolve().parent / "results"
# Phantom acquisitions, (shape, spacing mm) as scanners store them: a 1 mm sagittal MPRAGE with a
# 256 mm field of view and a thick-slice axial FLAIR. The brain is an ellipsoid of real size.
PHANTOM_ACQUISITIONS = (((176, 256, 256), (1.0, 1.0, 1.0)), ((256, 256, 48), (0.94, 0.94, 3.0)))
BRAIN_SEMI_AXES_MM = (70.0, 88.0, 70.0)  # left-right, anterior-posterior, inferior-superior


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohort", type=Path, help="a folder with scans.tsv (replaces --sources)")
    parser.add_argument(
        "--sources",
        nargs="+",
        choices=("phantom", "demo"),
        help="data made here: 1 mm / thick-slice phantoms and/or the demo cohort "
        "(default: both when neurossl.cohort.synth exists, else phantoms)",
    )
    parser.add_argument(
        "--work", type=Path, help="where volumes and caches go (default: a temp dir)"
    )
    parser.add_argument(
        "--volumes", type=int, default=12, help="phantom volumes / demo-cohort subjects"
    )
    parser.add_argument("--limit", type=int, default=12, help="items per pass (the first N scans)")
    parser.add_argument(
        "--sizes", nargs="+", default=["64x64", "128x128", "160x160"], help="CROPxDEPTH"
    )
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    parser.add_argument(
        "--passes", type=int, default=3, help="passes over the items per measurement"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the main process (DataLoader workers always use 1)",
    )
    parser.add_argument(
        "--augment", action="store_true", help="also apply the training augmentations"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "loader.md")
    return parser.parse_args()


def phantom_volume(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """int16 ``(X, Y, Z)`` head phantom (textured ellipsoid brain, skull shell, noise everywhere,
    as in real scans) and its brain mask."""
    axes = [
        (np.arange(n, dtype=np.float32) - n / 2) * s / a
        for n, s, a in zip(shape, spacing, BRAIN_SEMI_AXES_MM, strict=True)
    ]
    grid = np.meshgrid(*axes, indexing="ij", sparse=True)
    radius = np.sqrt(sum(g**2 for g in grid))
    brain = radius < 1.0
    waves = sum(np.sin(rng.uniform(4, 12) * g + rng.uniform(0, 6)) for g in grid)
    noise = rng.normal(0, 8, shape).astype(np.float32)
    data = 20 + brain * (400 + 60 * waves) + ((radius > 1.08) & (radius < 1.2)) * 900 + noise
    return np.clip(data, 0, None).astype(np.int16), brain


def phantom_cohort(root: Path, count: int, seed: int = 0) -> pd.DataFrame:
    """Write ``count`` phantom scans (LPS-stored, with BET-style masks) and their scans table."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        shape, spacing = PHANTOM_ACQUISITIONS[i % len(PHANTOM_ACQUISITIONS)]
        data, brain = phantom_volume(shape, spacing, rng)
        affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
        name = f"scan{i:03d}"
        nib.save(nib.Nifti1Image(data, affine), str(root / f"{name}.nii.gz"))
        nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), str(root / f"{name}_mask.nii.gz"))
        rows.append(
            {
                "scan_uid": name,
                "subject_id": f"sub{i:03d}",
                "dataset": "phantom",
                "label": "",
                "modality": "T1w",
                "path": f"{name}.nii.gz",
                "mask_path": f"{name}_mask.nii.gz",
            }
        )
    table = pd.DataFrame(rows)
    table.to_csv(root / "scans.tsv", sep="\t", index=False)
    return table


def make_source(name: str, args: argparse.Namespace, work: Path) -> tuple[Path, pd.DataFrame, str]:
    """(root, scans table, description) of one data source."""
    if name == "cohort":
        return args.cohort, read_scans(args.cohort), f"cohort {args.cohort}"
    root = work / name
    root.mkdir(parents=True, exist_ok=True)
    if name == "demo":
        from neurossl.cohort.synth import generate_cohort  # optional: the demo-cohort module

        generate_cohort(root, CohortConfig(subjects=args.volumes))
        return root, read_scans(root), f"demo cohort ({args.volumes} subjects, 2 mm MNI-derived)"
    return (
        root,
        phantom_cohort(root, args.volumes),
        "phantoms (1 mm 176x256x256 MPRAGE-like, 0.94x0.94x3 mm FLAIR-like)",
    )


def default_sources(args: argparse.Namespace) -> list[str]:
    if args.cohort is not None:
        return ["cohort"]
    if args.sources:
        return args.sources
    return ["phantom", "demo"] if importlib.util.find_spec("neurossl.cohort.synth") else ["phantom"]


def volumes_per_second(dataset, workers: int, passes: int) -> float:
    """Best items/s over ``passes`` passes through one DataLoader (batch 1).

    One loader for all passes, as one long epoch (worker start-up falls in the first pass only, as
    it is amortised over a real epoch of thousands of scans); the best pass is reported because
    the machine may be shared (timeit's rule).
    """
    dataset.set_epoch(0)
    loader = DataLoader(
        dataset, batch_size=1, sampler=list(range(len(dataset))) * passes, num_workers=workers
    )
    stamps = [time.perf_counter()]
    for count, _ in enumerate(loader, start=1):
        if count % len(dataset) == 0:
            stamps.append(time.perf_counter())
    return len(dataset) / float(np.min(np.diff(stamps)))


def folder_mb(paths) -> float:
    """Total size in MB of the files ``paths``."""
    return sum(Path(p).stat().st_size for p in paths) / 1e6


def measure(args, root: Path, entries: pd.DataFrame, cache: Path) -> list[dict]:
    """One row per (size, workers): cached vs NIfTI volumes/s over the same items."""
    augment = AugmentConfig() if args.augment else None
    uids = list(entries["scan_uid"])
    rows = []
    for size in args.sizes:
        crop, depth = (int(v) for v in size.lower().split("x"))
        cfg = PreprocessConfig(crop_size=crop, depth=depth)
        cached = CachedVolumeDataset(cache, uids, train=True, preprocess=cfg, augment=augment)
        nifti = NiftiVolumeDataset(entries, root, train=True, preprocess=cfg, augment=augment)
        for workers in args.workers:
            fast = volumes_per_second(cached, workers, args.passes)
            slow = volumes_per_second(nifti, workers, args.passes)
            rows.append(
                dict(
                    crop=crop,
                    depth=depth,
                    workers=workers,
                    cached_vol_s=fast,
                    nifti_vol_s=slow,
                    speedup=fast / slow,
                )
            )
            print(
                f"  {size} workers={workers}: cached {fast:.1f}/s, NIfTI {slow:.2f}/s", flush=True
            )
    return rows


def source_note(
    name: str, description: str, root: Path, index: pd.DataFrame, build_s: float
) -> str:
    """One Markdown line on a source: its volumes, the cache build and sizes on disk."""
    ok = index["status"] == "ok"
    actions = index["action"].value_counts()
    nifti_mb = folder_mb(root / p for p in index.loc[ok, "path"])
    cache_mb = folder_mb(root.parent / f"{name}-cache" / f for f in index.loc[ok, "file"])
    return (
        f"**{name}**: {description}; {int(ok.sum())} scans, NIfTI {nifti_mb:.0f} MB; cache build "
        f"(deterministic stage, once): {build_s:.1f} s ({actions.get('computed', 0)} computed, "
        f"{actions.get('skipped', 0)} skipped, {actions.get('failed', 0)} failed), "
        f"cache {cache_mb:.0f} MB (float16)"
    )


def run_source(name: str, args: argparse.Namespace, work: Path) -> tuple[list[dict], str]:
    """Build the cache (timed) and measure both loaders on one source; rows and a note."""
    root, entries, description = make_source(name, args, work)
    entries = entries.head(args.limit).reset_index(drop=True)
    cache = work / f"{name}-cache"
    start = time.perf_counter()
    index = build_cache(entries, root, cache, PreprocessConfig())
    build_s = time.perf_counter() - start
    ok = (index["status"] == "ok").to_numpy()
    rows = [dict(data=name, **row) for row in measure(args, root, entries[ok], cache)]
    return rows, source_note(name, description, root, index, build_s)


def markdown(rows: list[dict], notes: list[str]) -> str:
    """The results as a Markdown page: notes, then one table row per measurement."""
    lines = [
        "| data | output D x H x W | workers | cached (vol/s) | NIfTI (vol/s) | speed-up |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['data']} | {r['depth']} x {r['crop']} x {r['crop']} | {r['workers']} | "
        f"{r['cached_vol_s']:.1f} | {r['nifti_vol_s']:.2f} | {r['speedup']:.1f}x |"
        for r in rows
    ]
    return "\n".join(["# Loader benchmark", "", *[f"- {n}" for n in notes], "", *lines, ""])


def run_notes(args: argparse.Namespace) -> list[str]:
    """How each number was measured, and on what."""
    return [
        f"each measurement: the best of {args.passes} passes over the scans above through one "
        f"DataLoader, batch 1, training mode (random slice axis + crop offset), augmentations "
        f"{'on' if args.augment else 'off'}; both loaders run the same per-item code, the NIfTI "
        "one also re-runs the deterministic stage (read scan + mask, reorient, crop, clip, "
        "z-score) for every item",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), torch {torch.__version__}"
        f" ({torch.get_num_threads()} thread(s) in the main process), Python "
        f"{platform.python_version()}",
    ]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)  # workers=0 loads like one worker would
    work = args.work or Path(tempfile.mkdtemp(prefix="neurossl-bench-"))
    rows, notes = [], []
    for name in default_sources(args):
        source_rows, note = run_source(name, args, work)
        rows += source_rows
        notes.append(note)
    table = markdown(rows, notes + run_notes(args))
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    pd.DataFrame(rows).round(3).to_csv(args.out.with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()
