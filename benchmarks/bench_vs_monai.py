"""neurossl's MAE against MONAI's ``MaskedAutoEncoderViT``, same architecture, one process.

Both models get the same encoder (width, depth, heads, MLP, patch), decoder (width, depth, heads,
MLP), mask ratio, input size and batch, and the same fused AdamW; each step is forward, the
masked-tubelet L1 loss, backward and the optimiser step on one random batch already on the
device. The two step in turn (so a shared machine's load falls on both alike) and the ratio is
taken per pair of steps, then its median. neurossl's step is the MAE objective's own forward
(mask drawing, patchify, loss) in the precision the trainer uses on that device (bf16 autocast
on CUDA, float32 on the CPU); MONAI runs in the same precision.

    python benchmarks/bench_vs_monai.py                     # CPU, demo shape, minutes
    python benchmarks/bench_vs_monai.py --device cuda --shape paper

Writes ``benchmarks/results/vs_monai_<device>.md``; the last line printed reads
``speed vs MONAI (<device>): <ratio>x`` (neurossl's steps per second over MONAI's).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
from monai.networks.nets import MaskedAutoEncoderViT

from neurossl.config import load_config
from neurossl.models import patchify
from neurossl.objectives import build_objective
from neurossl.objectives.base import StepInfo
from neurossl.runtime.device import resolve_device
from neurossl.train.optim import build_optimizer

RESULTS = Path(__file__).resolve().parent / "results"
# The demo shape is the CPU comparison of record; the paper shape is ViT-B at 160^3.
SHAPES = {
    "demo": dict(size=64, patch=8, width=192, depth=12, heads=3, dec_width=144, dec_depth=4,
                 dec_heads=4),
    "paper": dict(size=160, patch=8, width=768, depth=12, heads=12, dec_width=384, dec_depth=6,
                  dec_heads=6),
}
MASK_RATIO = 0.75
MLP_RATIO = 4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--shape", choices=tuple(SHAPES), default=None,
                        help="default: demo on the CPU, paper on CUDA")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12, help="timed steps of each model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="results page (default: by device)")
    return parser.parse_args()


def neurossl_mae(s: dict, device: torch.device):
    """The MAE objective on the shape ``s``, as the trainer builds it."""
    overrides = [f"model.patch_size={s['patch']}", f"model.tubelet_size={s['patch']}",
                 f"model.embed_dim={s['width']}", f"model.depth={s['depth']}",
                 f"model.num_heads={s['heads']}", f"model.decoder_dim={s['dec_width']}",
                 f"model.decoder_depth={s['dec_depth']}", f"model.decoder_heads={s['dec_heads']}",
                 f"masking.ratio={MASK_RATIO}", "masking.kind=random", "masking.sampling=paper",
                 "model.drop_path=0.0", "objective.loss_p=1", "objective.norm_pix=false"]
    cfg = load_config("demo", objective="mae", overrides=overrides)
    objective = build_objective(cfg, (1, s["size"], s["size"], s["size"])).to(device)
    return objective, build_optimizer(objective, cfg.optim)


def monai_mae(s: dict, device: torch.device):
    """MONAI's masked autoencoder with the same blocks (MLP ratio 4, qkv bias as neurossl's)."""
    model = MaskedAutoEncoderViT(
        in_channels=1, img_size=s["size"], patch_size=s["patch"], hidden_size=s["width"],
        mlp_dim=MLP_RATIO * s["width"], num_layers=s["depth"], num_heads=s["heads"],
        masking_ratio=MASK_RATIO, decoder_hidden_size=s["dec_width"],
        decoder_mlp_dim=MLP_RATIO * s["dec_width"], decoder_num_layers=s["dec_depth"],
        decoder_num_heads=s["dec_heads"], qkv_bias=True).to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def timed(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    shape = args.shape or ("paper" if device.type == "cuda" else "demo")
    s = SHAPES[shape]
    torch.manual_seed(0)
    images = torch.randn(args.batch, 1, s["size"], s["size"], s["size"], device=device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    ours, ours_opt = neurossl_mae(s, device)
    theirs, theirs_opt = monai_mae(s, device)
    generator = torch.Generator().manual_seed(0)
    step_no = [0]

    def ours_step():
        info = StepInfo(step=step_no[0], epoch=0.0, total_steps=10**6, generator=generator)
        with autocast:
            loss = ours({"image": images}, info)["loss"]
        loss.backward()
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)
        step_no[0] += 1

    target = patchify(images, s["patch"], s["patch"])

    def theirs_step():
        with autocast:
            pred, mask = theirs(images)
            per_token = (pred.float() - target).abs().mean(-1)
            loss = (per_token * mask).sum() / mask.sum()
        loss.backward()
        theirs_opt.step()
        theirs_opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        ours_step(), theirs_step()
    pairs = [(timed(ours_step, device), timed(theirs_step, device)) for _ in range(args.steps)]
    ours_s = statistics.median(p[0] for p in pairs)
    theirs_s = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(t / o for o, t in pairs)
    n_ours = sum(p.numel() for p in ours.parameters() if p.requires_grad) / 1e6
    n_theirs = sum(p.numel() for p in theirs.parameters() if p.requires_grad) / 1e6
    write_page(args, device, shape, s, ours_s, theirs_s, ratio, n_ours, n_theirs)
    print(f"speed vs MONAI ({device.type}): {ratio:.2f}x")


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def write_page(args, device, shape, s, ours_s, theirs_s, ratio, n_ours, n_theirs) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    precision = "bf16 autocast" if device.type == "cuda" else "float32"
    lines = [
        f"# neurossl MAE vs MONAI MaskedAutoEncoderViT ({device.type})", "",
        f"- machine: {platform.machine()}, {name}, torch {torch.__version__} "
        f"({torch.get_num_threads()} CPU threads), {date.today()}",
        f"- shape `{shape}`: {s['size']}^3, patch {s['patch']}, encoder {s['width']} x "
        f"{s['depth']} blocks x {s['heads']} heads, decoder {s['dec_width']} x {s['dec_depth']} "
        f"x {s['dec_heads']} heads, MLP ratio {MLP_RATIO}, mask ratio {MASK_RATIO}, batch "
        f"{args.batch}, {precision}, fused AdamW for both",
        f"- {args.warmup} warm-up steps each, then {args.steps} timed steps in turn; s / step "
        "is the median, the ratio the median over pairs of steps", "",
        "| model | trainable params (M) | s / step | steps / s |",
        "|---|---:|---:|---:|",
        f"| neurossl MAE | {n_ours:.2f} | {ours_s:.3f} | {1 / ours_s:.2f} |",
        f"| MONAI MaskedAutoEncoderViT | {n_theirs:.2f} | {theirs_s:.3f} | {1 / theirs_s:.2f} |",
        "", f"speed vs MONAI ({device.type}): {ratio:.2f}x", "",
    ]
    out = args.out or RESULTS / f"vs_monai_{device.type}.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines[:-3]))


if __name__ == "__main__":
    main()
