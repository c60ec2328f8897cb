"""Learning checks (neurossl.analysis.learning) and the collapse statistic, on inputs whose answer
is known: a perfect prediction passes, a trivial one fails, a collapsed encoder has rank ~1."""

import math

import numpy as np
import pytest
import torch

from neurossl.analysis.learning import (
    COLUMNS,
    MIN_CENTRED_RANK,
    batched_retrieval_hits,
    learning_checks,
    leave_one_out_mean,
    pearson_r,
    prediction_rows,
    psnr_db,
    rank_row,
    reconstruction_quality,
    reconstruction_rows,
    retrieval_hits,
)
from neurossl.config import load_config, save_config
from neurossl.evaluate.stats import bootstrap_mean
from neurossl.losses.collapse import collapse_monitor, collapse_stats
from neurossl.objectives import build_objective

SHAPE = (1, 16, 16, 16)  # (C, D, H, W): 2 x 2 x 2 = 8 tokens of 8^3 voxels with the smoke ViT


def volumes(v=6, seed=0):
    """Brain-like volumes: a shared template (with a zero background), plus per-volume texture."""
    g = torch.Generator().manual_seed(seed)
    template = torch.zeros(SHAPE)
    template[:, 3:13, 3:13, 3:13] = torch.rand(1, 10, 10, 10, generator=g) + 1
    return template + 0.3 * torch.randn(v, *SHAPE, generator=g) * (template > 0)


# -- statistics -------------------------------------------------------------------------------


def test_pearson_and_psnr_known_values():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert pearson_r(x, x) == pytest.approx(1.0)
    assert pearson_r(-2 * x + 3, x) == pytest.approx(-1.0)
    assert pearson_r(torch.zeros_like(x), x) == 0.0  # a constant prediction carries nothing
    assert psnr_db(x, x) == math.inf
    noisy = x + 0.1
    span = float(x.max() - x.min())
    assert psnr_db(noisy, x) == pytest.approx(10 * math.log10(span**2 / 0.01), rel=1e-4)


def test_leave_one_out_mean_excludes_the_volume_itself():
    x = torch.tensor([[1.0], [2.0], [6.0]])
    assert leave_one_out_mean(x).flatten().tolist() == [4.0, 3.5, 1.5]
    with pytest.raises(ValueError):
        leave_one_out_mean(x[:1])


def test_reconstruction_rows_perfect_passes_zero_and_template_fail():
    """DESIGN section 7: "MAE / SL-MAE: masked-voxel error and Pearson r against predicting zero
    and against the per-position mean of the training volumes (a template prior)"."""
    truth = volumes()
    masked = torch.zeros_like(truth, dtype=torch.bool)
    masked[..., :8] = True
    perfect = {r["check"]: r for r in reconstruction_rows("mae", truth.clone(), truth, masked)}
    assert perfect["recon_pearson_r"]["model"] == pytest.approx(1.0)
    assert all(r["passed"] for r in perfect.values())
    zero = {r["check"]: r for r in reconstruction_rows("mae", torch.zeros_like(truth), truth, masked)}
    assert zero["recon_pearson_r"]["model"] == 0.0 and not zero["recon_pearson_r"]["passed"]
    assert not zero["recon_error_vs_zero"]["passed"]  # equal to the zero predictor, not below
    # the template prior itself cannot beat the template prior
    template = leave_one_out_mean(truth)
    same = {r["check"]: r for r in reconstruction_rows("mae", template, truth, masked)}
    assert not same["recon_pearson_r"]["passed"]
    assert same["recon_pearson_r"]["trivial"] == pytest.approx(same["recon_pearson_r"]["model"])


def test_prediction_rows_against_the_mean_target():
    """DESIGN section 7: "JEPA family: prediction error against predicting each position's mean
    teacher target"."""
    g = torch.Generator().manual_seed(0)
    targets = torch.randn(5, 8, 4, generator=g)
    masked = torch.tensor([[0, 3, 5]] * 5)
    target = targets.gather(1, masked[..., None].expand(-1, -1, 4))
    good = prediction_rows("jepa", target.clone(), target, masked, targets)[0]
    assert good["model"] == 0.0 and good["passed"]
    mean = leave_one_out_mean(targets).gather(1, masked[..., None].expand(-1, -1, 4))
    trivial = prediction_rows("jepa", mean, target, masked, targets)[0]
    assert trivial["model"] == pytest.approx(trivial["trivial"]) and not trivial["passed"]


def test_retrieval_hits_perfect_and_collapsed():
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    assert retrieval_hits(z, z + 1e-3 * torch.randn(8, 16)).tolist() == [2] * 8
    # every view the same vector: argmax falls on the first other view, the positive for 1 of 16
    same = torch.ones(8, 16)
    assert retrieval_hits(same, same).sum() <= 2


def test_retrieval_within_batches_is_what_a_batch_of_that_size_sees():
    # 12 volumes in 3 groups of 4: within a group every volume is distinct, across groups the
    # k-th volumes are the same vector, so among all 24 views the positive ties with 2 others
    z = torch.eye(4).repeat(3, 1)
    noise = 1e-3 * torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    within = batched_retrieval_hits(z, z + noise, batch=4)
    assert within.tolist() == [2] * 12
    overall = retrieval_hits(z, z + noise)
    assert overall.shape == (12,) and overall.sum() < 24
    # a partial last group would have another chance level: it is left out
    assert batched_retrieval_hits(z[:10], z[:10] + noise[:10], batch=4).shape == (8,)
    with pytest.raises(ValueError, match="batches of 13"):
        batched_retrieval_hits(z, z, batch=13)


def test_bootstrap_mean_brackets_the_mean_and_collapses_on_constants():
    mean, low, high = bootstrap_mean(np.array([0.0, 0.5, 1.0, 0.25] * 10), n_boot=2000)
    assert mean == pytest.approx(0.4375) and low < mean < high
    assert bootstrap_mean(np.full(20, 0.25)) == (0.25, 0.25, 0.25)


def test_collapse_stats_tells_collapse_from_similar_inputs():
    g = torch.Generator().manual_seed(0)
    # healthy encoder on near-identical volumes: tokens differ by position, volumes barely
    per_position = torch.randn(1, 64, 32, generator=g)
    similar = per_position + 0.01 * torch.randn(8, 64, 32, generator=g)
    healthy = collapse_stats(similar)
    collapsed = collapse_stats(torch.randn(1, 1, 32, generator=g).expand(8, 64, 32)
                               + 1e-6 * torch.randn(8, 64, 32, generator=g))
    # pooled rank alone calls both collapsed (similar inputs), the token rank tells them apart
    assert healthy["pooled_rank"] < 1.5 and collapsed["pooled_rank"] < 1.5
    assert collapsed["token_rank"] == pytest.approx(1.0, abs=0.05)
    assert healthy["token_rank"] > 10 and healthy["centred_token_rank"] > 10
    # centred, the rank ignores scale: rounding-level variation around the one vector counts as
    # none, so the collapsed encoder scores 0, not the rank of its noise
    assert collapsed["centred_token_rank"] == 0.0
    with pytest.raises(ValueError):
        collapse_stats(torch.randn(8, 32))


def test_rank_row_fails_a_collapsed_encoder_against_its_twin():
    g = torch.Generator().manual_seed(0)
    twin = torch.randn(4, 64, 32, generator=g)
    assert rank_row("jepa", torch.randn(4, 64, 32, generator=g), twin)["passed"]
    assert not rank_row("jepa", torch.ones(4, 64, 32), twin)["passed"]
    # tokens varied around a large shared offset: collapse by the uncentred rank, not centred
    offset = torch.randn(4, 64, 32, generator=g) + 100.0 * torch.randn(32, generator=g)
    assert not rank_row("jepa", offset, twin)["passed"]
    centred = rank_row("jepa", offset, centre=True)
    assert centred["check"] == "centred_token_rank" and centred["passed"]
    assert centred["trivial"] == MIN_CENTRED_RANK
    # tokens that differ along one direction only (a scalar per token): collapsed, centred too
    line = torch.randn(4, 64, 1, generator=g) * torch.randn(32, generator=g) + 5.0
    assert rank_row("jepa", line, centre=True)["model"] == pytest.approx(1.0)
    assert not rank_row("jepa", line, centre=True)["passed"]
    assert not rank_row("jepa", torch.ones(4, 64, 32), centre=True)["passed"]
    with pytest.raises(ValueError, match="rank_row expects"):
        rank_row("jepa", torch.randn(64, 32), twin)
    with pytest.raises(ValueError, match="needs the random twin"):
        rank_row("jepa", offset)


def test_collapse_monitor_names_each_network():
    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.ones(x.shape[0], 8, 4)

    out = collapse_monitor({"student": Constant()}, torch.zeros(3, *SHAPE))
    assert out["student_token_rank"] == pytest.approx(1.0)
    assert out["student_centred_token_rank"] == 0.0  # every token is the same vector
    assert out["student_pooled_std"] == 0.0


# -- run folders ------------------------------------------------------------------------------


def run_folder(tmp_path, objective_name):
    cfg = load_config("smoke", objective=objective_name,
                      overrides=["preprocess.crop_size=16", "preprocess.depth=16"])
    torch.manual_seed(1)
    objective = build_objective(cfg, SHAPE)
    save_config(cfg, tmp_path / "config.yaml")
    (tmp_path / "checkpoints").mkdir()
    torch.save({"objective": objective.state_dict()}, tmp_path / "checkpoints" / "last.pt")
    return tmp_path


@pytest.mark.parametrize("name,checks", [
    ("mae", {"recon_pearson_r", "recon_error_vs_zero", "recon_error_vs_template", "centred_token_rank"}),
    ("jepa", {"prediction_error", "centred_token_rank"}),
    ("simclr", {"positive_retrieval", "positive_retrieval_all", "centred_token_rank"}),
    ("dino_mim", {"teacher_entropy", "mim_term", "centred_token_rank"}),
])
def test_learning_checks_of_an_untrained_run(tmp_path, name, checks):
    images = volumes()
    table = learning_checks(run_folder(tmp_path, name), images)
    assert list(table.columns) == COLUMNS
    assert set(table["check"]) == checks and set(table["objective"]) == {name}
    by_check = table.set_index("check")
    if name == "simclr":  # within the smoke profile's batches of 4: one full batch of the 6 volumes
        assert by_check.loc["positive_retrieval", "n_volumes"] == 4
        assert by_check.loc["positive_retrieval", "trivial"] == pytest.approx(1 / 7)
        assert by_check.loc["positive_retrieval_all", "trivial"] == pytest.approx(1 / 11)
        by_check = by_check.drop("positive_retrieval")
    assert (by_check["n_volumes"] == len(images)).all()
    if name == "mae":  # an untrained decoder carries no anatomy
        r = by_check.loc["recon_pearson_r"]
        assert not r["passed"] and r["model"] < 0.5


def test_reconstruction_quality_columns(tmp_path):
    table = reconstruction_quality(run_folder(tmp_path, "slmae"), volumes())
    assert list(table.columns) == ["objective", "pearson_r", "psnr_db", "n_volumes"]
    assert table["objective"].item() == "slmae" and table["n_volumes"].item() == 6


@pytest.mark.parametrize("name,roles", [("mae", ("student",)), ("moe_jepa", ("student", "teacher"))])
def test_every_objective_logs_the_token_rank(name, roles):
    """The trainer logs ``objective.monitor``: every objective has it, MoE-JEPA with contrasts."""
    cfg = load_config("smoke", objective=name, overrides=["preprocess.crop_size=16", "preprocess.depth=16"])
    objective = build_objective(cfg, SHAPE)
    out = objective.monitor({"image": volumes(3), "modality": ["T1w", "T2w", "FLAIR"]})
    assert set(out) == {f"{r}_{k}" for r in roles
                        for k in ("token_rank", "centred_token_rank", "pooled_rank", "pooled_std")}
    assert out["student_token_rank"] > out["student_pooled_rank"] >= 1.0


def _embeddings(kind: str):
    """``distinct``: every volume its own vector; ``alike``: one vector for all; ``one``: volume 0
    its own, the rest alike (a share above chance carried by one or two volumes)."""
    def embed(x):
        if kind == "distinct":
            return x.flatten(1)
        z = torch.ones(len(x), 32)
        if kind == "one":
            z[0, 0] = -1.0
        return z
    return embed


@pytest.mark.parametrize("kind,passes", [("distinct", True), ("alike", False), ("one", False)])
def test_simclr_rows_pass_only_when_the_interval_is_above_chance(tmp_path, monkeypatch, kind, passes):
    """Views that keep each volume apart retrieve every positive (share 1, passes); embeddings
    all alike retrieve by the argmax's tie-break only (fails); a share above chance that one or
    two of the volumes carry has an interval over volumes reaching 0 (fails)."""
    import neurossl.objectives.views as views
    from neurossl.analysis.learning import _eval_info, simclr_rows
    from neurossl.analysis.runs import load_run_objective

    images = volumes(8)
    objective, _ = load_run_objective(run_folder(tmp_path, "simclr"), tuple(images.shape[1:]))
    monkeypatch.setattr(views, "random_view", lambda x, *args: x)  # two identical views
    monkeypatch.setattr(objective, "projector", torch.nn.Identity())
    monkeypatch.setattr(objective, "embed", _embeddings(kind))
    rows = {r["check"]: r for r in simclr_rows(objective, images, _eval_info(0), batch=4, draws=2)}
    assert rows["positive_retrieval"]["trivial"] == pytest.approx(1 / 7)
    assert rows["positive_retrieval_all"]["trivial"] == pytest.approx(1 / 15)
    for row in rows.values():
        assert row["passed"] is passes
    if kind == "distinct":
        assert all(row["model"] == 1.0 for row in rows.values())
    if kind == "one":  # above chance as a share, not beyond the volumes' noise
        assert rows["positive_retrieval_all"]["model"] > rows["positive_retrieval_all"]["trivial"]
