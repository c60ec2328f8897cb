"""The benchmark scripts compute what their pages say: the paper-run cost, like for like vs MONAI."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from monai.networks.blocks import TransformerBlock

from neurossl.evaluate.tables import append_results

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_paper_run_cost_is_volumes_over_rate():
    cost = load("paper_run_cost")
    rates = pd.DataFrame({"shape": ["paper", "demo", "paper"], "objective": ["mae", "mae", "slmae"],
                          "spectral_every": [None, None, 25], "vol_s": [1.0, 99.0, 2.0]})
    table = cost.cost_table(rates, scans=40, epochs=360)  # 14,400 volumes: 4 h at 1 volume / s
    assert table["objective"].tolist() == ["mae", "slmae (K=25)"]
    assert table["GPU-hours, 1 GPU"].tolist() == [4.0, 2.0]
    assert table["wall hours, 4 GPUs at linear scaling"].tolist() == [1.0, 0.5]


def test_paper_run_cost_counts_the_released_split_when_given(tmp_path):
    cost = load("paper_run_cost")
    pd.DataFrame({"subject_id": ["a", "a", "b"], "scan_uid": ["1", "2", "3"]}).to_csv(
        tmp_path / cost.PRETRAIN_FILE, index=False)
    assert cost.pretrain_scans(tmp_path) == 3
    with pytest.raises(SystemExit, match="no such split file"):
        cost.pretrain_scans(tmp_path / "missing")


def test_monai_twin_has_the_same_architecture():
    vs = load("bench_vs_monai")
    s = dict(size=16, patch=4, width=48, depth=2, heads=3, dec_width=24, dec_depth=1, dec_heads=2)
    ours, _ = vs.neurossl_mae(s, torch.device("cpu"))
    theirs, _ = vs.monai_mae(s, torch.device("cpu"))

    def trainable(module):
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    # MONAI adds a class token (one row of the width) and, in every block, a cross-attention
    # LayerNorm that self-attention blocks never call (a weight and a bias of the block's width)
    unused = s["width"] + 2 * s["width"] * s["depth"] + 2 * s["dec_width"] * s["dec_depth"]
    assert trainable(theirs) - trainable(ours) == unused
    def blocks(sequence):  # MONAI's sequences end with their final LayerNorm
        return sum(isinstance(m, TransformerBlock) for m in sequence)

    assert blocks(theirs.blocks) == len(ours.student.blocks) == s["depth"]
    assert blocks(theirs.decoder_blocks) == len(ours.decoder.decoder_blocks) == s["dec_depth"]


def test_context_fill_keeps_a_constant_and_follows_a_ramp_but_not_noise():
    fill = load("bench_context_fill")
    visible = np.random.default_rng(0).random((16, 16, 16)) > 0.5
    assert np.allclose(fill.context_fill(np.full((16, 16, 16), 3.0), visible, 2.0), 3.0)
    ramp = np.broadcast_to(np.linspace(-1, 1, 16)[:, None, None], (16, 16, 16)).copy()
    noise = np.random.default_rng(1).standard_normal((2, 16, 16, 16))
    assert fill.score(np.stack([ramp, ramp]), size=4, ratio=0.5, sigma=1.0) > 0.9
    assert abs(fill.score(noise, size=4, ratio=0.5, sigma=1.0)) < 0.1


def test_probe_benchmark_times_the_same_function_both_ways():
    probe = load("bench_probe")
    torch.manual_seed(0)
    ours = probe.AttentiveProbe(24, 2, num_heads=3)
    per_token = probe.PerTokenProbe(24, 2, num_heads=3)
    per_token.load_state_dict(ours.state_dict())
    with torch.no_grad():
        for param in ours.parameters():
            param.add_(0.1 * torch.randn_like(param))
        per_token.load_state_dict(ours.state_dict())
    tokens = torch.randn(4, 30, 24)
    torch.testing.assert_close(per_token(tokens), ours(tokens), rtol=1e-5, atol=1e-5)


def test_signal_tokens_finds_the_position_that_carries_the_label():
    bench = load("bench_signal_tokens")
    rng = np.random.default_rng(0)
    y = {p: np.tile([0, 1], n // 2) for p, n in (("train", 120), ("val", 40), ("test", 40))}
    tokens = {}
    for p, labels in y.items():
        t = rng.normal(size=(len(labels), 6, 8))
        t[:, 3, 0] += 2.5 * labels  # only position 3 knows the class
        tokens[p] = t
    best = bench.token_regression(tokens, y)
    assert best["position"] == 3 and best["test_auc"] > 0.8
    assert bench.position_regression(tokens, y, 1)["test_auc"] < 0.75


def test_lesion_readouts_take_each_scans_own_lesion_token():
    bench = load("bench_lesion_tokens")
    tokens = {"test": np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)}
    weights = {"test": np.array([[0.1, 0.0, 0.9], [0.0, 1.0, 0.0]]) + 1e-6}
    located = bench.located(tokens, weights)
    np.testing.assert_array_equal(located["lesion token"]["test"], [[4, 5], [8, 9]])
    np.testing.assert_allclose(located["lesion-weighted mean"]["test"][0], 0.1 * tokens["test"][0, 0]
                               + 0.9 * tokens["test"][0, 2], atol=1e-4)


def test_lesion_statistics_see_a_sharp_rim_steeper_than_a_blurred_one():
    from scipy import ndimage as ndi
    bench = load("bench_lesion_tokens")
    grid = np.indices((24, 24, 24)) - 11.5
    ball = (np.sqrt((grid ** 2).sum(axis=0)) < 6).astype(np.float32)
    fraction = torch.from_numpy(ball)
    sharp = bench.lesion_statistics(torch.from_numpy(ball)[None], fraction)
    blurred = bench.lesion_statistics(torch.from_numpy(ndi.gaussian_filter(ball, 2.0))[None], fraction)
    assert sharp[3] > 1.5 * blurred[3]  # gradient on the rim
    assert sharp[5] == blurred[5] == ball.sum()  # the same lesion size


def test_probe_seed_ensemble_averages_each_scans_probabilities():
    bench = load("bench_probe_seeds")
    key = {"encoder": "mae", "objective": "mae", "task": "t", "mode": "frozen", "fold": 0}
    rows = [{**key, "subject_id": s, "scan_uid": f"{s}-1", "y": y, "seed": seed, "p0": 1 - p, "p1": p}
            for seed, probs in enumerate([(0.2, 0.6), (0.4, 1.0)])
            for s, y, p in zip(["a", "b"], [0, 1], probs)]
    mean = bench.ensemble(pd.DataFrame(rows)).set_index("scan_uid")
    assert set(mean["seed"]) == {-1}
    np.testing.assert_allclose(mean.loc[["a-1", "b-1"], "p1"], [0.3, 0.8])
    np.testing.assert_allclose(mean["p0"] + mean["p1"], 1.0)


def test_supervised_ceiling_reads_the_frozen_twins_auc_per_fold_only(tmp_path):
    bench = load("bench_supervised_ceiling")
    rows = [("random", "t", "frozen", 0, "roc_auc", 0.6), ("random", "t", "frozen", 1, "roc_auc", 0.7),
            ("random", "t", "frozen", 0, "accuracy", 0.9), ("random", "t", "finetune", 0, "roc_auc", 0.1),
            ("mae", "t", "frozen", 0, "roc_auc", 0.2), ("random", "u", "frozen", 0, "roc_auc", 0.3)]
    append_results(tmp_path / "eval" / "results.csv",
                   [{"encoder": e, "objective": "none", "task": t, "mode": m, "fold": f, "seed": 0,
                     "metric": k, "value": v} for e, t, m, f, k, v in rows])
    assert bench.frozen_twin(tmp_path, "t") == {0: 0.6, 1: 0.7}
