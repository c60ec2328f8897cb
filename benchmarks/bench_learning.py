"""Validation learning curves of one objective's demo recipe: each learning check vs step.

Trains ``--objective`` with the demo profile (plus ``--set`` overrides) on the pretraining pool
minus a fixed validation set, and every ``--eval-every`` steps scores the validation volumes with
:func:`neurossl.analysis.learning.objective_rows` (the model beside its trivial baseline) and the
token-rank collapse check against the random twin. The validation set is the ``--val`` scans of
the pretraining pool with the smallest SHA-1 of their ``scan_uid``: fixed, not chosen by result,
and never a downstream partition.

    OMP_NUM_THREADS=1 python benchmarks/bench_learning.py --cache C --splits S --objective mae \\
        --steps 200 --eval-every 25 --tag l2 --set objective.loss_p=2 --out curves.csv
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import pandas as pd
import torch

from neurossl.analysis.learning import objective_rows, random_twin, rank_row
from neurossl.config import load_config
from neurossl.data.cache import read_index
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.objectives import build_objective
from neurossl.train.distributed import init_distributed
from neurossl.train.pretrain import pretraining_scans
from neurossl.train.trainer import Trainer


def split_validation(uids: list[str], n: int) -> tuple[list[str], list[str]]:
    """``(train, validation)``: the ``n`` scans with the smallest SHA-1 of their id validate."""
    ranked = sorted(uids, key=lambda u: hashlib.sha1(u.encode()).hexdigest())
    val = set(ranked[:n])
    return [u for u in uids if u not in val], sorted(val)


def stack(dataset: CachedVolumeDataset) -> dict:
    items = [dataset[i] for i in range(len(dataset))]
    return {"image": torch.stack([it["image"] for it in items]),
            "modality": [it["modality"] for it in items]}


@torch.no_grad()
def score(objective, twin, val: dict, p: float, batch_size: int) -> list[dict]:
    """Every check on the validation batch, in eval mode (the objective's mode is restored)."""
    objective.eval()
    rows = objective_rows(objective, val, p, seed=0, batch_size=batch_size)
    kwargs = objective.monitor_kwargs(val) if getattr(objective, "modalities", ()) else {}
    tokens, twin_tokens = objective.encoder()(val["image"], **kwargs), twin(val["image"], **kwargs)
    rows.append(rank_row(objective.name, tokens, twin_tokens))
    rows.append(rank_row(objective.name, tokens, twin_tokens, centre=True))
    objective.train()
    return rows


def summarise(csv: str | Path) -> str:
    """Markdown of a curves CSV: per objective and recipe (tag), each check's model and trivial
    value at every evaluated step."""
    frame = pd.read_csv(csv)
    lines = []
    for (objective, tag), group in frame.groupby(["objective", "tag"], sort=False):
        lines += [f"### {objective} [{tag}]", "",
                  "| step | train s | train loss | check | model | trivial | passed |",
                  "|---:|---:|---:|---|---:|---:|---|"]
        for r in group.itertuples():
            lines.append(f"| {r.step} | {r.train_s:.0f} | {r.train_loss:.4f} | {r.check} | "
                         f"{r.model:.4f} | {r.trivial:.4f} | {r.passed} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summarise", metavar="CSV", help="print a curves CSV as Markdown and stop")
    ap.add_argument("--cache")
    ap.add_argument("--splits")
    ap.add_argument("--objective")
    ap.add_argument("--steps", type=int, default=0, help="0 = the recipe's own epochs")
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--val", type=int, default=16)
    ap.add_argument("--tag", default="demo")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--run-dir", default="runs/bench_learning", help="scratch run folder (under the ignored runs/)")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.summarise:
        print(summarise(args.summarise))
        return
    if not (args.cache and args.splits and args.objective):
        ap.error("--cache, --splits and --objective are required for a run")
    torch.set_num_threads(1)

    overrides = ["train.num_workers=1", "train.collapse_every=0"] + args.set
    if args.steps:
        overrides.append(f"train.max_steps={args.steps}")
    cfg = load_config("demo", objective=args.objective, overrides=overrides)
    env = init_distributed(cfg.train.device, cfg.train.dist_timeout_s)
    torch.manual_seed(cfg.train.seed)
    uids = pretraining_scans(args.splits, read_index(args.cache), cfg.train.datasets, cfg.train.scan_modalities)
    train_uids, val_uids = split_validation(uids, args.val)
    dataset = CachedVolumeDataset(args.cache, train_uids, train=True, preprocess=cfg.preprocess,
                                  augment=cfg.augment, seed=cfg.train.seed)
    val = stack(CachedVolumeDataset(args.cache, val_uids, train=False, preprocess=cfg.preprocess,
                                    augment=cfg.augment, seed=cfg.train.seed))
    shape = tuple(val["image"].shape[1:])
    objective = build_objective(cfg, shape)
    twin = random_twin(cfg, shape, seed=1)
    torch.manual_seed(cfg.train.seed)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, objective, dataset, run_dir, env)
    batches = trainer.micro_batches()
    records, seconds, loss = [], 0.0, float("nan")
    print(f"{args.objective} [{args.tag}]: {len(train_uids)} training / {len(val_uids)} validation "
          f"scans, {trainer.total_steps} steps")
    while True:
        step = trainer.position.step
        if step % args.eval_every == 0 or step == trainer.total_steps:
            for r in score(objective, twin, val, cfg.objective.loss_p, cfg.optim.batch_size):
                records.append({"tag": args.tag, "step": step, "train_s": round(seconds, 1),
                                "train_loss": loss, **r})
                print(f"  step {step:4d} {seconds:6.0f}s loss {loss:.4f} {r['check']}: "
                      f"model {r['model']:.4f} trivial {r['trivial']:.4f} passed {r['passed']}",
                      flush=True)
        if step >= trainer.total_steps:
            break
        start = time.perf_counter()
        loss = trainer.train_step(batches)["loss"]
        seconds += time.perf_counter() - start
    frame = pd.DataFrame(records)
    out = Path(args.out)
    frame.to_csv(out, mode="a", header=not out.exists(), index=False)


if __name__ == "__main__":
    main()
