"""Notebook 05's MAE vs SL-MAE high-frequency comparison on volumes the notebook does not use.

Notebook 05 compares the two reconstructions on the first ``--skip`` downstream T1w volumes (by
id) of each dataset. This script takes the next ``--per-dataset`` of each dataset, reconstructs
them with the same runs under the same mask seed, and prints the mosaics' and the masked
tubelets' high-frequency shares (:func:`neurossl.analysis.summaries.tubelet_hf_summary`): a
second look at a result first seen on the notebook's volumes.

    python benchmarks/bench_tubelet_hf.py --data runs/demo --splits splits/demo --per-dataset 12 \\
        --out tubelet_hf.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neurossl.analysis.features import exported_encoders
from neurossl.analysis.spectral_energy import compare_reconstructions, split_scans
from neurossl.analysis.summaries import tubelet_hf_summary
from neurossl.config import load_config
from neurossl.data.dataset import CachedVolumeDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="run folder: cache/, pretrain/mae, pretrain/slmae")
    ap.add_argument("--splits", required=True)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--skip", type=int, default=4, help="volumes per dataset the notebook uses")
    ap.add_argument("--per-dataset", type=int, default=12)
    ap.add_argument("--out")
    args = ap.parse_args()
    cfg = load_config(args.profile)
    cache = Path(args.data) / "cache"
    scans = split_scans(cache, args.splits)
    items = CachedVolumeDataset(cache, scans["scan_uid"].tolist(), train=False, preprocess=cfg.preprocess)
    runs = exported_encoders(args.data, ["mae", "slmae"])
    # the notebook's volumes leave the table; the rest keep their rows of `items`
    seen = scans[scans["downstream"] & (scans["modality"] == "T1w")].groupby("dataset").head(args.skip)
    comparison = compare_reconstructions(runs, items, scans.drop(seen.index), cfg.objective.spectral_cutoff,
                                         per_dataset=args.per_dataset)
    if comparison is None:
        raise SystemExit(f"{args.data}: needs both pretrain/mae and pretrain/slmae")
    hf = comparison.hf
    print(hf.round(4).to_markdown())
    print()
    print(tubelet_hf_summary(hf))
    if args.out:
        hf.to_csv(args.out)


if __name__ == "__main__":
    main()
