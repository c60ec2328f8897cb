"""Downstream statistics: metrics against hand computations, bootstrap, DeLong, result tables."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from neurossl.evaluate.metrics import METRICS, classification_metrics, weighted_metric
from neurossl.evaluate.stats import (
    bootstrap_ci,
    bootstrap_p_value,
    bootstrap_weights,
    delong_covariance,
    delong_test,
    paired_bootstrap,
)
from neurossl.evaluate.tables import (
    RESULT_COLUMNS,
    append_results,
    paper_table,
    read_results,
    summarise,
    write_table,
)


def one_hot_proba(pred, n_classes, confidence=0.8):
    """(N, K) probabilities whose argmax is ``pred``."""
    proba = np.full((len(pred), n_classes), (1 - confidence) / (n_classes - 1))
    proba[np.arange(len(pred)), pred] = confidence
    return proba


def simulated_case(rng, n, accuracy, n_classes=2):
    """Labels (N,) and probabilities (N, K) that are right with probability ``accuracy``."""
    y = rng.integers(0, n_classes, n)
    wrong = rng.random(n) >= accuracy
    pred = np.where(wrong, (y + rng.integers(1, n_classes, n)) % n_classes, y)
    return y, one_hot_proba(pred, n_classes)


def informative_proba(rng, y, signal):
    """Binary (N, 2) probabilities whose positive column rises with the label by ``signal``."""
    p1 = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=len(y)))))
    return np.stack([1 - p1, p1], axis=1)


# ---- metrics ----------------------------------------------------------------------------------


def test_binary_auc_is_share_of_correctly_ordered_pairs():
    # positives score 0.35, 0.8; negatives 0.1, 0.4: pairs (0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4)
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    proba = np.stack([1 - p1, p1], axis=1)
    assert classification_metrics(y, proba)["roc_auc"] == pytest.approx(3 / 4)


def test_binary_auc_reads_only_the_positive_column():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    scrambled_col0 = np.array([0.9, 0.0, 0.95, 0.05])  # logits of another head, say
    proba = np.stack([scrambled_col0, p1], axis=1)
    assert classification_metrics(y, proba)["roc_auc"] == pytest.approx(3 / 4)


def test_three_class_accuracy_and_macro_f1_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    # F1 per class: 0 -> tp 1 fp 1 fn 1 = 1/2; 1 -> tp 2 fp 1 = 4/5; 2 -> tp 1 fn 1 = 2/3
    out = classification_metrics(y, one_hot_proba(pred, 3))
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert set(out) == set(METRICS)


def test_multiclass_auc_is_sklearn_ovr_macro():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 80)
    proba = rng.dirichlet(np.ones(4), 80)
    expected = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=range(4))
    assert classification_metrics(y, proba)["roc_auc"] == pytest.approx(expected)
    logits = np.log(proba) + 3.0  # rows no longer sum to 1: accepted, same per-class ranks
    assert classification_metrics(y, logits)["roc_auc"] == pytest.approx(expected)


def test_auc_is_nan_when_a_class_is_missing():
    binary = classification_metrics([1, 1, 1], one_hot_proba(np.array([1, 0, 1]), 2))
    assert math.isnan(binary["roc_auc"]) and binary["accuracy"] == pytest.approx(2 / 3)
    three = classification_metrics([0, 1, 1, 0], np.full((4, 3), 1 / 3))
    assert math.isnan(three["roc_auc"])


def test_class_labels_map_to_columns():
    proba = one_hot_proba(np.array([0, 1, 1]), 2)
    assert classification_metrics([10, 20, 10], proba, classes=[10, 20])["accuracy"] == 2 / 3


@pytest.mark.parametrize(
    ("y", "proba", "message"),
    [
        ([0, 1], np.array([0.2, 0.8]), "2-D"),
        ([0, 1, 1], np.full((2, 2), 0.5), "3 labels but proba has 2 rows"),
        ([0, 3], np.full((2, 3), 1 / 3), r"labels \[3\] are out of range"),
        ([[0], [1]], np.full((2, 2), 0.5), "1-D"),
        ([0, 1], np.array([[0.5, np.nan], [0.5, 0.5]]), "nan"),
    ],
)
def test_bad_inputs_raise(y, proba, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y, proba)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_weighted_metric_equals_metric_of_repeated_samples(n_classes):
    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 40)
    proba = np.round(rng.dirichlet(np.ones(n_classes), 40), 1)  # rounding makes ties
    weights = bootstrap_weights(40, 15, rng)
    for metric in METRICS:
        batch = weighted_metric(metric, y, proba, weights)
        for row, value in zip(weights, batch):
            idx = np.repeat(np.arange(40), row)
            expected = classification_metrics(y[idx], proba[idx])[metric]
            np.testing.assert_allclose(value, expected, rtol=1e-12, equal_nan=True)


# ---- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_ci_of_accuracy_covers_the_true_value():
    rng = np.random.default_rng(0)
    covered = 0
    for repeat in range(100):
        y, proba = simulated_case(rng, 200, accuracy=0.8)
        ci = bootstrap_ci(y, proba, metric="accuracy", n_boot=400, seed=repeat)
        covered += ci.low <= 0.8 <= ci.high
    assert 85 <= covered <= 99


def test_bootstrap_ci_fields_and_seed():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    proba = informative_proba(rng, y, 1.0)
    ci = bootstrap_ci(y, proba, n_boot=1000, seed=3)
    assert ci.point == pytest.approx(classification_metrics(y, proba)["roc_auc"])
    assert ci.low < ci.point < ci.high and ci.n_boot == ci.n_valid == 1000
    assert bootstrap_ci(y, proba, n_boot=1000, seed=3) == ci


def test_grouped_weights_keep_the_scans_of_a_subject_together():
    rng = np.random.default_rng(2)
    groups = np.repeat(["s0", "s1", "s2", "s3", "s4"], [1, 2, 3, 1, 4])  # 11 scans, 5 subjects
    weights = bootstrap_weights(11, 200, rng, groups)
    for subject in np.unique(groups):
        scans = weights[:, groups == subject]
        assert (scans == scans[:, :1]).all()
    first_scans = [np.flatnonzero(groups == s)[0] for s in np.unique(groups)]
    assert (weights[:, first_scans].sum(axis=1) == 5).all()  # 5 subjects drawn per resample


def test_grouped_bootstrap_is_wider_for_repeated_scans():
    rng = np.random.default_rng(3)
    y_subject, proba_subject = simulated_case(rng, 60, accuracy=0.75)
    y, proba = np.repeat(y_subject, 4), np.repeat(proba_subject, 4, axis=0)  # 4 scans per subject
    groups = np.repeat(np.arange(60), 4)
    scans = bootstrap_ci(y, proba, metric="accuracy", n_boot=1000)
    subjects = bootstrap_ci(y, proba, metric="accuracy", n_boot=1000, groups=groups)
    # 60 independent subjects, not 240 independent scans: about twice as wide
    assert subjects.high - subjects.low > 1.5 * (scans.high - scans.low)


def test_bootstrap_raises_when_auc_is_mostly_undefined():
    y = np.array([0] * 17 + [1, 2, 3])  # three singleton classes: most resamples miss one
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_ci(y, np.full((20, 4), 0.25), n_boot=200)
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_ci(np.zeros(10, int), np.full((10, 2), 0.5), n_boot=50)


def test_paired_bootstrap_of_identical_encoders():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 100)
    proba = informative_proba(rng, y, 0.5)
    test = paired_bootstrap(y, proba, proba.copy(), n_boot=500)
    assert (test.diff, test.low, test.high, test.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_bootstrap_detects_a_better_encoder():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    good, noise = informative_proba(rng, y, 1.5), informative_proba(rng, y, 0.0)
    test = paired_bootstrap(y, good, noise, n_boot=2000)
    assert test.diff > 0 and test.low > 0 and test.p_value < 0.01
    assert test.p_value >= 1 / 2001
    reverse = paired_bootstrap(y, noise, good, n_boot=2000)
    assert reverse.diff == pytest.approx(-test.diff) and reverse.p_value == test.p_value


def test_bootstrap_p_value_tails_and_floor():
    assert bootstrap_p_value(np.ones(99)) == pytest.approx(1 / 100)
    assert bootstrap_p_value(np.array([-1.0, -0.5, 0.5, 1.0])) == 1.0
    assert bootstrap_p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.5)


# ---- DeLong -----------------------------------------------------------------------------------


def brute_force_delong(y, scores):
    """DeLong (1988) from the pairwise kernel psi(x, y) = 1[x > y] + 1[x = y] / 2: O(m n)."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)  # (P, m), (P, n)
    return psi.mean(axis=(1, 2)), np.cov(v10) / pos.shape[1] + np.cov(v01) / neg.shape[1]


def test_delong_tiny_case_by_hand():
    # a: positives 0.8, 0.6 / negatives 0.7, 0.2 -> AUC 3/4, V10 = (1, 1/2), V01 = (1/2, 1)
    # b: positives 0.9, 0.3 / negatives 0.5, 0.4 -> AUC 1/2, V10 = (1, 0),   V01 = (1/2, 1/2)
    # S10 = [[1/8, 1/4], [1/4, 1/2]], S01 = [[1/8, 0], [0, 0]]
    # var = (1/8 + 1/2 - 1/2) / 2 + (1/8) / 2 = 1/8, z = (1/4) / sqrt(1/8) = 1 / sqrt(2)
    result = delong_test([1, 1, 0, 0], [0.8, 0.6, 0.7, 0.2], [0.9, 0.3, 0.5, 0.4])
    assert (result.auc_a, result.auc_b) == (0.75, 0.5)
    assert result.z == pytest.approx(1 / math.sqrt(2))
    assert result.p_value == pytest.approx(0.4795001221869535)


def test_delong_matches_sklearn_and_the_pairwise_definition():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 120)
    a = np.round(y + rng.normal(size=120), 1)  # rounded: ties within and across classes
    b = np.round(0.5 * y + rng.normal(size=120), 1)
    result = delong_test(y, a, b)
    assert result.auc_a == pytest.approx(roc_auc_score(y, a))
    assert result.auc_b == pytest.approx(roc_auc_score(y, b))
    aucs, cov = delong_covariance(y == 1, np.stack([a, b]))
    ref_aucs, ref_cov = brute_force_delong(y, np.stack([a, b]))
    np.testing.assert_allclose(aucs, ref_aucs)
    np.testing.assert_allclose(cov, ref_cov)


def test_delong_identical_scores_give_z_zero():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 50)
    score = rng.normal(size=50)
    for other in (score, 2 * score + 1):  # same ranks: variance of the difference is 0
        result = delong_test(y, score, other)
        assert (result.z, result.p_value) == (0.0, 1.0)


def test_delong_rejects_bad_labels():
    with pytest.raises(ValueError, match="binary"):
        delong_test([0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="two positives"):
        delong_test([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="one length"):
        delong_test([0, 0, 1, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4])


# ---- tables -----------------------------------------------------------------------------------


def result_rows():
    """Rows of two encoders, two tasks, both modes, three folds; one (mode, task) cell missing."""
    rows = []
    for encoder, objective in [("vit_b_mae", "mae"), ("vit_b_jepa", "jepa")]:
        for task in ["ad_vs_cn", "tumour_grade"]:
            for mode in ["finetune", "frozen"]:  # finetune first: the table still puts frozen first
                if (encoder, task, mode) == ("vit_b_jepa", "tumour_grade", "finetune"):
                    continue
                for fold in range(3):
                    value = 0.8 + 0.01 * fold + (0.05 if mode == "finetune" else 0.0)
                    rows.append(dict(encoder=encoder, objective=objective, task=task, mode=mode,
                                     fold=fold, seed=0, metric="roc_auc", value=value))
    return rows


def test_append_twice_writes_one_header(tmp_path):
    path = tmp_path / "sub" / "results.csv"
    rows = result_rows()
    append_results(path, rows)
    append_results(path, pd.DataFrame(rows)[list(reversed(RESULT_COLUMNS))])  # any column order
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(RESULT_COLUMNS)
    assert sum(line.startswith("encoder,") for line in lines) == 1
    frame = read_results(path)
    assert len(frame) == 2 * len(rows) and tuple(frame.columns) == RESULT_COLUMNS
    assert frame["value"].dtype == float and frame["fold"].dtype.kind == "i"


def test_append_names_missing_and_extra_columns(tmp_path):
    row = dict(result_rows()[0])
    row["score"] = row.pop("value")
    message = r"missing columns \['value'\], unexpected columns \['score'\]"
    with pytest.raises(ValueError, match=message):
        append_results(tmp_path / "r.csv", [row])
    (tmp_path / "old.csv").write_text("encoder,value\nx,1\n")
    with pytest.raises(ValueError, match="existing"):
        append_results(tmp_path / "old.csv", result_rows())


def test_summarise_mean_std_n():
    rows = result_rows() + [dict(result_rows()[0], task="single_fold", value=0.7)]
    summary = summarise(pd.DataFrame(rows))
    first = summary.iloc[0]
    assert (first["encoder"], first["task"], first["mode"]) == ("vit_b_mae", "ad_vs_cn", "finetune")
    assert first["mean"] == pytest.approx(0.86) and first["std"] == pytest.approx(0.01)
    assert first["n"] == 3
    single = summary[summary["task"] == "single_fold"].iloc[0]
    assert (single["mean"], single["std"], single["n"]) == (0.7, 0.0, 1)


def test_summarise_warns_on_repeated_rows():
    with pytest.warns(UserWarning, match="appended twice"):
        summarise(pd.DataFrame(result_rows() * 2))


def test_paper_table_layout():
    table = paper_table(pd.DataFrame(result_rows()))
    assert list(table.index) == ["vit_b_mae", "vit_b_jepa"] and table.index.name == "encoder"
    assert list(table.columns) == [
        ("frozen", "ad_vs_cn"), ("frozen", "tumour_grade"),
        ("finetune", "ad_vs_cn"), ("finetune", "tumour_grade"),
    ]
    assert table.loc["vit_b_mae", ("frozen", "ad_vs_cn")] == "0.810 ± 0.010"
    assert table.loc["vit_b_mae", ("finetune", "ad_vs_cn")] == "0.860 ± 0.010"
    assert table.loc["vit_b_jepa", ("finetune", "tumour_grade")] == "–"
    single = paper_table(pd.DataFrame([dict(result_rows()[0], task="one_split", value=0.7)]))
    assert single.loc["vit_b_mae", ("finetune", "one_split")] == "0.700"  # no spread to show
    by_objective = paper_table(summarise(pd.DataFrame(result_rows())), method_col="objective")
    assert list(by_objective.index) == ["mae", "jepa"]


def test_paper_table_rejects_ambiguous_cells():
    rows = result_rows() + [dict(result_rows()[0], objective="mae_v2")]
    with pytest.raises(ValueError, match="several results"):
        paper_table(pd.DataFrame(rows))


def test_write_table_writes_csv_markdown_latex(tmp_path):
    paths = write_table(paper_table(pd.DataFrame(result_rows())), tmp_path / "table_auc")
    assert [p.name for p in paths] == ["table_auc.csv", "table_auc.md", "table_auc.tex"]
    csv_text, md_text, tex_text = (p.read_text(encoding="utf-8") for p in paths)
    assert "0.810 ± 0.010" in csv_text and "frozen" in csv_text
    assert "frozen / ad_vs_cn" in md_text and "| vit_b_mae" in md_text and "–" in md_text
    for expected in (r"\toprule", r"\midrule", r"\bottomrule", r"0.810 $\pm$ 0.010",
                     r"\multicolumn{2}{c}{frozen}", r"ad\_vs\_cn", r"vit\_b\_jepa"):
        assert expected in tex_text
    assert "±" not in tex_text and "–" not in tex_text


def test_write_table_without_index_leaves_row_numbers_out(tmp_path):
    frame = pd.DataFrame({"dataset": ["glioma", "autism"], "subjects": [60, 45]})
    csv_path, md_path, tex_path = write_table(frame, tmp_path / "counts", index=False)
    assert csv_path.read_text(encoding="utf-8").splitlines() == ["dataset,subjects", "glioma,60", "autism,45"]
    assert md_path.read_text(encoding="utf-8").splitlines()[0].split("|")[1].strip() == "dataset"
    tex = tex_path.read_text(encoding="utf-8")
    assert r"\begin{tabular}{lc}" in tex and "glioma & 60" in tex
