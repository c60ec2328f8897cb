"""GPU-hours of the paper's pretraining runs, from measured step rates.

For each objective: the paper profile's epochs over the released ADNI pretraining split, divided
by the volumes per second that ``bench_pretrain.py --device cuda`` measured at the paper's shape
(the training step alone, batch on the device: a loader that keeps up is assumed). The 4-GPU
column divides by 4: linear scaling, an upper bound on speed, since no multi-GPU node has been
measured (``scaling_multi_gpu.md``).

    python benchmarks/paper_run_cost.py                       # reads results/pretrain_cuda.csv
    python benchmarks/paper_run_cost.py --splits ../shared/paper-splits   # count the split

Writes ``benchmarks/results/paper_run_cost.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from neurossl.config import load_config

RESULTS = Path(__file__).resolve().parent / "results"
# Scans of the released ADNI pretraining split (adni_pretrain_ids.csv); --splits recounts them.
ADNI_PRETRAIN_SCANS = 31_347
PRETRAIN_FILE = "adni_pretrain_ids.csv"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=Path, default=RESULTS / "pretrain_cuda.csv")
    parser.add_argument("--splits", type=Path, default=None,
                        help=f"a folder with the released {PRETRAIN_FILE} to count scans from")
    parser.add_argument("--out", type=Path, default=RESULTS / "paper_run_cost.md")
    return parser.parse_args()


def pretrain_scans(splits: Path | None) -> int:
    if splits is None:
        return ADNI_PRETRAIN_SCANS
    path = splits / PRETRAIN_FILE
    if not path.exists():
        raise SystemExit(f"{path}: no such split file")
    return len(pd.read_csv(path))


def cost_table(rates: pd.DataFrame, scans: int, epochs: int) -> pd.DataFrame:
    """One row per objective: its measured volumes / s and GPU-hours on 1 and 4 GPUs.

    ``rates``: rows of ``bench_pretrain.py``'s CSV (``shape, objective, spectral_every, vol_s``).
    """
    paper = rates[rates["shape"] == "paper"].copy()
    paper["objective"] = [o if pd.isna(k) else f"{o} (K={int(k)})"
                          for o, k in zip(paper["objective"], paper["spectral_every"])]
    volumes = scans * epochs
    hours = volumes / paper["vol_s"] / 3600
    return pd.DataFrame({
        "objective": paper["objective"].to_numpy(),
        "volumes / s (1 GPU)": paper["vol_s"].round(2).to_numpy(),
        "GPU-hours, 1 GPU": hours.round(1).to_numpy(),
        "wall hours, 4 GPUs at linear scaling": (hours / 4).round(1).to_numpy(),
    })


def main() -> None:
    args = parse_args()
    rates = pd.read_csv(args.rates)
    scans = pretrain_scans(args.splits)
    epochs = load_config("paper").optim.epochs
    table = cost_table(rates, scans, epochs)
    header = (f"# Cost of the paper's pretraining runs\n\n"
              f"- {epochs} epochs (the `paper` profile) x {scans:,} scans (the released ADNI "
              f"pretraining split) = {scans * epochs:,} volumes per run\n"
              f"- rates: `{args.rates.name}`, the paper shape (160^3, ViT-B, batch 8, bf16), "
              "the training step alone with the batch on the device; a loader that keeps up is "
              "assumed (see `gpu_checks_h200.md` for the loader's own rate)\n"
              "- 4 GPUs: not measured (no multi-GPU node); the column divides by 4, the best "
              "that data parallelism can do\n\n")
    args.out.write_text(header + table.to_markdown(index=False) + "\n")
    print(header + table.to_markdown(index=False))


if __name__ == "__main__":
    main()
