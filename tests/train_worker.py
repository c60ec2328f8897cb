"""A tiny training run used by the trainer tests, in this process or as a subprocess.

``python tests/train_worker.py RUN_DIR OUT [--resume] [--item-delay S] [--device cuda]`` trains
the smoke MAE on deterministic random volumes and saves the final objective state to OUT.
``--objective NAME[:KEY=VALUE,...]`` picks another objective (with overrides of its own); given
more than once, the objectives train one after the other in the same process (and process
group), into ``RUN_DIR/NAME`` with their states saved to ``OUT.NAME``: one start-up for several
short runs.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from neurossl.config import load_config
from neurossl.objectives import build_objective
from neurossl.train.distributed import init_distributed, shutdown_distributed
from neurossl.train.trainer import Trainer

SHAPE = (1, 16, 32, 32)
CONTRASTS = ("T1w", "T2w", "FLAIR")  # what MoE-JEPA's modality embedding reads
OVERRIDES = ["model.tubelet_size=4", "train.max_steps=8", "train.checkpoint_every=2",
             "optim.batch_size=2", "train.num_workers=0", "train.collapse_every=0"]


class RandomVolumes(Dataset):
    """``n`` volumes ``(1, 16, 32, 32)`` of cycling contrasts, each a pure function of its index."""

    def __init__(self, n: int = 16, delay: float = 0.0):
        self.n, self.delay = n, delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if self.delay:
            time.sleep(self.delay)
        g = torch.Generator().manual_seed(1000 + index)
        return {"image": torch.randn(SHAPE, generator=g), "scan_uid": f"vol{index}",
                "modality": CONTRASTS[index % len(CONTRASTS)]}


def make_trainer(run_dir, objective="mae", extra=(), delay=0.0, n=16, device="cpu",
                 steps_per_epoch=None) -> Trainer:
    """A smoke trainer over :class:`RandomVolumes` in ``run_dir`` on ``device``."""
    cfg = load_config("smoke", overrides=[*OVERRIDES, f"objective.name={objective}", *extra])
    torch.manual_seed(cfg.train.seed)
    env = init_distributed(device, cfg.train.dist_timeout_s)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, build_objective(cfg, SHAPE), RandomVolumes(n, delay), run_dir, env,
                   steps_per_epoch)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--item-delay", type=float, default=0.0)
    parser.add_argument("--objective", dest="objectives", action="append", default=[])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", dest="extra", action="append", default=[])
    args = parser.parse_args()
    # a test that finds this worker hung sends SIGUSR1 first: the log then shows where it waits
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    torch.set_num_threads(1)
    specs = args.objectives or ["mae"]
    for spec in specs:
        name, _, sets = spec.partition(":")
        extra = [*args.extra, *filter(None, sets.split(","))]
        alone = len(specs) == 1
        run_dir = args.run_dir if alone else f"{args.run_dir}/{name}"
        out = args.out if alone else f"{args.out}.{name}"
        train_one(run_dir, out, name, extra, args)
    shutdown_distributed(finished=True)
    return 0


def train_one(run_dir: str, out: str, objective: str, extra: list[str], args) -> None:
    """Train (or resume) one objective into ``run_dir``; the main rank saves its state to ``out``."""
    trainer = make_trainer(run_dir, objective, extra, args.item_delay, device=args.device)
    backend = dist.get_backend() if dist.is_initialized() else "none"
    print(f"{objective}: model {type(trainer.model).__name__}, backend {backend}, "
          f"device {trainer.env.device}, compiled blocks {trainer.compiled_blocks}", flush=True)
    if args.resume:
        trainer.resume()
    trainer.fit()
    if trainer.env.is_main:
        torch.save(trainer.objective.state_dict(), out)


if __name__ == "__main__":
    sys.exit(main())
