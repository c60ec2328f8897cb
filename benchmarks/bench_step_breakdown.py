"""Where a pretraining step's time goes, by kind of operation, against the matmul ceiling.

`bench_pretrain.py` gives one number per step (counted FLOPs / seconds as a share of the dense
matmul ceiling). This script splits the step into three kinds of operator and prices each:

- matmul: ``mm``, ``addmm``, ``bmm`` and convolutions (forward and backward);
- attention: the fused ``scaled_dot_product`` kernels (forward and backward; on CUDA the
  flash, memory-efficient or cuDNN kernels under them);
- other: everything else (LayerNorm, GELU, residual adds, copies, gathers of masked tokens,
  losses, gradient clipping, AdamW, the EMA teacher update).

The step's time is the median wall clock of a few steps; matmul and attention time is the
profiler's self time of those operators over as many more steps (their kernels' time on CUDA),
and "other" is the rest of the step (Python and autograd overhead included; on CUDA also the
time the GPU waits for the next launch). FLOPs per kind come from
``FlopCounterMode`` (the same counts as `bench_pretrain.py`). The last column is the best share of
the ceiling a step could reach if every "other" operator took no time at all, with matmuls and
attention at their measured speed: a target above it needs faster kernels, not less overhead.

    python benchmarks/bench_step_breakdown.py --objectives mae,jepa --threads 2
    python benchmarks/bench_step_breakdown.py --device cuda --shape paper

Prints a Markdown table and writes it to ``benchmarks/results/step_breakdown_<device>.md``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from bench_pretrain import (CPU_ATTENTION_FLOPS, RESULTS, make_trainer, matmul_ceiling, setup,
                            synchronize)
from neurossl.config import load_config
from neurossl.train.distributed import DistEnv

KINDS = ("matmul", "attention", "other")
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::convolution",
              "aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution",
              "aten::cudnn_convolution")
ATTENTION_OPS = ("scaled_dot_product", "flash_attention", "efficient_attention", "cudnn_attention")


def kind_of(op_name: str) -> str:
    """``matmul``, ``attention`` or ``other`` for an aten operator as the profiler names it
    (``aten::mm``) or as FlopCounterMode does (``aten.mm``)."""
    name = op_name.replace("aten.", "aten::", 1) if op_name.startswith("aten.") else op_name
    if any(op in name for op in ATTENTION_OPS):
        return "attention"
    return "matmul" if name in MATMUL_OPS else "other"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--objectives", default="mae,jepa", help="comma-separated")
    parser.add_argument("--shape", default="demo", help="profile whose shapes are used")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/step_breakdown_<device>.md")
    return parser.parse_args()


def flops_by_kind(trainer, batches) -> dict[str, float]:
    """FLOPs of one training step per kind (attention and matmul; ``other`` is not counted)."""
    counter = FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)
    with counter:
        trainer.train_step(batches)
    totals = defaultdict(float)
    for op, flops in counter.get_flop_counts()["Global"].items():
        totals[kind_of(str(op))] += flops
    return totals


def seconds_by_kind(trainer, batches, steps: int) -> dict[str, float]:
    """Seconds per step: ``step`` (wall clock, median, no profiler), and the profiler's self
    time of the matmul and attention operators (their kernels' on CUDA); ``other`` is the
    step's remainder."""
    device = trainer.env.device
    walls = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        trainer.train_step(batches)
        synchronize(device)
        walls.append(time.perf_counter() - start)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step(batches)
        synchronize(device)
    totals = defaultdict(float, step=statistics.median(walls))
    for event in prof.key_averages():
        kind = kind_of(event.key)
        if event.key.startswith("aten::") and kind != "other":
            us = event.self_device_time_total if cuda else event.self_cpu_time_total
            totals[kind] += us / 1e6 / steps
    totals["other"] = max(0.0, totals["step"] - totals["matmul"] - totals["attention"])
    return totals


def breakdown(name: str, shape: str, env: DistEnv, steps: int, ceiling: float) -> dict:
    """One row: seconds, share of the step and FLOP/s as a share of ``ceiling``, per kind."""
    cfg = load_config(shape, objective=name)
    trainer, batch, _ = make_trainer(cfg, name, env)
    trainer.position.step = trainer.warmup_steps + 1  # past the warm-up: the full learning rate
    batches = itertools.repeat(batch)
    flops = flops_by_kind(trainer, batches)  # also the first warm-up step
    trainer.train_step(batches)
    seconds = seconds_by_kind(trainer, batches, steps)
    step = seconds["step"]
    row = {"objective": name, "shape": shape, "s_step": step,
           "of_ceiling": sum(flops.values()) / step / ceiling,
           "bound_other_free": sum(flops.values()) / (seconds["matmul"] + seconds["attention"]) / ceiling}
    for kind in KINDS:
        row[f"{kind}_s"] = seconds[kind]
        row[f"{kind}_gflop"] = flops[kind] / 1e9
        row[f"{kind}_of_ceiling"] = flops[kind] / seconds[kind] / ceiling if flops[kind] else None
    return row


def table(rows: list[dict]) -> list[str]:
    lines = ["| shape | objective | s / step | matmul: s, GFLOP, of ceiling | attention: s, "
             "GFLOP, of ceiling | other: s (share) | step of ceiling | bound if other took 0 s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cell = [f"{r[f'{k}_s']:.3f} s, {r[f'{k}_gflop']:.1f}, {r[f'{k}_of_ceiling']:.0%}"
                if r[f"{k}_of_ceiling"] is not None else f"{r[f'{k}_s']:.3f} s, 0, -"
                for k in ("matmul", "attention")]
        lines.append(f"| {r['shape']} | {r['objective']} | {r['s_step']:.3f} | {cell[0]} | {cell[1]} | "
                     f"{r['other_s']:.3f} ({r['other_s'] / r['s_step']:.0%}) | {r['of_ceiling']:.0%} | "
                     f"{r['bound_other_free']:.0%} |")
    return lines


def main() -> None:
    args = parse_args()
    device, env, names = setup(args)
    ceiling = matmul_ceiling(device)
    rows = []
    for name in names:
        print(f"  {args.shape} {name}", flush=True)
        rows.append(breakdown(name, args.shape, env, args.steps, ceiling))
        ceiling = max(ceiling, matmul_ceiling(device))
    page = "\n".join([
        f"# Pretraining step breakdown ({device.type})", "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} thread(s)), {date.today().isoformat()}; ceiling: dense "
        f"2048^2 float32 torch.mm (bf16 8192^2 on CUDA), best of 10 = {ceiling / 1e12:.3g} TFLOP/s",
        f"- time: a step is the median wall clock of {args.steps} steps after one warm-up step; "
        f"matmul and attention are the profiler's self time of those operators over {args.steps} "
        "more steps (on CUDA the self time of their kernels; profiling adds a little to each); "
        "other = step - matmul - attention; "
        "FLOPs: FlopCounterMode, as `bench_pretrain.py`; \"other\" does no counted FLOPs",
        "- of ceiling: a kind's FLOPs / its seconds / the ceiling; the bound: every counted FLOP "
        "at the measured matmul and attention speed and no time in \"other\"", "",
        *table(rows), "",
    ])
    out = args.out or RESULTS / f"step_breakdown_{device.type}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    print(page)


if __name__ == "__main__":
    main()
