"""Tests of neurossl.models on tiny shapes: volume 16 x 32 x 32, patch 8, tubelet 4 (64 tokens)."""

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
import torch.nn as nn

from neurossl.models import (CheckpointError, MoEConfig, MoEMLP, build_decoder, build_encoder,
                             build_predictor, load_encoder, patchify, save_encoder, unpatchify)
from neurossl.models.layers import Attention

IMG = (16, 32, 32)
TINY = dict(img_size=IMG, patch_size=8, tubelet_size=4, embed_dim=48, depth=2, num_heads=3)
N = 64  # (16 / 4) * (32 / 8) * (32 / 8)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_encoder(**kw):
    return build_encoder("vit_tiny", **{**TINY, **kw}).eval()


def keep_indices(batch, keep, tokens=N):
    return torch.stack([torch.randperm(tokens)[:keep] for _ in range(batch)])


# ---------------------------------------------------------------- encoder


def test_encoder_shapes_full_masked_and_list_of_masks():
    enc = tiny_encoder()
    x = torch.randn(2, 1, *IMG)
    assert enc(x).shape == (2, N, 48)
    assert enc(x, masks=keep_indices(2, 16)).shape == (2, 16, 48)
    assert enc(x, masks=[keep_indices(2, 16), keep_indices(2, 16)]).shape == (4, 16, 48)
    assert [n for n, _ in enc.named_parameters()][:2] == ["pos_embed", "patch_embed.proj.weight"]
    assert {"blocks.1.norm1.weight", "blocks.1.attn.qkv.weight", "blocks.1.attn.proj.weight",
            "blocks.1.norm2.bias", "blocks.1.mlp.fc1.weight", "blocks.1.mlp.fc2.weight",
            "norm.weight"} <= set(enc.state_dict())


def test_mask_of_all_tokens_equals_no_mask_and_permutes_with_the_indices():
    enc = tiny_encoder()
    x = torch.randn(2, 1, *IMG)
    full = enc(x)
    everything = torch.arange(N).expand(2, N)
    torch.testing.assert_close(enc(x, masks=everything), full)
    perm = torch.randperm(N).expand(2, N)
    torch.testing.assert_close(enc(x, masks=perm), full[:, perm[0]], atol=1e-5, rtol=1e-4)


def test_masked_encoder_sees_visible_tokens_only():
    enc = tiny_encoder()
    x = torch.randn(1, 1, *IMG)
    keep = torch.arange(1, N).unsqueeze(0)  # token 0 hidden: voxels [0:4, 0:8, 0:8]
    y = x.clone()
    y[..., :4, :8, :8] += 5.0
    torch.testing.assert_close(enc(x, masks=keep), enc(y, masks=keep))
    assert not torch.allclose(enc(x), enc(y))


def test_pos_embed_is_fixed_and_has_known_values():
    enc = tiny_encoder()
    pe = enc.pos_embed
    assert pe.shape == (1, N, 48) and not pe.requires_grad and "pos_embed" in enc.state_dict()
    enc(torch.randn(1, 1, *IMG)).sum().backward()
    assert pe.grad is None and enc.patch_embed.proj.weight.grad is not None
    # channels: depth 24 = [sin 12 | cos 12], height 12 = [sin 6 | cos 6], width 12 likewise
    zero = torch.tensor([0.0] * 12 + [1.0] * 12 + ([0.0] * 6 + [1.0] * 6) * 2)
    torch.testing.assert_close(pe[0, 0], zero)
    d1 = pe[0, 16]  # token (d, h, w) = (1, 0, 0) in depth-major order
    assert d1[0].item() == pytest.approx(math.sin(1.0)) and d1[12].item() == pytest.approx(math.cos(1.0))
    assert d1[1].item() == pytest.approx(math.sin(10000 ** (-1 / 12)))
    torch.testing.assert_close(d1[24:], zero[24:])
    w1 = pe[0, 1]  # token (0, 0, 1)
    assert w1[36].item() == pytest.approx(math.sin(1.0)) and w1[42].item() == pytest.approx(math.cos(1.0))
    torch.testing.assert_close(w1[:36], zero[:36])
    with torch.no_grad():  # a blank patch embedding leaves each token exactly its own position code
        enc.patch_embed.proj.weight.zero_()
        enc.patch_embed.proj.bias.zero_()
    torch.testing.assert_close(enc.prepare_tokens(torch.randn(2, 1, *IMG)), pe.expand(2, -1, -1))


def test_attention_equals_manual_softmax_attention():
    attn = Attention(dim=12, num_heads=3)
    x = torch.randn(2, 5, 12)
    q, k, v = attn.qkv(x).split(12, dim=-1)
    heads = [slice(4 * h, 4 * h + 4) for h in range(3)]
    out = torch.cat([torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / 2.0, dim=-1) @ v[..., s]
                     for s in heads], dim=-1)
    torch.testing.assert_close(attn(x), attn.proj(out), atol=1e-6, rtol=1e-5)


def test_bad_sizes_give_clear_errors():
    with pytest.raises(ValueError, match="depth 15 is not a positive multiple of its token extent 4"):
        build_encoder("vit_tiny", **{**TINY, "img_size": (15, 32, 32)})
    with pytest.raises(ValueError, match="width 30"):
        build_encoder("vit_tiny", **{**TINY, "img_size": (16, 32, 30)})
    with pytest.raises(ValueError, match=r"expects input \(B, 1, 16, 32, 32\)"):
        tiny_encoder()(torch.randn(1, 1, 16, 32, 40))
    with pytest.raises(ValueError, match="unknown encoder 'vit_huge'"):
        build_encoder("vit_huge")


def test_modality_embedding_shifts_tokens_per_contrast():
    enc = tiny_encoder(num_modalities=3)
    x = torch.randn(2, 1, *IMG)
    t1, flair = enc(x, modality=torch.tensor([0, 0])), enc(x, modality=2)
    assert not torch.allclose(t1, flair)
    torch.testing.assert_close(enc(x, modality=torch.tensor([0, 2]))[1], flair[1])
    with pytest.raises(ValueError, match="modality"):
        enc(x)


def test_encoder_is_dtype_agnostic():
    enc = tiny_encoder(moe={"num_experts": 4}).to(torch.bfloat16)
    out = enc(torch.randn(1, 1, *IMG, dtype=torch.bfloat16), masks=keep_indices(1, 16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


# ---------------------------------------------------------------- voxels <-> tokens


def test_patchify_round_trip():
    x = torch.randn(2, 3, *IMG)
    tokens = patchify(x, tubelet_size=4, patch_size=8)
    assert tokens.shape == (2, N, 4 * 8 * 8 * 3)
    torch.testing.assert_close(unpatchify(tokens, (4, 4, 4), 4, 8), x, atol=0, rtol=0)


def test_patchify_token_k_holds_the_voxels_the_patch_embedding_sees_at_token_k():
    chans, volume = 2, 4 * 8 * 8 * 2
    enc = build_encoder("vit_tiny", **{**TINY, "in_chans": chans, "embed_dim": volume, "num_heads": 4})
    conv = enc.patch_embed
    with torch.no_grad():  # output channel j copies voxel j of the (t, p, p, C) ordering
        conv.proj.weight.copy_(torch.eye(volume).view(volume, 4, 8, 8, chans).permute(0, 4, 1, 2, 3))
        conv.proj.bias.zero_()
    x = torch.randn(2, chans, *IMG)
    torch.testing.assert_close(conv(x), patchify(x, 4, 8))


def test_patch_embedding_equals_its_conv3d_forward_and_backward():
    """The matmul form gives the Conv3d's output and weight gradients (checkpoints stay valid)."""
    enc = build_encoder("vit_tiny", **{**TINY, "in_chans": 2})
    embed = enc.patch_embed
    x = torch.randn(2, 2, *IMG)
    conv_out = F.conv3d(x, embed.proj.weight, embed.proj.bias, stride=embed.kernel).flatten(2).transpose(1, 2)
    torch.testing.assert_close(embed(x), conv_out, atol=1e-5, rtol=1e-5)
    grads = []
    for out in (embed(x), F.conv3d(x, embed.proj.weight, embed.proj.bias, stride=embed.kernel)):
        embed.proj.weight.grad = None
        out.square().sum().backward()
        grads.append(embed.proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="not a positive multiple"):
        embed(torch.randn(1, 2, IMG[0] + 1, *IMG[1:]))


# ---------------------------------------------------------------- predictor and decoder


def test_predictor_shapes_and_target_positions():
    enc = tiny_encoder()
    pred = build_predictor(enc, predictor_embed_dim=32, depth=2, num_heads=2).eval()
    assert pred.predictor_pos_embed.shape == (1, N, 32) and not pred.predictor_pos_embed.requires_grad
    ctx_idx, tgt_idx = torch.arange(0, 32).expand(2, 32), torch.arange(32, 40).expand(2, 8)
    ctx = enc(torch.randn(2, 1, *IMG), masks=ctx_idx)
    out = pred(ctx, ctx_idx, tgt_idx)
    assert out.shape == (2, 8, 48)
    perm = torch.randperm(8)
    torch.testing.assert_close(pred(ctx, ctx_idx, tgt_idx[:, perm]), out[:, perm], atol=1e-5, rtol=1e-4)
    moved = pred(ctx, ctx_idx, torch.arange(50, 58).expand(2, 8))
    assert (moved - out).abs().amax(dim=-1).min() > 1e-4  # every target changes with its position


def test_decoder_shapes_and_scatter_to_positions():
    enc = tiny_encoder()
    dec = build_decoder(enc, decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=2).eval()
    keep = keep_indices(2, 16)
    latent = enc(torch.randn(2, 1, *IMG), masks=keep)
    assert dec(latent, keep, num_tokens=N).shape == (2, N, 4 * 8 * 8)
    perm = torch.randperm(16)  # same visible set, listed in another order: same reconstruction
    torch.testing.assert_close(dec(latent[:, perm], keep[:, perm]), dec(latent, keep), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="built for 64 tokens"):
        dec(latent, keep, num_tokens=100)

    flat = build_decoder(enc, decoder_embed_dim=32, decoder_depth=0).eval()  # no blocks: per token
    out = flat(latent, keep)
    for b in range(2):
        tokens = flat.mask_token[0, 0].repeat(N, 1)
        tokens[keep[b]] = flat.decoder_embed(latent[b])
        expected = flat.decoder_pred(flat.decoder_norm(tokens + flat.decoder_pos_embed[0]))
        torch.testing.assert_close(out[b], expected, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- mixture of experts


def constant_experts(moe: MoEMLP) -> MoEMLP:
    """Expert e outputs the one-hot vector e whatever its input (zero weights, fc2 bias = e_e)."""
    with torch.no_grad():
        for p in moe.experts.parameters():
            p.zero_()
        moe.experts.fc2.bias.copy_(torch.eye(moe.num_experts, moe.experts.fc2.bias.shape[1]))
    return moe


def test_moe_routes_each_token_to_its_top_k_experts_with_renormalised_gates():
    moe = constant_experts(MoEMLP(dim=8, hidden=16, num_experts=4, top_k=2, capacity_factor=4.0))
    x = torch.randn(2, 10, 8)
    out = moe(x)
    probs = torch.softmax(moe.router(x), dim=-1)
    gates, chosen = probs.topk(2, dim=-1)
    expected = torch.zeros_like(out).scatter_(-1, chosen, gates / gates.sum(-1, keepdim=True))
    torch.testing.assert_close(out, expected)
    assert moe.dropped_fraction.item() == 0.0


def test_moe_drops_assignments_over_capacity_first_choices_first():
    moe = constant_experts(MoEMLP(dim=8, hidden=16, num_experts=2, top_k=2, capacity_factor=0.5))
    assert moe.capacity(3) == 2
    with torch.no_grad():  # every token prefers expert 0, then expert 1
        moe.router.weight.zero_()
        moe.router.weight[0, 0] = 2.0
    x = torch.zeros(1, 3, 8)
    x[..., 0] = 1.0
    out = moe(x)[0]
    p0 = torch.softmax(torch.tensor([2.0, 0.0]), 0)[0]
    torch.testing.assert_close(out[:2, :2], torch.tensor([[p0, 1 - p0]] * 2))
    torch.testing.assert_close(out[2], torch.zeros(8))  # both of token 2's slots were full
    assert moe.dropped_fraction.item() == pytest.approx(2 / 6)
    moe.eval()  # no drops at evaluation: features do not depend on batch mates
    torch.testing.assert_close(moe(x)[0, 2], out[0])
    assert moe.dropped_fraction.item() == 0.0


def test_moe_aux_loss_is_one_when_balanced_and_larger_when_collapsed():
    moe = MoEMLP(dim=8, hidden=16, num_experts=2, top_k=1)
    with torch.no_grad():
        moe.router.weight.zero_()
    moe(torch.randn(1, 6, 8))
    assert moe.aux_loss.item() == pytest.approx(1.0)  # uniform router probabilities
    with torch.no_grad():
        moe.router.weight[0, 0], moe.router.weight[1, 0] = 3.0, -3.0
    x = torch.zeros(1, 6, 8)
    x[0, :3, 0], x[0, 3:, 0] = 1.0, -1.0
    moe(x)
    assert moe.aux_loss.item() == pytest.approx(1.0)  # half the tokens to each expert
    x[0, :, 0] = 1.0
    moe(x)
    assert moe.aux_loss.item() == pytest.approx(2 * torch.sigmoid(torch.tensor(6.0)).item())
    assert moe.aux_loss.item() > 1.9
    both = MoEMLP(dim=8, hidden=16, num_experts=2, top_k=2)  # each token uses both experts
    both(torch.randn(1, 6, 8))
    assert both.aux_loss.item() == pytest.approx(1.0)


@pytest.mark.parametrize("top_k", [1, 2])
def test_moe_gradients_reach_the_router_from_output_and_aux_loss(top_k):
    moe = MoEMLP(dim=8, hidden=16, num_experts=4, top_k=top_k)
    moe(torch.randn(2, 6, 8)).pow(2).sum().backward()
    assert moe.router.weight.grad.abs().sum() > 0 and moe.experts.fc1.weight.grad.abs().sum() > 0
    moe.zero_grad()
    moe(torch.randn(2, 6, 8))
    moe.aux_loss.backward()
    assert moe.router.weight.grad.abs().sum() > 0


def test_moe_encoder_collects_aux_losses_and_can_be_copied_after_forward():
    enc = tiny_encoder(depth=4, moe=MoEConfig(num_experts=4, top_k=2, every=2)).train()
    kinds = [type(b.mlp).__name__ for b in enc.blocks]
    assert kinds == ["MLP", "MoEMLP", "MLP", "MoEMLP"]
    assert "blocks.1.mlp.experts.fc1.weight" in enc.state_dict()
    enc(torch.randn(2, 1, *IMG), masks=keep_indices(2, 16))
    expected = (enc.blocks[1].mlp.aux_loss + enc.blocks[3].mlp.aux_loss) / 2
    torch.testing.assert_close(enc.moe_aux_loss(), expected)
    assert enc.moe_aux_loss().requires_grad
    teacher = copy.deepcopy(enc)  # an EMA teacher is a deep copy of the student
    assert teacher.blocks[1].mlp.aux_loss is None
    assert tiny_encoder().moe_aux_loss().item() == 0.0


# ---------------------------------------------------------------- checkpoints


def vjepa_style_checkpoint(enc: nn.Module) -> dict:
    decoy = tiny_encoder()
    wrap = lambda sd: {f"module.backbone.{k}": v.clone() for k, v in sd.items()}  # noqa: E731
    return {"encoder": wrap(decoy.state_dict()), "target_encoder": wrap(enc.state_dict()),
            "predictor": {"module.predictor_embed.weight": torch.zeros(2, 2)},
            "opt": {"state": {}, "param_groups": []}, "epoch": 7}


def test_load_encoder_reads_a_vjepa_style_checkpoint(tmp_path):
    enc = tiny_encoder()
    path = tmp_path / "jepa-latest.pth.tar"
    torch.save(vjepa_style_checkpoint(enc), path)
    x = torch.randn(1, 1, *IMG)
    loaded = load_encoder(path, tiny_encoder()).eval()
    torch.testing.assert_close(loaded(x), enc(x), atol=0, rtol=0)
    student = load_encoder(path, dict(name="vit_tiny", **TINY), key="encoder").eval()
    assert not torch.allclose(student(x), enc(x))


def test_load_encoder_names_missing_and_unexpected_keys():
    ckpt = vjepa_style_checkpoint(tiny_encoder())
    ckpt["target_encoder"].pop("module.backbone.blocks.1.mlp.fc2.bias")
    ckpt["target_encoder"]["module.backbone.cls_token"] = torch.zeros(1, 1, 48)
    fresh = tiny_encoder()
    before = fresh.state_dict()["blocks.0.attn.qkv.weight"].clone()
    with pytest.raises(CheckpointError, match=r"missing \(1\): blocks\.1\.mlp\.fc2\.bias") as err:
        load_encoder(ckpt, fresh)
    assert "unexpected (1): cls_token" in str(err.value)
    torch.testing.assert_close(fresh.state_dict()["blocks.0.attn.qkv.weight"], before)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_encoder(ckpt, tiny_encoder(img_size=(32, 32, 32)), key="encoder")
    with pytest.raises(CheckpointError, match="no 'teacher'"):
        load_encoder(ckpt, fresh, key="teacher")


def test_safetensors_export_round_trip_and_checksum(tmp_path):
    enc = tiny_encoder(moe={"num_experts": 4}, num_modalities=3)
    meta = {"objective": "jepa", "steps": 10, "data": "demo/pool", "git_commit": None}
    weights = save_encoder(enc, tmp_path / "encoder", meta)
    assert weights.name == "encoder.safetensors"
    sidecar = json.loads((tmp_path / "encoder.json").read_text())
    assert sidecar["meta"] == meta and sidecar["config"]["moe"]["num_experts"] == 4
    assert len(sidecar["sha256"]) == 64

    x = torch.randn(1, 1, *IMG)
    loaded = load_encoder(weights).eval()  # config from the sidecar
    torch.testing.assert_close(loaded(x, modality=1), enc(x, modality=1), atol=0, rtol=0)

    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_encoder(weights)
    with pytest.raises(ValueError, match="provenance"):
        save_encoder(enc, tmp_path / "other", {"objective": "mae"})


def test_uniform_power_position_embedding_follows_the_official_split():
    # official src/models/utils/pos_embs.py, get_3d_sincos_pos_embed:
    #   "h_embed_dim = w_embed_dim = d_embed_dim = int(np.ceil(embed_dim/6)*2)"
    #   "pos_embed = np.concatenate([emb_d, emb_h, emb_w], axis=1)"; "pos_embed = pos_embed[:, :embed_dim]"
    from neurossl.models.layers import sincos_1d, sincos_pos_embed_3d

    grid = (2, 3, 4)
    d, h, w = torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij")
    for dim in (768, 48, 100):
        part = int(math.ceil(dim / 6) * 2)
        expected = torch.cat([sincos_1d(part, d), sincos_1d(part, h), sincos_1d(part, w)], dim=1)
        torch.testing.assert_close(sincos_pos_embed_3d(dim, grid, uniform_power=True),
                                   expected[:, :dim].float())
    default = sincos_pos_embed_3d(48, grid)  # half the channels to depth
    torch.testing.assert_close(default[:, :24], sincos_1d(24, d).float())


def test_uniform_power_reaches_encoder_decoder_predictor_and_the_saved_config():
    from neurossl.models import build_predictor
    from neurossl.models.layers import sincos_pos_embed_3d

    enc = build_encoder("vit_tiny", img_size=16, patch_size=8, tubelet_size=8, embed_dim=48,
                        depth=1, num_heads=2, uniform_power=True)
    assert enc.config["uniform_power"] is True
    torch.testing.assert_close(enc.pos_embed[0], sincos_pos_embed_3d(48, enc.grid_size, True))
    dec = build_decoder(enc, decoder_embed_dim=24, decoder_depth=1, decoder_num_heads=2)
    torch.testing.assert_close(dec.decoder_pos_embed[0], sincos_pos_embed_3d(24, enc.grid_size, True))
    pred = build_predictor(enc, predictor_embed_dim=24, depth=1, num_heads=2)
    torch.testing.assert_close(pred.predictor_pos_embed[0], sincos_pos_embed_3d(24, enc.grid_size, True))


def test_modality_index_maps_contrasts_to_embedding_rows_and_names_unknown_ones():
    from neurossl.models.vit import modality_index

    rows = modality_index(["FLAIR", "T1w", "FLAIR"], ("T1w", "T2w", "FLAIR"))
    assert rows.tolist() == [2, 0, 2] and rows.dtype == torch.long
    with pytest.raises(ValueError, match=r"contrasts \['CT'\] have no modality embedding.*'T1w', 'T2w'"):
        modality_index(["T1w", "CT"], ("T1w", "T2w"))
    with pytest.raises(KeyError, match="the batch needs 'modality'"):
        modality_index(None, ("T1w",))
