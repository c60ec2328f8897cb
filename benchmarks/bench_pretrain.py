"""Pretraining step cost of every objective: seconds per step, FLOP/s against the matmul ceiling.

Each objective runs full training steps through ``Trainer.train_step`` itself (forward under the
trainer's autocast, backward, clip, ``apply_schedules``, AdamW, ``after_step``) on random volumes
already on the device, so no data loading is timed. The FLOPs of one step (forward + backward:
matmuls, convolutions, attention) come from ``torch.utils.flop_counter.FlopCounterMode``; the same
run measures the machine's dense matmul ceiling, and SL-MAE's spectral loss is priced against MAE
with the profile's amortisation (``objective.spectral_every`` K) and with K = 1.

    python benchmarks/bench_pretrain.py                               # demo + paper shapes
    python benchmarks/bench_pretrain.py --shapes demo --threads 2     # a CPU in minutes
    python benchmarks/bench_pretrain.py --device cuda --batch-paper 8 --objectives mae,slmae
    python benchmarks/bench_pretrain.py --device cuda --compile inductor   # train.compile
    python benchmarks/bench_pretrain.py --device cuda --set train.activation_checkpointing=true

Prints Markdown tables and writes them to ``benchmarks/results/pretrain_<device>.md``
(+ ``pretrain_<device>.csv``).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from neurossl.config import load_config
from neurossl.models import VisionTransformer3D
from neurossl.objectives import OBJECTIVES, build_objective
from neurossl.runtime.device import resolve_device
from neurossl.train.distributed import DistEnv
from neurossl.train.blocks import compile_blocks
from neurossl.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = ("demo", "paper")  # profile names
STEPS_PER_EPOCH = 100  # the pretend dataset: epoch = step / 100, so a run sits mid-schedule
CONTENDED = 0.9  # a row whose own ceiling is below this share of the run's best is flagged


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma-separated")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated profiles")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps first (>= 1; the first is the FLOP-counted one)")
    parser.add_argument("--spectral-cycles", type=int, default=1,
                        help="SL-MAE: each block times at least this many cycles of K steps "
                             "(0: --steps only)")
    # many short blocks: a shared machine's slow spells last tens of seconds, and a ratio of
    # steps taken blocks apart reads them as spectral cost (2 blocks of 3 cycles: SL-MAE / MAE
    # 0.97-1.06 over 11 runs; 6 blocks of 1 cycle: 1.01-1.04 over 5)
    parser.add_argument("--blocks", type=int, default=6,
                        help="MAE / SL-MAE: blocks of consecutive steps per objective, in turn")
    parser.add_argument("--batch-paper", type=int, default=0,
                        help="paper-shape batch (default: 8 on CUDA, 1 on CPU)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    parser.add_argument("--compile", default="none",
                        help="train.compile: a torch.compile backend for the blocks (default none)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every objective, e.g. train.activation_checkpointing=true")
    parser.add_argument("--note", default="", help="a line for the header (e.g. 'CPU shared')")
    parser.add_argument("--out", type=Path,
                        help="Markdown path (default: benchmarks/results/pretrain_<device>.md)")
    return parser.parse_args()


def setup(args: argparse.Namespace) -> tuple[torch.device, DistEnv, list[str]]:
    """``--threads``, ``--device`` and ``--objectives`` applied: the device, a single-process
    :class:`DistEnv` on it and the objectives to run."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    return device, DistEnv(0, 1, 0, device), objective_names(args.objectives)


def objective_names(text: str) -> list[str]:
    """``"mae,jepa"`` -> ``["mae", "jepa"]``; exits naming any unknown objective."""
    names = [n for n in text.split(",") if n]
    unknown = sorted(set(names) - set(OBJECTIVES))
    if unknown:
        raise SystemExit(f"unknown objectives {unknown}; choose from {', '.join(OBJECTIVES)}")
    return names


# ----------------------------------------------------------------------- FLOPs and the ceiling
def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode knows the CUDA attention kernels; on CPU SDPA runs this fused op instead.
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, repeats: int = 10) -> float:
    """Best dense matmul FLOP/s: float32 2048^2 on CPU, bfloat16 8192^2 on CUDA."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (2048, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = math.inf
    for i in range(repeats + 3):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        if i >= 3:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


# ----------------------------------------------------------------------- one objective
def random_batch(shape: tuple[int, int, int, int], batch: int, modalities,
                 device: torch.device, ct: bool = False) -> dict:
    """Random volumes ``(B, C, D, H, W)`` (z-scored MRI, or with ``ct`` HU windows in [0, 1])
    + contrasts."""
    if ct:
        images = torch.rand(batch, *shape, device=device)
    else:
        images = torch.randn(batch, *shape, device=device)
    return {"image": images, "modality": [modalities[i % len(modalities)] for i in range(batch)]}


def make_trainer(cfg, name: str, env: DistEnv) -> tuple[Trainer, dict, int]:
    """A trainer for objective ``name`` placed mid-run, the batch it repeats, and K."""
    ct = "CT" in cfg.train.scan_modalities  # FM-CT: one channel per HU window
    channels = len(cfg.preprocess.ct_windows) if ct else cfg.model.in_chans
    shape = (channels, cfg.preprocess.depth, cfg.preprocess.crop_size, cfg.preprocess.crop_size)
    torch.manual_seed(0)
    objective = build_objective(cfg, shape)
    batch = cfg.optim.batch_size
    # the trainer never draws from its dataset here: every step repeats the batch returned below
    trainer = Trainer(cfg, objective, [None] * batch, Path(tempfile.gettempdir()), env,
                      steps_per_epoch=STEPS_PER_EPOCH)
    every = cfg.objective.spectral_every if name == "slmae" else 1
    return trainer, random_batch(shape, batch, cfg.objective.embedding_modalities, env.device, ct), every


def counted_step(trainer: Trainer, batches) -> tuple[int, int, int]:
    """One step under FlopCounterMode: (FLOPs, student tokens, teacher tokens) it processed."""
    objective = trainer.objective
    teacher = getattr(objective, "teacher", None)
    tokens = {"student": 0, "teacher": 0}

    def hook(role):
        def count(module, inputs, output):
            tokens[role] += output.shape[0] * output.shape[1]  # (B', K, D)
        return count

    handles = [m.register_forward_hook(hook("teacher" if teacher is not None and m is teacher
                                             else "student"))
               for m in objective.modules() if isinstance(m, VisionTransformer3D)]
    counter = FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)
    with counter:
        trainer.train_step(batches)
    for handle in handles:
        handle.remove()
    return counter.get_total_flops(), tokens["student"], tokens["teacher"]


@dataclass
class Bench:
    """One objective ready to time: its trainer placed at ``timed_start``, the batch it repeats,
    SL-MAE's K (1 otherwise) and the columns measured while warming up."""

    label: str
    trainer: Trainer
    batches: Iterator[dict]
    every: int
    timed_start: int
    row: dict


def prepare(args, shape: str, name: str, env: DistEnv, batch_size: int, every: int) -> Bench:
    """Build ``name`` at ``shape`` (``batch_size`` / ``every`` 0: the profile's), count one
    step's FLOPs and tokens, and run the warm-up steps."""
    # one micro-batch per step: the paper profile's accumulation would time two
    overrides = ["optim.accum_steps=1", *args.overrides]
    overrides += [f"optim.batch_size={batch_size}"] if batch_size else []
    overrides += [f"objective.spectral_every={every}"] if every else []
    cfg = load_config(shape, overrides=overrides, objective=name)
    trainer, batch, every = make_trainer(cfg, name, env)
    label = name + (f" K={every}" if name == "slmae" else "")
    print(f"  {shape} {label}: batch {cfg.optim.batch_size}, {args.warmup} warm-up", flush=True)
    # mid-run: past the spectral start and warm-up epochs, so SL-MAE's term is on at full weight
    o = cfg.objective
    start = (o.spectral_start_epoch + o.spectral_warmup_epochs) * STEPS_PER_EPOCH
    trainer.position.step = math.ceil(start / every) * every  # warm-up begins on a spectral step
    if env.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(env.device)
    batches = itertools.repeat(batch)
    flops, student_tokens, teacher_tokens = counted_step(trainer, batches)
    # compiled after the FLOP-counted step (eager: what FlopCounterMode sees), before the
    # warm-up steps, which then include the compilation
    compile_blocks(trainer.objective, args.compile)
    for _ in range(args.warmup - 1):
        trainer.train_step(batches)
    trainer.position.step = math.ceil(trainer.position.step / every) * every  # a spectral step
    params = list(trainer.objective.parameters())
    row = dict(
        shape=shape, objective=name, spectral_every=every if name == "slmae" else None,
        batch=cfg.optim.batch_size * cfg.optim.accum_steps, channels=batch["image"].shape[1],
        input=" x ".join(map(str, batch["image"].shape[2:])),
        params_trainable_m=sum(p.numel() for p in params if p.requires_grad) / 1e6,
        params_total_m=sum(p.numel() for p in params) / 1e6,
        student_tokens=student_tokens, teacher_tokens=teacher_tokens, gflop_step=flops / 1e9,
        peak_gib=(torch.cuda.max_memory_allocated(env.device) / 2**30
                  if env.device.type == "cuda" else None),
    )
    return Bench(label, trainer, batches, every, trainer.position.step, row)


def time_steps(benches: list[Bench], count: int, blocks: int) -> list[list[float]]:
    """Seconds of ``count`` consecutive steps of each bench per block, the benches' blocks
    taken in turn ``blocks`` times so that a shared machine's load falls on all of them alike
    (device synchronised around each step).

    A run trains one model, step after step, so a block is a run of consecutive steps rather
    than one step of each model in strict alternation (which hands each step the caches and
    heap another model left; on the CPU that measured within noise of stepping alone). Each
    block is led by one untimed step (the one after the switch), and ``count`` is a whole
    number of each bench's K-step cycles starting at a spectral step.
    """
    seconds: list[list[float]] = [[] for _ in benches]
    for block in range(blocks):
        for bench, times in zip(benches, seconds):
            device, position = bench.trainer.env.device, bench.trainer.position
            # the untimed lead-in step is the one before a spectral step
            position.step = bench.timed_start + block * count - 1
            bench.trainer.train_step(bench.batches)
            for _ in range(count):
                synchronize(device)
                begin = time.perf_counter()
                bench.trainer.train_step(bench.batches)
                synchronize(device)
                times.append(time.perf_counter() - begin)
            print(f"    block {block + 1}/{blocks} {bench.label}: "
                  + " ".join(f"{t:.3f}" for t in times[-count:]) + " s", flush=True)
    return seconds


def per_step(seconds: list[float], start: int, every: int, stat=statistics.median) -> float:
    """``stat`` (median, min) of the step times; with K > 1 the amortised ``((K-1) off + on) / K``
    of the steps without and with the spectral term (steps ``start, start + 1, ...``)."""
    on = [s for i, s in enumerate(seconds) if (start + i) % every == 0]
    off = [s for i, s in enumerate(seconds) if (start + i) % every != 0]
    if not off:
        return stat(seconds)
    return ((every - 1) * stat(off) + stat(on)) / every


def finish(bench: Bench, seconds: list[float]) -> dict:
    """The bench's table row: its warm-up columns plus seconds, volumes and FLOP per second."""
    s_step = per_step(seconds, bench.timed_start, bench.every)
    return dict(**bench.row, timed_steps=len(seconds), s_step=s_step,
                seconds=" ".join(f"{t:.4f}" for t in seconds),
                s_best=per_step(seconds, bench.timed_start, bench.every, min),
                vol_s=bench.row["batch"] / s_step, tflop_s=bench.row["gflop_step"] / s_step / 1e3)


def measure(args, shape: str, group: list[tuple[str, int]], env: DistEnv,
            failures: list[str]) -> list[dict]:
    """Rows of a group of ``(objective, K override)`` timed together; at the paper shape the
    batch is halved while the GPU runs out of memory."""
    batch = args.batch_paper if shape == "paper" else 0
    while True:
        benches = []
        try:
            benches = [prepare(args, shape, name, env, batch, every) for name, every in group]
            cycles = [args.spectral_cycles * b.every for b in benches if b.every > 1]
            every = math.lcm(*(b.every for b in benches))
            count = math.ceil(max([args.steps, *cycles]) / every) * every
            seconds = time_steps(benches, count, args.blocks if len(benches) > 1 else 1)
            rows = [finish(b, s) for b, s in zip(benches, seconds)]
            if group[0][0] == "mae":  # SL-MAE / MAE from the pairs of steps taken together
                for row, bench, times in zip(rows[1:], benches[1:], seconds[1:]):
                    ratios = [t / m for t, m in zip(times, seconds[0])]
                    row["ratio_to_mae"] = per_step(ratios, bench.timed_start, bench.every)
            return rows
        except torch.cuda.OutOfMemoryError:
            names = "/".join(dict.fromkeys(name for name, _ in group))
            failures.append(f"{shape} {names}: out of GPU memory at batch {batch or 'default'}")
            print(f"  {failures[-1]}", flush=True)
            if batch == 1:
                return []
            batch = max(1, (batch or 8) // 2)
        finally:
            del benches
            gc.collect()
            if env.device.type == "cuda":
                torch.cuda.empty_cache()


def groups(names: list[str]) -> list[list[tuple[str, int]]]:
    """MAE, SL-MAE (profile K) and SL-MAE (K = 1) form one group, timed in turn; the rest alone."""
    spectral = [("mae", 0)] if "mae" in names else []
    spectral += [("slmae", 0), ("slmae", 1)] if "slmae" in names else []
    rest = [[(name, 0)] for name in names if name not in ("mae", "slmae")]
    return ([spectral] if spectral else []) + rest


# ----------------------------------------------------------------------- the page
def of_ceiling(row: dict, ceiling: float | None = None) -> tuple[float, float]:
    """Achieved / ceiling FLOP/s of a row at its median and at its fastest step; the ceiling
    measured around the row's own steps unless ``ceiling`` (FLOP/s) is given."""
    ceiling = ceiling or row["ceiling_tflop_s"] * 1e12
    flops = row["gflop_step"] * 1e9
    return flops / row["s_step"] / ceiling, flops / row["s_best"] / ceiling


def main_table(rows: list[dict], ceiling: float) -> list[str]:
    """One Markdown row per objective and shape."""
    lines = [
        "| shape | objective | batch | C x D x H x W | params trainable / total (M) | "
        "student tokens / step | teacher tokens / step | GFLOP / step | s / step (best) | "
        "volumes / s | TFLOP/s | ceiling TFLOP/s | of ceiling (best) | of the run's best "
        "ceiling | peak GiB |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = r["objective"] + (f" (K={r['spectral_every']})" if r["spectral_every"] else "")
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        median, best = of_ceiling(r)
        lines.append(
            f"| {r['shape']} | {name} | {r['batch']} | {r['channels']} x {r['input']} | "
            f"{r['params_trainable_m']:.1f} / {r['params_total_m']:.1f} | "
            f"{r['student_tokens']:,} | {r['teacher_tokens']:,} | {r['gflop_step']:,.0f} | "
            f"{r['s_step']:.3f} ({r['s_best']:.3f}) | {r['vol_s']:.2f} | {r['tflop_s']:.3g} | "
            f"{r['ceiling_tflop_s']:.3g} | {median:.0%} ({best:.0%}) | "
            f"{of_ceiling(r, ceiling)[0]:.0%} | {peak} |")
    return lines


def spectral_table(rows: list[dict]) -> list[str]:
    """SL-MAE against MAE per shape: amortised (profile K) and every step (K = 1)."""
    lines = ["| shape | MAE s / step | SL-MAE K | SL-MAE s / step | SL-MAE / MAE |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        if "ratio_to_mae" in r:
            mae = next(m for m in rows if m["shape"] == r["shape"] and m["objective"] == "mae")
            lines.append(f"| {r['shape']} | {mae['s_step']:.3f} | {r['spectral_every']} | "
                         f"{r['s_step']:.3f} | {r['ratio_to_mae']:.3f} |")
    return lines


def verdicts(rows: list[dict], ceiling: float) -> list[str]:
    """Plain statements on the two targets."""
    lines = []
    for r in rows:
        if r["spectral_every"] == 1:
            continue
        fraction, best = of_ceiling(r)
        met = "met" if fraction >= 0.6 else "NOT met"
        local = r["ceiling_tflop_s"] * 1e12 / ceiling
        # a shared machine's slow spells also slow the dense matmul; say so where it shows
        contended = (f" (contended: the matmul ceiling around these steps was {local:.0%} of the "
                     "run's best)" if local < CONTENDED else "")
        lines.append(f"- {r['shape']} {r['objective']}: {fraction:.0%} of the ceiling around its "
                     f"steps (fastest step {best:.0%}; {of_ceiling(r, ceiling)[0]:.0%} of the "
                     f"run's best ceiling): {met}{contended}")
    for r in rows:
        if (r["spectral_every"] or 1) > 1 and "ratio_to_mae" in r:
            met = "met" if r["ratio_to_mae"] <= 1.05 else "NOT met"
            lines.append(f"- {r['shape']} SL-MAE amortised (K={r['spectral_every']}) / MAE = "
                         f"{r['ratio_to_mae']:.3f}: {met}")
    return lines


def header(args, device: torch.device, ceiling: float, load: tuple[float, ...]) -> list[str]:
    """How the numbers were measured, and on what."""
    if device.type == "cuda":
        what = (f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, bf16 autocast "
                "(as the trainer); ceiling: bf16 8192^2 torch.mm, best of 10")
    else:
        what = ("float32 (no autocast, as the trainer on CPU); ceiling: float32 2048^2 torch.mm, "
                "best of 10")
    notes = [
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} CPU thread(s)), Python {platform.python_version()}, "
        f"{date.today().isoformat()}; 1-min load average "
        f"{' -> '.join(f'{v:.1f}' for v in load[::3])} (start -> end)"
        + (f"; {args.note}" if args.note else ""),
        f"device: {what}, measured before and after every objective (its steps are priced "
        "against the better of the two: the speed of a shared or virtual machine drifts over "
        "tens of seconds, and both measurements then drift together); the run's best: "
        f"{ceiling / 1e12:.3g} TFLOP/s",
        f"each row: a fresh objective + `Trainer` placed mid-run (epoch = step / "
        f"{STEPS_PER_EPOCH}, past `spectral_start_epoch + spectral_warmup_epochs`), repeating "
        f"one random batch already on the device (no data loading); {args.warmup} warm-up "
        f"step(s), the first one FLOP-counted, then {args.steps} timed full steps "
        "(`Trainer.train_step`: forward, backward, clip, schedules, AdamW, `after_step`); "
        "s / step is their median, best the fastest; TFLOP/s = counted FLOPs / median s",
        f"MAE, SL-MAE (profile K) and SL-MAE (K = 1) take {args.blocks} turn(s) each (so a "
        "shared machine's load falls on all three alike), a turn being one untimed step and then "
        f"at least {args.spectral_cycles} cycle(s) of K consecutive steps from a spectral step "
        "(consecutive, as a run steps); SL-MAE's s / step = ((K-1) x median without + median with the "
        "spectral term) / K, the amortised cost a run pays; SL-MAE / MAE is the same "
        "amortised median taken over the ratios of the steps taken together",
        "tokens: tokens entering the encoder's blocks per optimiser step (visible ones for "
        "masked views, every view for SimCLR / DINO); teacher tokens are forward-only",
        "FLOPs: FlopCounterMode (matmul, convolution, attention; forward + backward + teacher); "
        "element-wise ops, FFTs, the optimiser are not counted; params total includes "
        "EMA teachers and the frozen sin-cos `pos_embed`",
        "dino_mim takes 3 channels (FM-CT HU windows); moe_jepa batches cycle T1w / T2w / FLAIR",
        "transformer blocks: " + ("eager" if args.compile == "none" else
                                  f"compiled (`train.compile={args.compile}`) after the "
                                  "FLOP-counted step; the warm-up steps compile them"),
    ]
    if args.overrides:
        notes.append("config overrides: " + ", ".join(f"`{o}`" for o in args.overrides)
                     + " (with activation checkpointing the counted FLOPs include the recomputed "
                     "forward passes)")
    return [f"- {n}" for n in notes]


def write_page(args, device: torch.device, ceiling: float, rows: list[dict],
               failures: list[str], load: tuple[float, ...]) -> str:
    """Write the Markdown page and the CSV (after every row, so a cut-off run keeps its rows)."""
    notes = header(args, device, ceiling, load) + [f"- {f}" for f in failures]
    spectral = spectral_table(rows)
    spectral = ["## SL-MAE spectral cost", "", *spectral, ""] if len(spectral) > 2 else []
    page = "\n".join([
        f"# Pretraining step benchmark ({device.type})", "", *notes, "",
        *main_table(rows, ceiling), "", *spectral, "## Reading the table", "",
        "Targets: the ViT step at >= 60 % of the dense matmul ceiling, and SL-MAE with the "
        "profile's amortisation within 5 % of MAE's step time.", "", *verdicts(rows, ceiling), "",
    ])
    out = args.out or RESULTS / f"pretrain_{device.type}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    table = pd.DataFrame(rows)
    if rows:
        table["of_ceiling"] = table["tflop_s"] / table["ceiling_tflop_s"]
        table["of_best_ceiling"] = table["tflop_s"] * 1e12 / ceiling
    table.round(4).to_csv(out.with_suffix(".csv"), index=False)
    return page


def main() -> None:
    args = parse_args()
    device, env, names = setup(args)
    args.batch_paper = args.batch_paper or (8 if device.type == "cuda" else 1)
    args.warmup = max(1, args.warmup)
    load = os.getloadavg()
    before = ceiling = matmul_ceiling(device)
    print(f"matmul ceiling on {device}: {ceiling / 1e12:.3g} TFLOP/s", flush=True)
    rows, failures = [], []
    for shape in args.shapes.split(","):
        for group in groups(names):
            measured = measure(args, shape, group, env, failures)
            after = matmul_ceiling(device)
            print(f"matmul ceiling on {device}: {after / 1e12:.3g} TFLOP/s", flush=True)
            rows += [dict(row, ceiling_tflop_s=max(before, after) / 1e12) for row in measured]
            before, ceiling = after, max(ceiling, after)
            write_page(args, device, ceiling, rows, failures, load)
    print(write_page(args, device, ceiling, rows, failures, load + os.getloadavg()))


if __name__ == "__main__":
    main()
