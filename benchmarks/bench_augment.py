"""Where to augment: per item in the loader workers, or per batch on the training device.

For each output size, on phantom scans cached as training uses them (1 mm MPRAGE-like and thick
FLAIR-like volumes, ``bench_loader.py``'s phantoms):

- a loader item's cost on one CPU core, augmented in the worker (``augment.on_device: false``)
  and with only its parameters drawn (``on_device: true``; the crop and the draws);
- the batched augmentation of ``--batch`` such items on ``--device`` (``batch_to_device``'s work
  with ``on_device``), per batch and per volume;
- the volumes per second one worker then feeds.

    python benchmarks/bench_augment.py                      # CPU, 64^3 / 128^3 / 160^3
    python benchmarks/bench_augment.py --device cuda        # on a GPU node

Prints a Markdown table and writes it to ``--out`` (default ``benchmarks/results/augment_<device>.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from bench_loader import phantom_cohort
from neurossl.config import AugmentConfig, PreprocessConfig
from neurossl.data.cache import build_cache
from neurossl.data.dataset import CachedVolumeDataset, batch_to_device

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 160], help="crop = depth")
    parser.add_argument("--scans", type=int, default=4, help="phantom scans cached")
    parser.add_argument("--items", type=int, default=16, help="items timed per mode")
    parser.add_argument("--batch", type=int, default=8, help="volumes per on-device batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a loader worker uses 1)")
    parser.add_argument("--work", type=Path, help="where the phantoms and cache go (default: temp)")
    parser.add_argument("--out", type=Path, help="the Markdown page (default: results/augment_<device>.md)")
    return parser.parse_args()


def item_seconds(dataset: CachedVolumeDataset, items: int) -> float:
    """Median seconds of one ``dataset[i]`` in this process (what one worker pays per item)."""
    times = []
    for i in range(items):
        start = time.perf_counter()
        dataset[i % len(dataset)]
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def batch_seconds(dataset: CachedVolumeDataset, batch: int, device: torch.device, repeats: int = 5) -> float:
    """Median seconds of ``batch_to_device`` on a collated batch of ``batch`` deferred items."""
    collated = default_collate([dataset[i % len(dataset)] for i in range(batch)])
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        batch_to_device(collated, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def measure(cache: Path, size: int, args: argparse.Namespace, device: torch.device) -> dict:
    """One row: per-item costs of both modes and the batched on-device cost at ``size``^3."""
    cfg = PreprocessConfig(crop_size=size, depth=size)
    in_loader, on_device = (CachedVolumeDataset(cache, train=True, preprocess=cfg, seed=1,
                                                augment=AugmentConfig(on_device=flag))
                            for flag in (False, True))
    loader_s = item_seconds(in_loader, args.items)
    deferred_s = item_seconds(on_device, args.items)
    batch_s = batch_seconds(on_device, args.batch, device)
    return dict(size=size, loader_s=loader_s, deferred_s=deferred_s, batch_s=batch_s,
                per_volume_s=batch_s / args.batch)


def markdown(rows: list[dict], args: argparse.Namespace, device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    notes = [
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); device {device} ({name}); {time.strftime('%Y-%m-%d')}",
        f"items: {args.scans} phantom scans (bench_loader.py) in a float16 cache, training mode; "
        f"a loader item is the median of {args.items} `dataset[i]` calls in one process (one "
        "worker's cost); a device batch is the median of 5 `batch_to_device` calls on "
        f"{args.batch} collated deferred items (includes the host-to-device copy)",
        "with `on_device` a worker crops and draws the parameters; the affine, bias field, "
        "contrast and noise run on the batch's device, with the same result (tests/test_augment.py)",
    ]
    lines = ["| D x H x W | loader item, augmented (s) | loader item, on_device (s) | "
             "vol/s per worker: augmented / on_device | device batch (s) | device s / volume |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['size']}^3 | {r['loader_s']:.4f} | {r['deferred_s']:.4f} | "
              f"{1 / r['loader_s']:.1f} / {1 / r['deferred_s']:.1f} | {r['batch_s']:.4f} | "
              f"{r['per_volume_s']:.4f} |" for r in rows]
    reading = [f"- {r['size']}^3: the augmentation itself costs a worker "
               f"{r['loader_s'] - r['deferred_s']:.4f} s per item and {device.type} "
               f"{r['per_volume_s']:.4f} s per volume of a batch" for r in rows]
    if device.type == "cpu":
        reading.append("- on a CPU the batch is not cheaper per volume (its sampling grid alone is "
                       "batch x D x H x W x 3 floats, past the caches) and it runs in the training "
                       "process rather than in parallel workers: CPU runs keep `on_device` off")
    return "\n".join([f"# Augmentation: loader workers vs the training device ({device.type})", "",
                      *[f"- {n}" for n in notes], "", *lines, "", "## Reading", "", *reading, ""])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    work = args.work or Path(tempfile.mkdtemp(prefix="neurossl-augment-"))
    root = work / "phantom"
    root.mkdir(parents=True, exist_ok=True)
    entries = phantom_cohort(root, args.scans)
    build_cache(entries, root, work / "cache", PreprocessConfig())
    rows = []
    for size in args.sizes:
        rows.append(measure(work / "cache", size, args, device))
        print(f"  {size}^3: {rows[-1]}", flush=True)
    page = markdown(rows, args, device)
    print(page)
    out = args.out or RESULTS / f"augment_{device.type}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)


if __name__ == "__main__":
    main()
