"""The demo's headline summary reads the notebooks' tables and counts what it says it counts."""

import pandas as pd

from neurossl.headlines import headline_summary


def test_headlines_count_passed_checks_paper_cells_and_autism_intervals(tmp_path):
    pd.DataFrame({"objective": ["mae", "mae", "jepa"], "check": ["recon_pearson_r", "token_rank", "prediction_error"],
                  "model": [0.6, 40.0, 0.3], "trivial": [0.4, 18.0, 0.2], "passed": [True, True, False]}
                 ).to_csv(tmp_path / "tab02_learning_checks.csv", index=False)
    rows = [("mae", "cognition_nc_vs_ad", "frozen", 0.1, 0.02, 0.2),
            ("mae", "glioma_grade2_vs_34", "frozen", 0.0, -0.1, 0.1),
            ("mae", "cognition_nc_vs_ad", "finetune", 0.3, 0.1, 0.5),  # not a frozen cell
            ("simclr", "cognition_nc_vs_ad", "frozen", 0.3, 0.1, 0.5),  # not a paper encoder
            ("mae", "autism_asd_vs_td", "frozen", 0.0, -0.2, 0.2),
            ("jepa", "autism_asd_vs_td", "frozen", 0.3, 0.05, 0.5),
            ("moe_jepa", "glioma_grade2_vs_34:T2w", "frozen", 0.1, -0.05, 0.25)]  # one contrast
    pd.DataFrame(rows, columns=["encoder", "task", "mode", "diff", "low", "high"]).assign(
        auc=0.5, auc_reference=0.5, n_scans=33).to_csv(tmp_path / "tab03_paired_vs_random.csv", index=False)
    text = headline_summary(tmp_path)
    assert "- mae: 2 of 2 checks beat their trivial baseline" in text
    assert "- jepa: 0 of 1 checks beat their trivial baseline (not: prediction_error)" in text
    assert "above 0: 1 of 2" in text
    assert "autism: the interval covers 0 for 1 of 2 encoders" in text
    assert ("- moe_jepa on glioma_grade2_vs_34, T2w only: AUC 0.500 vs its random twin 0.500, "
            "difference [-0.050, +0.250] (33 scans)") in text
    assert "Not found under" in text and "tab02_reconstruction_quality" in text


def test_per_contrast_rows_split_the_contrast_and_are_written_only_when_present(tmp_path):
    from neurossl.evaluate.report import write_per_contrast

    paired = pd.DataFrame({"encoder": ["moe_jepa", "moe_jepa", "mae"], "mode": "frozen",
                           "task": ["glioma_grade2_vs_34:T2w", "glioma_grade2_vs_34", "autism_asd_vs_td"],
                           "auc": [0.6, 0.5, 0.4], "auc_reference": 0.5, "diff": [0.1, 0.0, -0.1],
                           "low": -0.2, "high": 0.3, "n_scans": 33})
    rows = write_per_contrast(paired, tmp_path)
    assert rows[["encoder", "task", "contrast", "auc"]].values.tolist() == [
        ["moe_jepa", "glioma_grade2_vs_34", "T2w", 0.6]]
    assert (tmp_path / "tab03_per_contrast.csv").is_file()
    none = write_per_contrast(paired[~paired["task"].str.contains(":")], tmp_path / "none")
    assert none.empty and not (tmp_path / "none").exists()
