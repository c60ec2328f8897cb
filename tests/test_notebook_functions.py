"""The package functions the notebooks call instead of computing in cells: known inputs, known text
and tables."""

import numpy as np
import pandas as pd
import pytest

from neurossl import pipeline
from neurossl.analysis.clustering import by_dataset_analysis, clustering_by_dataset, per_dataset_analyses
from neurossl.analysis.spectral_energy import hf_energy_tables
from neurossl.analysis.summaries import (hf_ordering, learning_verdict, nmi_summary, paired_verdict,
                                         reconstruction_hf_summary)


def test_learning_verdict_names_failed_checks_beside_their_baselines():
    checks = pd.DataFrame({"objective": ["mae", "mae", "jepa"],
                           "check": ["recon_pearson_r", "token_rank", "prediction_error"],
                           "model": [0.1, 40.0, 0.3], "trivial": [0.39, 18.0, 0.19],
                           "passed": [False, True, False]})
    text = learning_verdict(checks)
    assert "**mae** FAILS recon_pearson_r (recon_pearson_r 0.1 vs 0.39; token_rank 40 vs 18)" in text
    assert "**jepa** FAILS prediction_error" in text
    assert text.endswith("Learned beyond the trivial baselines: none.")
    assert learning_verdict(checks.assign(passed=True)).endswith("baselines: jepa, mae.")


def test_clustering_in_worker_processes_gives_the_serial_result():
    rng = np.random.default_rng(0)
    scans = pd.DataFrame({"dataset": np.repeat(["autism", "glioma", "mono"], 24),
                          "label": np.r_[np.tile([0, 1], 12), np.tile([0, 1, 2], 8), np.zeros(24)]})
    features = {name: rng.normal(size=(len(scans), 8)) + scans["label"].to_numpy()[:, None]
                for name in ("mae", "random")}
    serial = per_dataset_analyses(features, scans, methods=("tsne",), n_jobs=1)
    parallel = per_dataset_analyses(features, scans, methods=("tsne",), n_jobs=2)
    assert list(serial) == list(parallel) == ["autism", "glioma"]  # one label: nothing to score
    for dataset in serial:
        assert list(parallel[dataset]) == ["mae", "random"]
        for name, analysis in serial[dataset].items():
            assert np.array_equal(analysis.coords["tsne"], parallel[dataset][name].coords["tsne"])
            pd.testing.assert_frame_equal(analysis.scores, parallel[dataset][name].scores)
    whole = by_dataset_analysis(features, scans, methods=("tsne",), n_jobs=2)
    assert list(whole) == ["mae", "random"] and whole["mae"].coords["tsne"].shape == (72, 2)


def test_paired_verdict_counts_intervals_on_each_side_of_zero():
    paired = pd.DataFrame({"encoder": ["mae", "mae", "mae", "random"], "mode": ["frozen"] * 4,
                           "diff": [0.2, -0.1, 0.0, 0.5], "low": [0.1, -0.2, -0.1, 0.4],
                           "high": [0.3, -0.05, 0.1, 0.6]})
    text = paired_verdict(paired, ["mae"])
    assert "**mae**, frozen: mean gain +0.033 AUC over 3 task(s)" in text
    assert "in favour of pretraining on 1, against it on 1, and includes zero on 1" in text
    assert "Only the tasks whose interval excludes zero" in text
    assert "No encoder separates" in paired_verdict(paired.iloc[[2]], ["mae"])


def test_nmi_summary_gives_the_range_the_best_encoder_and_the_random_twin():
    scores = pd.DataFrame({"dataset": ["glioma"] * 4, "space": ["raw", "raw", "raw", "tsne"],
                           "encoder": ["mae", "jepa", "random", "mae"], "nmi": [0.1, 0.3, 0.05, 0.9],
                           "silhouette": [0.0] * 4})
    assert nmi_summary(scores) == ("- **glioma**: raw-space NMI of the SSL encoders 0.100–0.300 "
                                   "(best `jepa`), random twin 0.050.")


def energy(glioma, autism):
    return pd.DataFrame({"dataset": ["glioma"] * len(glioma) + ["autism"] * len(autism),
                         "modality": "T1w", "hf_energy": [*glioma, *autism]})


def test_hf_ordering_says_whether_the_papers_ordering_holds():
    assert "**holds**" in hf_ordering(energy([0.3, 0.4], [0.1, 0.2]))
    assert "**does not hold**" in hf_ordering(energy([0.1, 0.2], [0.3, 0.4]))
    assert hf_ordering(energy([0.3], [])) == ""  # autism has no T1w volume


def test_hf_energy_tables_per_dataset_and_contrast():
    tables = hf_energy_tables(energy([0.3, 0.5], [0.1]))
    assert tables["tab05_hf_energy"].loc["glioma", "mean"] == pytest.approx(0.4)
    assert tables["tab05_hf_energy"].loc["autism", "n"] == 1
    assert list(tables["tab05_hf_energy_by_contrast"]["modality"]) == ["T1w", "T1w"]


def test_reconstruction_hf_summary_counts_volumes_where_slmae_is_closer():
    hf = pd.DataFrame({"target": [0.3, 0.3], "MAE": [0.1, 0.29], "SL-MAE": [0.25, 0.2]},
                      index=pd.Index(["glioma", "autism"], name="dataset"))
    assert reconstruction_hf_summary(hf).endswith("than MAE's on 1 of 2 volumes.")
    assert "skipped" in reconstruction_hf_summary(None)


def test_clustering_table_has_one_row_per_dataset_and_encoder_and_the_papers_columns():
    scores = pd.DataFrame([(d, e, s, 0.1, 0.2) for d in ("autism", "glioma") for e in ("mae", "random")
                           for s in ("umap", "raw", "tsne")],
                          columns=["dataset", "encoder", "space", "silhouette", "nmi"])
    table = clustering_by_dataset(scores)
    assert list(table.columns) == ["encoder", "silhouette (raw)", "silhouette (tsne)", "silhouette (umap)",
                                   "nmi (raw)", "nmi (tsne)", "nmi (umap)"]
    assert len(table) == 4 and np.allclose(table["nmi (umap)"], 0.2)


def test_stage_names_are_checked():
    with pytest.raises(ValueError, match="until must be one of data, pretrained, evaluation, paper"):
        pipeline.demo("/nonexistent", until="train")
    with pytest.raises(ValueError, match="unknown objective 'maee'"):
        pipeline.pretrained("maee", "/nonexistent")


def test_tubelet_hf_summary_gives_the_difference_with_an_interval_over_volumes():
    from neurossl.analysis.summaries import tubelet_hf_summary

    hf = pd.DataFrame({"target_tubelets": [0.30, 0.30, 0.30, np.nan], "MAE_tubelets": [0.10, 0.12, 0.11, 0.2],
                       "SL-MAE_tubelets": [0.20, 0.22, 0.09, 0.3]})
    text = tubelet_hf_summary(hf)
    # the volume without a scored tubelet is left out; SL-MAE minus MAE: 0.10, 0.10, -0.02
    assert "SL-MAE minus MAE +0.0600" in text and "over the 3 volumes [-0.0200, +0.1000]" in text
    assert "closer to the target's on 2 of 3 volumes" in text
