"""Shared plumbing: atomic files, checksums, the device rule and the AdamW no-decay rule."""

import pytest
import torch
from torch import nn

from neurossl.runtime.device import resolve_device
from neurossl.runtime.files import atomic_path, sha256_file
from neurossl.runtime.param_groups import param_groups


def test_sha256_of_a_known_content(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert sha256_file(path, chunk=2) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_an_atomic_write_replaces_the_file_whole_or_leaves_the_old_one(tmp_path):
    final = tmp_path / "sub" / "table.csv"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        tmp.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert final.read_text() == "old"
    assert sorted(p.name for p in final.parent.iterdir()) == ["table.csv"]  # no temporary left


def test_the_device_rule_names_the_key_and_never_falls_back_silently(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="train.device must be one of auto, cpu, cuda, got 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        resolve_device("cuda")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 4)
        self.encoder.pos_embed = nn.Parameter(torch.zeros(1, 3, 4))
        self.encoder.modality_embed = nn.Parameter(torch.zeros(3, 4))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)
        self.head.query_tokens = nn.Parameter(torch.zeros(1, 1, 4))
        self.frozen = nn.Parameter(torch.zeros(2, 2), requires_grad=False)


def test_only_weight_matrices_decay_and_lr_factors_follow_prefixes():
    model = Tiny()
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, {"encoder.": 0.1})
    seen = {(names[id(p)], g["lr_scale"], g["apply_decay"]) for g in groups for p in g["params"]}
    assert seen == {("encoder.weight", 0.1, True), ("encoder.bias", 0.1, False),
                    ("encoder.pos_embed", 0.1, False), ("encoder.modality_embed", 0.1, False),
                    ("norm.weight", 1.0, False), ("norm.bias", 1.0, False),
                    ("head.weight", 1.0, True), ("head.bias", 1.0, False),
                    ("head.query_tokens", 1.0, False)}
    assert all(g["weight_decay"] == 0.0 for g in groups if not g["apply_decay"])
