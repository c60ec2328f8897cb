"""A frozen probe's batch size: seconds per fit and the validation loss it selects, per fold.

Frozen probes train on cached tokens, where a step costs little beyond its overhead, so the
demo can probe with a larger batch than it fine-tunes with (``evaluate.probe_batch_size``).
This script fits the profile's probe (``evaluate.head``, ``probe_epochs``, ``patience``,
``select``) on every fold of ``--task`` for each ``--batch-sizes`` entry, with the encoder of
``--encoder`` (or its random twin, ``--random``), and reports the wall time of the fits and the
validation loss of the epoch each keeps. Only train and validation partitions are read; the
test partition is never scored, so the choice made from it is a validation choice.

    python benchmarks/bench_probe_batch.py --cache runs/demo/cache --splits splits/demo \\
        --encoder runs/demo/pretrain/mae --task cognition_nc_vs_ad --batch-sizes 8,16,32

Prints a Markdown table (append it to ``benchmarks/results/probe_batch_cpu.md`` by hand, with
the commit and the encoder's recipe).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neurossl.config import load_config
from neurossl.evaluate.backbones import TokenClassifier, encoder_heads, random_twin, resolve_encoder
from neurossl.evaluate.fit import fit_classifier
from neurossl.evaluate.heads import build_head
from neurossl.evaluate.run import Evaluator
from neurossl.evaluate.tasks import task_folds
from neurossl.tasks import get_task


def fit_fold(evaluator: Evaluator, spec, task, fold: int, batch_size: int) -> dict:
    """One probe fit on ``fold`` at ``batch_size``: seconds, kept epoch, its validation loss."""
    parts = evaluator.partitions(task, fold, None)
    evaluator.encode(spec, [u for p in ("train", "val") for u in parts[p]["scan_uid"]])
    e = evaluator.cfg.evaluate
    settings = evaluator.settings(spec, task, "frozen", 0, f"fold {fold} batch {batch_size}")
    settings.batch_size = batch_size
    data = {p: evaluator.token_items(spec, parts[p]) for p in ("train", "val")}
    dim = data["train"].tokens.shape[-1]
    torch.manual_seed(0)
    model = TokenClassifier(build_head(e.head, dim, task.num_classes, encoder_heads(spec), e.num_queries))
    start = time.perf_counter()
    out = fit_classifier(model, data["train"], data["val"], parts["train"]["y"].to_numpy(),
                         task.num_classes, settings, evaluator.device)
    return {"seconds": time.perf_counter() - start, **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--splits", required=True)
    ap.add_argument("--encoder", required=True, help="pretraining run folder or encoder .safetensors")
    ap.add_argument("--random", action="store_true", help="probe the encoder's random twin instead")
    ap.add_argument("--task", default="cognition_nc_vs_ad")
    ap.add_argument("--batch-sizes", default="8,32")
    ap.add_argument("--profile", default="demo")
    args = ap.parse_args()
    cfg = load_config(args.profile)
    evaluator = Evaluator(cfg, args.cache, args.splits)
    spec = resolve_encoder(args.encoder)
    spec = random_twin(spec) if args.random else spec
    task = get_task(args.task)
    rows = ["| encoder | task | batch | folds | fit seconds (sum) | epochs run (mean) | kept epoch (mean) "
            "| validation loss (mean) | per fold |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    folds = task_folds(task, args.splits)
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        fits = [fit_fold(evaluator, spec, task, fold, batch) for fold in folds]
        losses = [f["best_val_loss"] for f in fits]
        rows.append(f"| {spec.name} | {task.name} | {batch} | {len(fits)} | "
                    f"{sum(f['seconds'] for f in fits):.1f} | {np.mean([f['epochs_run'] for f in fits]):.1f} | "
                    f"{np.mean([f['best_epoch'] for f in fits]):.1f} | {np.mean(losses):.4f} | "
                    f"{' / '.join(f'{x:.3f}' for x in losses)} |")
        print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
