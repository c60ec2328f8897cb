"""The CUDA paths: bf16 autocast steps, SDPA's fused kernels, NCCL under ``torchrun``, exact
resume and encoders that move between GPU and CPU.

Skipped where no GPU is visible (CI has none); ``benchmarks/gpu_checks.sh`` runs them on a GPU
node together with the GPU benchmarks.
"""

from __future__ import annotations

import itertools
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from neurossl.config import AugmentConfig, load_config
from neurossl.data.augment import build_augment, draw_augment
from neurossl.data.augment_ops import PARAM_NAMES
from neurossl.data.dataset import batch_to_device
from neurossl.models import build_encoder, load_encoder, save_encoder
from neurossl.models.layers import Attention
from neurossl.objectives import OBJECTIVES, build_objective
from neurossl.train.distributed import DistEnv
from neurossl.train.trainer import Trainer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_trainer import output, run_ddp, run_worker  # noqa: E402
from train_worker import make_trainer  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda", 0)
FUSED_ATTENTION = ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                   "_scaled_dot_product_cudnn_attention")


@contextmanager
def exact_float32():
    """Full float32 matmuls and convolutions (no TF32) while inside."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def smoke_batch(cfg, name: str) -> tuple[tuple[int, ...], dict]:
    """The input shape ``(C, D, H, W)`` of objective ``name`` and a random batch of it."""
    ct = "CT" in cfg.train.scan_modalities  # FM-CT: one channel per HU window, in [0, 1]
    channels = len(cfg.preprocess.ct_windows) if ct else cfg.model.in_chans
    shape = (channels, cfg.preprocess.depth, cfg.preprocess.crop_size, cfg.preprocess.crop_size)
    batch = cfg.optim.batch_size
    images = torch.rand(batch, *shape) if ct else torch.randn(batch, *shape)
    modalities = cfg.objective.embedding_modalities
    return shape, {"image": images, "modality": [modalities[i % len(modalities)]
                                                 for i in range(batch)]}


@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_objective_steps_under_bf16_autocast(name, tmp_path):
    cfg = load_config("smoke", objective=name)
    shape, batch = smoke_batch(cfg, name)
    torch.manual_seed(0)
    trainer = Trainer(cfg, build_objective(cfg, shape), [None] * cfg.optim.batch_size, tmp_path,
                      DistEnv(0, 1, 0, CUDA))
    objective = trainer.objective
    linear_dtypes = set()
    handles = [m.register_forward_hook(lambda m, i, out: linear_dtypes.add(out.dtype))
               for m in objective.modules() if isinstance(m, torch.nn.Linear)]
    before = {n: p.detach().clone() for n, p in objective.named_parameters() if p.requires_grad}
    batches = itertools.repeat(batch)
    metrics = [trainer.train_step(batches) for _ in range(2)]
    for handle in handles:
        handle.remove()

    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics), metrics
    assert torch.bfloat16 in linear_dtypes  # matmuls ran in bf16 under the trainer's autocast
    assert {p.dtype for p in objective.parameters()} == {torch.float32}  # master weights stay fp32
    moved = [n for n, p in objective.named_parameters() if n in before
             and not torch.equal(p.detach(), before[n])]
    assert len(moved) > len(before) // 2, f"only {len(moved)} of {len(before)} tensors updated"


@pytest.mark.parametrize("dim, heads", [(768, 12), (384, 6), (128, 4)])  # head dims 64, 64, 32
def test_attention_runs_a_fused_kernel_and_flash_matches_math(dim, heads):
    torch.manual_seed(0)
    attn = Attention(dim, heads).to(CUDA)
    x = torch.randn(2, 1000, dim, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            attn(x)
        ops = {event.name for event in prof.events()}
        assert any(name in op for op in ops for name in FUSED_ATTENTION), sorted(ops)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises if flash cannot serve this shape
            flash = attn(x)
        with sdpa_kernel(SDPBackend.MATH):
            math_ = attn(x)
    torch.testing.assert_close(flash.float(), math_.float(), atol=2e-2, rtol=2e-2)


def test_encoder_on_cuda_matches_cpu_and_its_export_loads_on_cpu(tmp_path):
    torch.manual_seed(0)
    encoder = build_encoder("vit_tiny", img_size=(32, 32, 32), patch_size=8, tubelet_size=8,
                            num_modalities=3).eval()
    x = torch.randn(2, 1, 32, 32, 32)
    keep = torch.stack([torch.randperm(64)[:16] for _ in range(2)])
    with torch.no_grad():
        cpu = encoder(x, keep, modality=1)
        with exact_float32():
            gpu = encoder.to(CUDA)(x.to(CUDA), keep.to(CUDA), modality=1).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)
    meta = {"objective": "mae", "steps": 0, "data": "random", "git_commit": None}
    loaded = load_encoder(save_encoder(encoder, tmp_path / "encoder", meta)).eval()
    assert next(loaded.parameters()).device.type == "cpu"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, keep, modality=1), cpu, atol=0, rtol=0)


def test_resume_on_cuda_continues_the_uninterrupted_run(tmp_path):
    full = make_trainer(tmp_path / "full", device="cuda")
    full.fit()  # 8 steps, checkpoints every 2
    part = make_trainer(tmp_path / "part", device="cuda")
    batches = part.micro_batches()
    for _ in range(3):
        part.train_step(batches)
    part.save()  # as a run killed after step 3 would have left it
    resumed = make_trainer(tmp_path / "part", device="cuda")
    assert resumed.resume() and resumed.position.step == 3
    resumed.fit()
    a, b = full.objective.state_dict(), resumed.objective.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        # CUDA's atomic adds (index and scatter backward) may reorder sums and bf16 rounding can
        # amplify that: close, not bitwise; a lost optimiser state or RNG moves weights by ~lr
        torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-3, msg=key)


@pytest.mark.parametrize("objective", ["mae", "jepa"])
def test_inductor_compiled_blocks_train_on_cuda_like_eager_ones(objective, tmp_path):
    runs = {}
    for mode in ("none", "inductor"):
        trainer = make_trainer(tmp_path / mode, objective, ["train.max_steps=4", f"train.compile={mode}"],
                               device="cuda")
        batches = trainer.micro_batches()
        runs[mode] = (trainer, [trainer.train_step(batches)["loss"] for _ in range(4)])
    (eager, eager_losses), (compiled, compiled_losses) = runs["none"], runs["inductor"]
    assert compiled.compiled_blocks > 0 and eager.compiled_blocks == 0
    # bf16 autocast: fused kernels round differently, so close rather than equal
    torch.testing.assert_close(torch.tensor(compiled_losses), torch.tensor(eager_losses), rtol=2e-2, atol=1e-3)
    assert compiled.objective.state_dict().keys() == eager.objective.state_dict().keys()


def test_torchrun_single_gpu_runs_nccl_ddp_and_equals_a_plain_run(tmp_path):
    steps = ["--set", "train.max_steps=3", "--set", "train.dist_timeout_s=60", "--device", "cuda"]
    plain = run_worker(tmp_path / "plain", tmp_path / "plain.pt", *steps, env=dict(os.environ))
    assert plain.wait(timeout=180) == 0, output(plain)
    assert "backend none, device cuda:0" in output(plain), output(plain)
    failure = run_ddp(tmp_path / "one", steps, dict(os.environ), timeout=180, ranks=1)
    assert failure is None, failure
    log = (tmp_path / "one" / "final.pt.0.log").read_text()
    assert "model DistributedDataParallel, backend nccl, device cuda:0" in log, log
    a = torch.load(tmp_path / "plain.pt")
    b = torch.load(tmp_path / "one" / "final.pt")
    for key in a:
        if torch.is_tensor(a[key]) and a[key].is_floating_point():
            torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-3, msg=key)


def test_batch_augmentation_on_cuda_matches_the_cpu():
    chain = build_augment(AugmentConfig())
    images = torch.nn.functional.avg_pool3d(torch.rand(4, 1, 24, 32, 32), 5, 1, 2)
    params = [draw_augment(chain, seed, tuple(images.shape[1:])) for seed in range(4)]
    batch = {"image": images, "augment": {k: torch.stack([p[k] for p in params]) for k in PARAM_NAMES}}
    quiet = {**batch, "augment": {**batch["augment"], "noise_std": torch.zeros(4)}}
    with exact_float32():
        on_gpu, on_cpu = batch_to_device(quiet, CUDA)["image"], batch_to_device(quiet, "cpu")["image"]
    assert on_gpu.device.type == "cuda" and torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4)
    # the noise: a CUDA generator's stream, with each volume's drawn std
    noise = batch_to_device(batch, CUDA)["image"] - on_gpu
    assert torch.allclose(noise.flatten(1).std(dim=1).cpu(), batch["augment"]["noise_std"], rtol=0.05)


def test_official_batch_augmentation_on_cuda_matches_the_cpu():
    # the paper profile's path: per-axis affine, flip, blur, then the official per-volume z-score
    cfg = AugmentConfig(affine_rule="per_axis", flip_prob=1.0, blur_sigma=(0.5, 1.0), noise_std=0.0)
    chain = build_augment(cfg)
    images = torch.nn.functional.avg_pool3d(torch.rand(4, 1, 24, 32, 32), 5, 1, 2) * 300
    params = [draw_augment(chain, seed, tuple(images.shape[1:]), zscore=True) for seed in range(4)]
    batch = {"image": images, "augment": {k: torch.stack([p[k] for p in params]) for k in PARAM_NAMES}}
    with exact_float32():
        on_gpu, on_cpu = batch_to_device(batch, CUDA)["image"], batch_to_device(batch, "cpu")["image"]
    assert on_gpu.device.type == "cuda" and torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4)
    assert torch.allclose(on_cpu.std(dim=(2, 3, 4)), torch.ones(4, 1), atol=1e-4)
