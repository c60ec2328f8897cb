"""How much of a frozen probe's paired cell is its own initialisation? Several probe seeds per cell.

`make demo` trains one frozen attentive probe per (encoder, task, fold) (``evaluate.seeds: [0]``,
the paper's protocol) and compares it with the random twin's on the same test scans
(``paper/tables/tab03_paired_vs_random.csv``). On a few hundred training scans the probe's
outcome depends on its initial weights; this script measures by how much. For each task and
encoder (and the random twin of the first), on the run's cache, splits and pretraining runs, it
trains the profile's frozen probe with seeds ``0 .. n-1`` (everything else as ``neurossl
evaluate``) and writes, per seed, the paired bootstrap of AUC minus the twin's AUC of the same
seed (:func:`neurossl.evaluate.report.paired_table`, the cells of ``paper/``), and the same for
the mean of the seeds' probabilities per scan (``seed = -1``: an ensemble of the probes), with
the profile's bootstrap resamples; every probe's test predictions go beside, as
``<out stem>_predictions.csv.gz``.

    python benchmarks/bench_probe_seeds.py --run runs/demo --splits splits/demo --seeds 5 \\
        --out probe_seeds.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from neurossl.config import load_config
from neurossl.evaluate.backbones import random_twin, resolve_encoder
from neurossl.evaluate.report import paired_table
from neurossl.evaluate.run import Evaluator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_signal_tokens import demo_run_parser  # noqa: E402

KEYS = ["subject_id", "scan_uid", "y", "encoder", "objective", "task", "mode", "fold"]


def ensemble(predictions: pd.DataFrame) -> pd.DataFrame:
    """The seeds' class probabilities averaged per scan, as a prediction table of seed -1."""
    columns = [c for c in predictions.columns if c.startswith("p") and c[1:].isdigit()]
    mean = predictions.groupby(KEYS, sort=False, dropna=False)[columns].mean().reset_index()
    return mean.assign(seed=-1)


def main() -> None:
    parser = demo_run_parser(__doc__)
    parser.add_argument("--tasks", nargs="+", default=["cognition_nc_vs_ad", "glioma_grade2_vs_34"])
    parser.add_argument("--encoders", nargs="+", default=["mae", "slmae", "jepa", "vcr_jepa"],
                        help="pretraining runs under <run>/pretrain (the twin copies the first)")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.profile, overrides=[f"evaluate.seeds=[{','.join(map(str, range(args.seeds)))}]"])
    evaluator = Evaluator(cfg, args.run / "cache", args.splits)
    specs = {n: resolve_encoder(args.run / "pretrain" / n) for n in args.encoders}
    specs = {"random": random_twin(specs[args.encoders[0]]), **specs}
    tables = [evaluator.run(spec, task, "frozen").prediction_table()
              for task in args.tasks for spec in specs.values()]
    predictions = pd.concat(tables, ignore_index=True)
    both = pd.concat([predictions, ensemble(predictions)], ignore_index=True)
    cells = paired_table(both, reference="random", n_boot=cfg.evaluate.bootstrap)  # as paper/'s cells
    cells.round(4).to_csv(args.out, index=False)
    predictions.to_csv(args.out.with_name(f"{args.out.stem}_predictions.csv.gz"), index=False)
    print(cells[["encoder", "task", "seed", "auc", "auc_reference", "diff", "low", "high"]].round(3).to_string())


if __name__ == "__main__":
    main()
