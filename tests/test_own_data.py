"""A user's own data end to end through the CLI: an ADNI-like download and a BIDS tree, each
with released-format split files naming scans the user lacks, to exact coverage numbers."""

import pandas as pd
import pytest

from neurossl.cli import main
from neurossl.data.scans_table import read_scans_table
from neurossl.evaluate.tables import read_results
from own_data import ABIDE_MAP, ADNI_MAP, make_adni_like, make_bids_like

ADNI_WITH_MODALITY = r"(?P<subject_id>\d{3}_S_\d{4})_MR_(?P<modality>[A-Za-z0-9]+)_.*_(?P<scan_uid>I\d+)\.nii"
PRETRAIN, TEST = "adni_pretrain_ids.csv", "adni_downstream_fold0_nc_vs_ad_test_ids.csv"


def smoke(*argv):
    return [*argv, "--profile", "smoke"]


def coverage_counts(folder):
    table = pd.read_csv(folder / "coverage.csv").set_index("file")
    return {f: tuple(int(v) for v in row) for f, row in table[["named", "on_disk", "kept", "cached"]].iterrows()}


def curate_and_cache(root, work):
    assert main(smoke("curate", str(root), "--report", str(work / "curation.csv"), "--quiet")) == 0
    assert main(smoke("preprocess", str(root), "--curation", str(work / "curation.csv"),
                      "--cache", str(work / "cache"), "--quiet")) == 0


@pytest.mark.slow
def test_adni_like_download_to_pretraining_and_one_fold(smoke_data, tmp_path, capsys):
    data = make_adni_like(smoke_data, tmp_path)
    assert main(["scans", "pattern", str(data.root), "--dataset", "adni", "--pattern", ADNI_WITH_MODALITY,
                 "--labels", str(data.labels), "--on", "scan_uid=IMAGEUID", "--label", "DX", "--age", "AGE",
                 *ADNI_MAP]) == 0
    scans = read_scans_table(data.root / "scans.tsv").set_index("scan_uid")
    smoke_scans = pd.read_csv(smoke_data / "cohort" / "scans.tsv", sep="\t", dtype=str, keep_default_na=False)
    expected = {data.ids[u]: lab for u, lab in zip(smoke_scans["scan_uid"], smoke_scans["label"]) if u in data.ids}
    assert scans["label"].drop(data.too_small).to_dict() == expected
    assert scans.loc[data.too_small, "label"] == ""
    unmatched = pd.read_csv(data.root / "scans_unmatched.tsv", sep="\t")
    assert sorted(unmatched["item"]) == sorted([scans.loc[data.too_small, "path"], "scan_uid=I999999"])

    pretrain_ids = pd.read_csv(data.splits / PRETRAIN, dtype=str)["scan_uid"]
    deleted = next(u for u in pretrain_ids if u in data.ids.values())
    (data.root / scans.loc[deleted, "path"]).unlink()  # lost after the table was written
    curate_and_cache(data.root, tmp_path)

    guard = ["--scans", str(data.root / "scans.tsv"), "--curation", str(tmp_path / "curation.csv")]
    run = tmp_path / "run"
    pretrain = smoke("pretrain", "--objective", "mae", "--cache", str(tmp_path / "cache"),
                     "--splits", str(data.splits), "--run-dir", str(run), *guard)
    capsys.readouterr()
    assert main(pretrain) == 2  # default --min-coverage 0.9
    err = capsys.readouterr().err
    assert f"{PRETRAIN}: " in err and "2 not_in_table (e.g. I388001, I388002)" in err
    assert f"1 missing_file (e.g. {deleted})" in err and "1 file_too_small (e.g. I399999)" in err
    assert not (run / "metrics.jsonl").exists()

    assert main([*pretrain, "--min-coverage", "0.6"]) == 0
    named = len(pretrain_ids)
    assert coverage_counts(run) == {PRETRAIN: (named, named - 3, named - 4, named - 4)}
    assert (run / "encoder.safetensors").is_file()

    out = tmp_path / "eval"
    assert main(smoke("evaluate", "--encoder", str(run), "--task", "adni_nc_vs_ad", "--mode", "frozen",
                      "--set", "evaluate.max_folds=1", "--cache", str(tmp_path / "cache"),
                      "--splits", str(data.splits), "--out", str(out), *guard, "--min-coverage", "0.6")) == 0
    print(capsys.readouterr().out)
    tested = pd.read_csv(data.splits / TEST, dtype=str)["scan_uid"]
    counts = coverage_counts(out)
    assert counts[TEST] == (len(tested), len(tested) - 1, len(tested) - 1, len(tested) - 1)
    assert all(c[0] == c[3] for f, c in counts.items() if f != TEST)
    results = read_results(out / "results.csv")
    assert set(results["fold"]) == {0} and set(results["metric"]) == {"accuracy", "macro_f1", "roc_auc"}
    predicted = pd.read_csv(out / "predictions" / "run__adni_nc_vs_ad__frozen.csv", dtype={"scan_uid": str})
    assert sorted(predicted["scan_uid"]) == sorted(set(tested) - {"I388003"})

    # a split that gives a scan another subject than the user's table is refused before any work
    clash = pd.read_csv(data.splits / TEST, dtype=str)
    clash.loc[0, "subject_id"] = "999_S_0001"
    clash.to_csv(data.splits / TEST, index=False)
    assert main(smoke("evaluate", "--encoder", str(run), "--task", "adni_nc_vs_ad", "--cache",
                      str(tmp_path / "cache"), "--splits", str(data.splits), "--out", str(tmp_path / "e2"),
                      *guard)) == 2
    assert f"scan_uid {clash.loc[0, 'scan_uid']} is subject 999_S_0001 in the split" in capsys.readouterr().err


@pytest.mark.slow
def test_bids_tree_to_one_evaluation(smoke_data, smoke_runs, tmp_path, capsys):
    data = make_bids_like(smoke_data, tmp_path)
    assert main(["scans", "bids", str(data.root), "--dataset", "abide", "--label", "DX_GROUP", *ABIDE_MAP]) == 0
    scans = read_scans_table(data.root / "scans.tsv").set_index("scan_uid")
    smoke_scans = pd.read_csv(smoke_data / "cohort" / "scans.tsv", sep="\t", dtype=str, keep_default_na=False)
    autism = smoke_scans[smoke_scans["dataset"] == "autism"]
    assert scans["label"].to_dict() == {data.ids[u]: lab for u, lab in zip(autism["scan_uid"], autism["label"])}
    assert set(scans["subject_id"]) == set(data.subjects.values()) and set(scans["session"]) == {"01"}
    reasons = pd.read_csv(data.root / "scans_unmatched.tsv", sep="\t")["reason"].tolist()
    assert sorted(reasons) == ["datatype folder 'fmap' is not anat",
                               "suffix 'angio' is not a modality of the contract (T1w, T2w, FLAIR, PDw, T2starw, T1c, ADC, DWI, CT)"]

    curate_and_cache(data.root, tmp_path)
    out = tmp_path / "eval"
    assert main(smoke("evaluate", "--encoder", str(smoke_runs["mae"]), "--task", "abide_asd_vs_td",
                      "--cache", str(tmp_path / "cache"), "--splits", str(data.splits), "--out", str(out),
                      "--scans", str(data.root / "scans.tsv"), "--curation", str(tmp_path / "curation.csv"),
                      "--min-coverage", "0.5")) == 0
    sizes = {f"abide_down{p}_ids.csv": len(pd.read_csv(data.splits / f"abide_down{p}_ids.csv"))
             for p in ("train", "val", "test")}
    expected = {f: (n, n, n, n) for f, n in sizes.items()}
    n = sizes["abide_downtest_ids.csv"]
    expected["abide_downtest_ids.csv"] = (n, n - 1, n - 1, n - 1)
    assert coverage_counts(out) == expected
    results = read_results(out / "results.csv")
    assert set(results["task"]) == {"abide_asd_vs_td"} and set(results["fold"]) == {-1}
