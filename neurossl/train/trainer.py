"""The one training loop: every objective, one process or many (``torchrun``), CPU or GPU.

The transformer blocks may first be set to recompute their activations in backward and be
compiled (``train.activation_checkpointing``, ``train.compile``: :mod:`neurossl.train.blocks`).
Per optimiser step: ``accum_steps`` micro-batches -> objective losses -> backward (DDP syncs on
the last micro-batch) -> NaN/Inf guard -> clip -> schedules -> AdamW -> ``objective.after_step``
(EMA). Checkpoints are atomic and hold everything exact resume needs: model and teacher,
optimiser, RNG states and the sampler position.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from neurossl.config import Config, to_dict
from neurossl.data.dataset import batch_to_device
from neurossl.objectives.base import Objective, StepInfo
from neurossl.progress import tqdm
from neurossl.train import checkpoint as ckpt
from neurossl.train.blocks import checkpoint_blocks, compile_blocks
from neurossl.train.distributed import DistEnv, broadcast_from_main
from neurossl.train.host_memory import retain_on_cpu
from neurossl.train.optim import apply_schedules, build_optimizer
from neurossl.train.sampler import ResumableSampler


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the message names the step and the loss term."""


@dataclass
class Position:
    """How far the run is: optimiser steps done, current epoch, micro-batches done in it."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0


def step_generator(seed: int, step: int, micro: int) -> torch.Generator:
    """The generator for one micro-batch, a pure function of (seed, step, micro)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + micro)


def check_finite(losses: dict[str, torch.Tensor], step: int) -> None:
    """Stop with a clear message when any loss term is NaN or Inf."""
    for name, value in losses.items():
        if not torch.isfinite(value.detach()).all():
            raise TrainingDiverged(
                f"step {step}: loss term '{name}' is {value.detach().float().item()}; "
                "stopping (the last good checkpoint is kept)"
            )


class Trainer:
    """Runs ``objective`` over ``dataset`` as ``cfg`` says, writing into ``run_dir``."""

    def __init__(self, cfg: Config, objective: Objective, dataset: Dataset, run_dir: str | Path,
                 env: DistEnv):
        self.cfg, self.env, self.dataset = cfg, env, dataset
        self.run_dir = Path(run_dir)
        retain_on_cpu(env.device, cfg.train.retain_host_memory)
        self.objective = objective.to(env.device)
        checkpoint_blocks(self.objective, cfg.train.activation_checkpointing)
        self.compiled_blocks = compile_blocks(self.objective, cfg.train.compile)
        device_ids = [env.device] if env.device.type == "cuda" else None
        self.model = (DistributedDataParallel(self.objective, device_ids=device_ids)
                      if dist.is_initialized() else self.objective)
        self.optimizer = build_optimizer(self.objective, cfg.optim)
        self.sampler = ResumableSampler(len(dataset), cfg.optim.batch_size, cfg.train.seed,
                                        env.rank, env.world_size)
        accum = cfg.optim.accum_steps
        self.steps_per_epoch = max(1, self.sampler.batches_per_epoch // accum)
        self.total_steps = cfg.train.max_steps or cfg.optim.epochs * self.steps_per_epoch
        self.warmup_steps = int(cfg.optim.warmup_epochs * self.steps_per_epoch)
        self.position = Position()
        self.last_batch: dict = {}
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if env.device.type == "cuda" else nullcontext()
        )

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Everything exact resume needs."""
        return {
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "position": vars(self.position).copy(),
            "rng": ckpt.rng_state(),
            "config_profile": self.cfg.profile,
            "config": to_dict(self.cfg),  # the resolved settings the run was trained with
            "layout": self.layout(),
        }

    @property
    def global_batch(self) -> int:
        """Volumes per optimiser step over all processes (DDP averages their gradients)."""
        layout = self.layout()
        return layout["world_size"] * layout["batch_size"] * layout["accum_steps"]

    def layout(self) -> dict[str, int]:
        """Processes x volumes per process and micro-batch x micro-batches per optimiser step;
        their product is the global batch."""
        return {"world_size": self.env.world_size, "batch_size": self.cfg.optim.batch_size,
                "accum_steps": self.cfg.optim.accum_steps}

    def save(self) -> Path | None:
        """Atomic step checkpoint (main process only)."""
        if not self.env.is_main:
            return None
        folder = self.run_dir / "checkpoints"
        return ckpt.save_step_checkpoint(self.state_dict(), folder, self.position.step,
                                         self.cfg.train.keep_checkpoints)

    def resume(self) -> bool:
        """Restore the newest checkpoint of ``run_dir``; False when there is none.

        Rank 0 picks the file and every rank loads that one: a node whose view of shared storage
        lags would otherwise pick an older one and train on weights the others do not hold.
        """
        folder = self.run_dir / "checkpoints"
        latest = ckpt.latest_checkpoint(folder) if self.env.is_main else None
        name = broadcast_from_main(latest.name if latest is not None else None)
        if name is None:
            return False
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"rank {self.env.rank}: {folder / name}, rank 0's newest checkpoint, is not visible "
                "here; on several nodes the run folder must be on storage every node shares")
        state = ckpt.load_checkpoint(folder / name)
        saved = state.get("layout", self.layout())  # checkpoints before the layout was recorded
        if saved != self.layout():
            raise ValueError(
                f"{folder / name} was written with {saved}, this run has {self.layout()}: its "
                "data position counts micro-batches of that layout. Resume with the same number "
                "of processes (nodes x GPUs), optim.batch_size and optim.accum_steps, or start a "
                "new run folder")
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.position = Position(**state["position"])
        ckpt.set_rng_state(state["rng"])
        return True

    # ----------------------------------------------------------------- data
    def micro_batches(self):
        """Yield micro-batches forever, epoch after epoch, starting at ``self.position``."""
        pos = self.position
        while True:
            self.sampler.set_position(pos.epoch, pos.batches_done)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(pos.epoch)
            loader = DataLoader(self.dataset, batch_size=self.cfg.optim.batch_size, sampler=self.sampler,
                                num_workers=self.cfg.train.num_workers, drop_last=True,
                                pin_memory=self.env.device.type == "cuda")
            for batch in loader:
                yield batch
            pos.epoch, pos.batches_done = pos.epoch + 1, 0

    def to_device(self, batch: dict) -> dict:
        """Tensors of ``batch`` on the training device (augmented there with
        ``augment.on_device``); other fields unchanged."""
        return batch_to_device(batch, self.env.device)

    # ----------------------------------------------------------------- one step
    def info(self, micro: int) -> StepInfo:
        """The :class:`StepInfo` of the current optimiser step and micro-batch."""
        step = self.position.step
        return StepInfo(step, step / self.steps_per_epoch, self.total_steps,
                        step_generator(self.cfg.train.seed, step, micro), self.env.rank,
                        self.env.world_size)

    def train_step(self, batches) -> dict[str, float]:
        """One optimiser step over ``accum_steps`` micro-batches; returns logged scalars."""
        accum = self.cfg.optim.accum_steps
        totals: dict[str, float] = {}
        for micro in range(accum):
            batch = self.to_device(next(batches))
            last = micro == accum - 1
            wrapped = self.model is not self.objective  # DDP: sync gradients on the last only
            sync = self.model.no_sync() if wrapped and not last else nullcontext()
            with sync:
                with self.autocast:
                    losses = self.model(batch, self.info(micro))
                check_finite(losses, self.position.step)
                (losses["loss"] / accum).backward()
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) / accum
            self.position.batches_done += 1
        self.last_batch = batch
        totals.update(self.clip_gradients())
        lr, wd = apply_schedules(self.optimizer, self.cfg.optim, self.position.step, self.total_steps,
                                 self.warmup_steps)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.objective.after_step(self.info(accum - 1))
        self.position.step += 1
        return {**totals, "lr": lr, "wd": wd}

    def clip_gradients(self) -> dict[str, float]:
        """Gradient-norm clipping by ``optim.grad_clip_rule``; returns the norms before clipping.

        ``global``: one norm over every trained parameter, from the first step. ``official`` (the
        release's ``app/mae/train.py`` and ``app/vjepa/train.py``): the encoder and the other
        networks (decoder / predictor / heads) are clipped separately, and only once warm-up is
        over.
        """
        o = self.cfg.optim
        if o.grad_clip <= 0:
            return {}
        if o.grad_clip_rule == "global":
            return {"grad_norm": float(torch.nn.utils.clip_grad_norm_(self.objective.parameters(), o.grad_clip))}
        if self.position.step < self.warmup_steps:
            return {}
        encoder = {id(p) for p in self.objective.student.parameters()}
        others = [p for p in self.objective.parameters() if p.requires_grad and id(p) not in encoder]
        norms = {"grad_norm_encoder": torch.nn.utils.clip_grad_norm_(self.objective.student.parameters(), o.grad_clip)}
        if others:
            norms["grad_norm_head"] = torch.nn.utils.clip_grad_norm_(others, o.grad_clip)
        return {k: float(v) for k, v in norms.items()}

    # ----------------------------------------------------------------- the loop
    def fit(self) -> dict[str, float]:
        """Train until ``total_steps``; returns the last logged metrics."""
        cfg = self.cfg.train
        batches = self.micro_batches()
        bar = tqdm(total=self.total_steps, initial=self.position.step, disable=not self.env.is_main,
                   desc=f"pretrain {self.objective.name}", unit="step")
        log_path = self.run_dir / "metrics.jsonl"
        metrics: dict[str, float] = {}
        samples = self.global_batch
        while self.position.step < self.total_steps:
            start = time.perf_counter()
            metrics = self.train_step(batches)
            metrics["volumes_per_s"] = samples / (time.perf_counter() - start)
            step = self.position.step
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}",
                            vol_s=f"{metrics['volumes_per_s']:.1f}")
            if self.env.is_main and (step % cfg.log_every == 0 or step == self.total_steps):
                record = {"step": step, "epoch": round(step / self.steps_per_epoch, 4), **metrics}
                if cfg.collapse_every and step % cfg.collapse_every == 0:
                    # the batch just trained on: drawing a fresh one would shift the data stream
                    record.update(self.objective.monitor(self.last_batch))
                with log_path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
            if step % cfg.checkpoint_every == 0 or step == self.total_steps:
                self.save()
        bar.close()
        return metrics


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The JSONL metrics log of a run, one record per step in step order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # a run resumed from a checkpoint re-logs the steps after it: the later record wins
    by_step = {r["step"]: r for r in records}
    return [by_step[step] for step in sorted(by_step)]


def loss_fell(records: list[dict], key: str = "loss", window: int = 3) -> bool:
    """True when the mean of the last ``window`` logged values is below the first ``window``'s.

    A trend of the log only, NOT evidence of learning: a loss also falls from random
    initialisation to a trivial solution (zeros, a collapsed embedding, a uniform teacher).
    Learning is judged by :func:`neurossl.analysis.learning.learning_checks`.
    """
    values = [r[key] for r in records if key in r and math.isfinite(r[key])]
    if len(values) < 2 * window:
        return False
    return sum(values[-window:]) / window < sum(values[:window]) / window
