"""SimCLR and DINO-MIM on a tiny ViT: volume 16 x 32 x 32, patch 8, tubelet 4 (64 tokens)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurossl.config import load_config
from neurossl.masks import indices_to_mask
from neurossl.objectives.base import StepInfo
from neurossl.objectives.dino_mim import DINOMIM
from neurossl.objectives.simclr import SimCLR
from neurossl.config import ConfigError, ViewConfig
from neurossl.objectives.views import random_view

IMG = (16, 32, 32)
TINY = ["model.name=vit_tiny", "model.patch_size=8", "model.tubelet_size=4", "model.embed_dim=48",
        "model.depth=2", "model.num_heads=3", "model.predictor_dim=32", "model.predictor_depth=1",
        "model.predictor_heads=2", "objective.dino_out_dim=64", "objective.proj_dim=16",
        "objective.dino_local_crops=2", "objective.dino_head_hidden=64",
        "objective.dino_head_bottleneck=32"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def cfg(*extra):
    return load_config("smoke", overrides=TINY + list(extra))


def info(step=0, seed=0, total=100):
    return StepInfo(step=step, epoch=0.0, total_steps=total,
                    generator=torch.Generator().manual_seed(seed))


def batch(b=4, channels=1, seed=0):
    return {"image": torch.randn(b, channels, *IMG, generator=torch.Generator().manual_seed(seed))}


def dino_mim(channels=1, **kw):
    return DINOMIM(cfg(), (channels, *IMG), **kw)


# ---------------------------------------------------------------- SimCLR


def test_simclr_loss_falls_on_a_fixed_batch():
    # Mild views: the default ones (flips on every axis, crops down to 20 % per axis) are a task
    # a tiny ViT cannot start to solve within 15 steps; here the point is that the objective's
    # gradient reaches the encoder and the projector and lowers NT-Xent.
    mild = ViewConfig(crop_scale=(0.8, 1.0), flip_prob=(0.0, 0.0, 0.0), rotation_deg=5.0,
                      brightness=0.1, contrast=0.1, gamma=(0.9, 1.1), noise_std=0.05)
    obj = SimCLR(cfg("objective.temperature=0.1"), (1, *IMG), views=mild)
    opt = torch.optim.AdamW(obj.parameters(), lr=1e-3)
    coarse = torch.randn(4, 1, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    data = {"image": F.interpolate(coarse, size=IMG, mode="trilinear")}  # smooth, distinct volumes
    losses = []
    for _ in range(15):
        out = obj(data, info(seed=1))  # the same views every step: a fixed problem
        assert set(out) == {"loss", "nt_xent"} and out["loss"].ndim == 0
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_view_strength_comes_from_the_config():
    assert SimCLR(cfg(), (1, *IMG)).views == ViewConfig()  # the official release's chain
    assert dino_mim().views.crop_scale == (0.7, 1.0)  # DINO's global crops
    milder = SimCLR(cfg("objective.simclr_views.crop_scale=[0.6, 1.0]",
                        "objective.simclr_views.jitter_prob=0.0"), (1, *IMG))
    assert milder.views == ViewConfig(crop_scale=(0.6, 1.0), jitter_prob=0.0)
    plain = DINOMIM(cfg("objective.dino_views.rotation_deg=0.0"), (1, *IMG))
    assert plain.views.rotation_deg == 0.0 and plain.views.crop_scale == (0.7, 1.0)
    with pytest.raises(ConfigError, match=r"'objective\.simclr_views\.crop_scale'"):
        SimCLR(cfg("objective.simclr_views.crop_scale=[0.0, 1.0]"), (1, *IMG))
    with pytest.raises(ConfigError, match="crop_scal"):
        cfg("objective.simclr_views.crop_scal=[0.5, 1.0]")


def test_simclr_ct_channels_and_monitor():
    obj = SimCLR(cfg(), (3, *IMG))
    data = batch(channels=3)
    out = obj(data, info())
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert obj.student.patch_embed.proj.weight.grad is not None
    health = obj.monitor(data)
    assert set(health) == {"student_token_rank", "student_centred_token_rank", "student_pooled_rank",
                           "student_pooled_std"}
    assert health["student_pooled_std"] > 0 and 1.0 <= health["student_pooled_rank"] <= 4.0
    # the tokens of the two volumes together have far more directions than the 2 pooled ones
    assert health["student_token_rank"] > health["student_pooled_rank"]


def test_simclr_views_come_from_the_step_generator():
    obj = SimCLR(cfg(), (1, *IMG)).eval()
    data = batch()
    same = [float(obj(data, info(seed=5))["loss"].detach()) for _ in range(2)]
    other = float(obj(data, info(seed=6))["loss"].detach())
    assert same[0] == same[1] and other != same[0]


# ---------------------------------------------------------------- DINO-MIM


def test_dino_mim_koleo_term_is_added_with_its_weight():
    obj = DINOMIM(cfg("objective.koleo_weight=0.1"), (1, *IMG))
    out = obj(batch(), info())
    assert set(out) == {"loss", "dino", "mim", "koleo"}
    torch.testing.assert_close(out["loss"], out["dino"] + obj.mim_weight * out["mim"] + 0.1 * out["koleo"])
    out["loss"].backward()
    assert obj.student.patch_embed.proj.weight.grad is not None


def test_dino_mim_terms_and_teacher_gets_no_gradient():
    obj = dino_mim()
    out = obj(batch(), info())
    assert set(out) == {"loss", "dino", "mim"}
    torch.testing.assert_close(out["loss"], out["dino"] + obj.mim_weight * out["mim"])
    out["loss"].backward()
    teachers = [obj.teacher, obj.teacher_head, obj.teacher_patch_head]
    for teacher in teachers:
        assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
        assert not teacher.training
    for student in (obj.student, obj.head, obj.patch_head, obj.predictor):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert obj.encoder() is obj.teacher


def test_dino_teacher_moves_only_through_the_ema():
    obj = dino_mim()
    opt = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=1e-2)
    pairs = [(obj.teacher, obj.student), (obj.teacher_head, obj.head),
             (obj.teacher_patch_head, obj.patch_head)]
    before = [{k: v.detach().clone() for k, v in t.named_parameters()} for t, _ in pairs]
    obj(batch(), info())["loss"].backward()
    opt.step()
    for (teacher, student), old in zip(pairs, before):
        for name, value in teacher.named_parameters():
            assert torch.equal(value, old[name]), f"teacher {name} changed without after_step"
    assert not torch.equal(obj.student.blocks[0].attn.qkv.weight, before[0]["blocks.0.attn.qkv.weight"])

    momentum = 0.9
    obj.ema = (momentum, momentum)
    obj.after_step(info(step=1))
    for (teacher, student), old in zip(pairs, before):
        current = dict(student.named_parameters())
        for name, value in teacher.named_parameters():
            expected = momentum * old[name] + (1 - momentum) * current[name].detach()
            torch.testing.assert_close(value, expected)


def test_dino_centres_update_towards_teacher_logits():
    obj = dino_mim()
    centres = (obj.center.center, obj.patch_center.center)
    assert all(torch.count_nonzero(c) == 0 for c in centres)
    data = batch()
    obj(data, info(seed=4))
    # the first two draws of the step generator are the global views
    g = info(seed=4)
    views = torch.cat([random_view(data["image"], obj.views, g, IMG) for _ in range(2)])
    with torch.no_grad():
        tokens = obj.teacher(views)
        pooled_logits = obj.teacher_head(tokens.mean(dim=1))  # (2B, K)
        patch_logits = obj.teacher_patch_head(tokens[: len(views) // 2])  # (B, N, K), view 1
    momentum = obj.center.momentum  # c <- m * 0 + (1 - m) * mean
    torch.testing.assert_close(obj.center.center, (1 - momentum) * pooled_logits.mean(dim=0, keepdim=True))
    torch.testing.assert_close(obj.patch_center.center,
                               (1 - momentum) * patch_logits.flatten(0, 1).mean(dim=0, keepdim=True))


def test_mim_term_uses_masked_tokens_only():
    obj = dino_mim()
    b, n, k, m = 2, 64, 64, 48
    masked = torch.stack([torch.randperm(n)[:m].sort().values for _ in range(b)])
    student = torch.randn(b, m, k)
    teacher = torch.randn(b, n, k)
    base = obj.mim_loss(student, teacher, masked, obj.temps)
    visible = ~indices_to_mask(masked, n)
    changed = teacher.clone()
    changed[visible] = torch.randn(int(visible.sum()), k) * 10
    torch.testing.assert_close(obj.mim_loss(student, changed, masked, obj.temps), base)
    changed = teacher.clone()
    changed[0, masked[0, 0]] = torch.randn(k) * 10  # a masked token's teacher distribution
    assert not torch.allclose(obj.mim_loss(student, changed, masked, obj.temps), base)


def test_dino_mim_runs_on_three_channel_ct():
    obj = dino_mim(channels=3)
    ct = {"image": torch.rand(2, 3, *IMG, generator=torch.Generator().manual_seed(2))}
    out = obj(ct, info())
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert obj.student.patch_embed.proj.weight.grad.shape[1] == 3
    health = obj.monitor(ct)
    assert set(health) == {f"{role}_{key}" for role in ("student", "teacher")
                           for key in ("token_rank", "centred_token_rank", "pooled_rank",
                                       "pooled_std")}


def test_dino_mim_state_dict_round_trip_restores_centre_and_teacher():
    obj = dino_mim()
    opt = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=1e-2)
    obj(batch(), info())["loss"].backward()
    opt.step()
    obj.ema = (0.5, 0.5)
    obj.after_step(info(step=1))
    state = obj.state_dict()

    torch.manual_seed(123)
    fresh = dino_mim()
    assert not torch.equal(fresh.center.center, obj.center.center)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.center.center, obj.center.center, rtol=0, atol=0)
    torch.testing.assert_close(fresh.patch_center.center, obj.patch_center.center, rtol=0, atol=0)
    for key, value in obj.teacher.state_dict().items():
        assert torch.equal(fresh.teacher.state_dict()[key], value)
    assert torch.equal(fresh.teacher_head.prototypes, obj.teacher_head.prototypes)
    assert not fresh.teacher.training
    a, b = obj(batch(seed=3), info(seed=9)), fresh(batch(seed=3), info(seed=9))
    torch.testing.assert_close(a["loss"], b["loss"])


def test_dino_teacher_temperature_warms_up_as_dinos_linspace():
    # DINO / FM-CT losses.py: "np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)"
    # then "np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp", indexed by the epoch
    obj = DINOMIM(cfg("objective.dino_warmup_teacher_temp=0.04", "objective.dino_teacher_temp=0.07",
                      "objective.dino_warmup_teacher_epochs=4"), (1, *IMG))
    schedule = np.concatenate([np.linspace(0.04, 0.07, 4), np.ones(3) * 0.07])
    for epoch in range(7):
        assert obj.temperatures(epoch + 0.5) == (0.1, pytest.approx(schedule[epoch]))
    assert dino_mim().temperatures(0) == (0.1, 0.04)
