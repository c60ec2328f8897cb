"""JEPA-family objectives against the official release: the VCR input, the exported encoder, the
teacher's mode."""

import pytest
import torch

from neurossl.config import load_config
from neurossl.losses import layer_norm_targets
from neurossl.masks import gather_tokens
from neurossl.objectives import StepInfo, build_objective

SHAPE = (1, 16, 16, 16)


def objective(name: str, *overrides: str):
    cfg = load_config("smoke", overrides=[f"objective.name={name}", *overrides])
    torch.manual_seed(0)
    return build_objective(cfg, SHAPE)


def step_info(step: int = 0) -> StepInfo:
    return StepInfo(step=step, epoch=0.0, total_steps=10, generator=torch.Generator().manual_seed(3))


def test_vcr_regularises_context_and_the_teachers_masked_targets(monkeypatch):
    # official app/vjepa/train.py: "h = apply_masks(h, masks_pred, concat=False)" in forward_target,
    # then "z_for_vcr = [torch.cat([zi, hi.detach()], dim=1) for zi, hi in zip(z, h)]":
    # K context tokens + M masked teacher tokens = N tokens.
    vcr = objective("vcr_jepa")
    seen = {}
    real = vcr.vcr_input

    def spy(context, target_h):
        seen["input"] = real(context, target_h)
        return seen["input"]

    monkeypatch.setattr(vcr, "vcr_input", spy)
    images = torch.randn(4, *SHAPE)
    vcr.train()
    vcr({"image": images}, step_info())

    keep, masked = vcr.masks(4, generator=step_info().generator)
    num_tokens = vcr.student.num_patches
    assert seen["input"].shape == (4, num_tokens, vcr.student.embed_dim)
    assert keep.shape[1] + masked.shape[1] == num_tokens
    with torch.no_grad():
        context = vcr.student(images, masks=keep)
        target = gather_tokens(layer_norm_targets(vcr.teacher(images)), masked)
    torch.testing.assert_close(seen["input"], torch.cat([context, target], dim=1))


@pytest.mark.parametrize("name", ["jepa", "vcr_jepa", "moe_jepa"])
def test_jepa_family_exports_the_student_by_default_and_the_teacher_on_request(name):
    # paper section 5.2: "For JEPA downstream evaluations, we use the student encoder"
    obj = objective(name)
    assert obj.export_key == "encoder" and obj.encoder() is obj.student
    teacher = objective(name, "objective.export_encoder=target_encoder")
    assert teacher.export_key == "target_encoder" and teacher.encoder() is teacher.teacher


def test_export_choice_is_validated():
    with pytest.raises(ValueError, match="'objective.export_encoder' must be one of auto, encoder, target_encoder"):
        objective("jepa", "objective.export_encoder=teacher")
    cfg = load_config("smoke", objective="jepa")
    cfg.objective.export_encoder = "teacher"  # set in code, past the resolver's check
    with pytest.raises(ValueError, match="export_encoder must be auto, encoder or target_encoder"):
        build_objective(cfg, SHAPE)
    with pytest.raises(ValueError, match="mae has no EMA teacher"):
        objective("mae", "objective.export_encoder=target_encoder")
    assert objective("dino_mim", "train.scan_modalities=[CT]").export_key == "target_encoder"


def test_teacher_stays_in_eval_mode_while_the_student_trains():
    obj = objective("moe_jepa")
    obj.train()
    assert obj.student.training and not obj.teacher.training
    assert not any(m.training for m in obj.teacher.modules())


def test_moe_every_means_every_nth_block_and_zero_is_refused_by_name():
    obj = objective("moe_jepa", "model.moe_every=1")
    assert all(hasattr(block.mlp, "router") or "MoE" in type(block.mlp).__name__ for block in obj.student.blocks)
    with pytest.raises(ValueError, match=r"'model.moe_every' must be >= 1"):
        objective("moe_jepa", "model.moe_every=0")
