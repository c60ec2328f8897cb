"""Subject-level splits: file names, make_splits' protocol, the audit and the guarded loader."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurossl.config import SplitConfig
from neurossl.splits.audit import assert_no_leakage, audit_splits, format_audit, load_partition
from neurossl.splits.files import SplitError, SplitLeakageError, parse_split_name, read_splits, split_file_name
from neurossl.splits.make import SplitWarning, make_splits, subject_labels

PAPER_SPLITS = Path(__file__).resolve().parents[2] / "shared" / "paper-splits"
TASK_LABELS = {"nc_vs_ad": {"NC", "AD"}, "nc_vs_mci": {"NC", "MCI"}}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("adni_pretrain_ids.csv", ("adni", None, None, "pretrain")),
        ("adni_downstream_fold0_nc_vs_ad_train_ids.csv", ("adni", "nc_vs_ad", 0, "train")),
        ("adni_downstream_fold4_nc_vs_mci_test_ids.csv", ("adni", "nc_vs_mci", 4, "test")),
        ("scan_downstream_nc_vs_mci_val_ids.csv", ("scan", "nc_vs_mci", None, "val")),
        ("scan_pretrain_ids.csv", ("scan", None, None, "pretrain")),
        ("ucsf_grade2_vs_34_test_uids.csv", ("ucsf", "grade2_vs_34", None, "test")),
        ("ucsf_multiclass_train_uids.csv", ("ucsf", "multiclass", None, "train")),
        ("abide_downtrain_ids.csv", ("abide", None, None, "train")),
        ("abide_downval_ids.csv", ("abide", None, None, "val")),
        ("abide_downtest_ids.csv", ("abide", None, None, "test")),
        ("brats24_pretrain_ids.csv", ("brats24", None, None, "pretrain")),
        ("oasis3_pretrain_ids.csv", ("oasis3", None, None, "pretrain")),
    ],
)
def test_every_released_naming_pattern_parses(name, expected):
    assert tuple(parse_split_name(name)) == expected


@pytest.mark.parametrize(
    "name",
    ["adni_ids.csv", "adni_pretrain.csv", "ADNI_pretrain_ids.csv", "adni_downstream_ids.csv",
     "adni_downstream_fold0_nc_vs_ad_holdout_ids.csv", "adni_pretrain_train_ids.csv"],
)
def test_unparseable_name_is_an_error_naming_it(name):
    with pytest.raises(SplitError, match=name):
        parse_split_name(name)


@pytest.mark.parametrize(
    "key",
    [("cognition", "pretrain", None, None), ("cognition", "val", "nc_vs_ad", 3),
     ("glioma", "test", "grade2_vs_34", None), ("abide", "train", None, None)],
)
def test_written_names_parse_back_to_their_key(key):
    dataset, partition, task, fold = key
    assert tuple(parse_split_name(split_file_name(*key))) == (dataset, task, fold, partition)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_read_splits_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        read_splits(tmp_path / "missing")
    _write(tmp_path / "splits.json", "{}")
    with pytest.raises(SplitError, match="no split CSV"):
        read_splits(tmp_path)
    bad = _write(tmp_path / "adni_pretrain_ids.csv", "subject,scan_uid\ns1,a\n")
    with pytest.raises(SplitError, match="adni_pretrain_ids.csv.*subject_id"):
        read_splits(tmp_path)
    _write(bad, "subject_id,scan_uid\n")
    with pytest.raises(SplitError, match="adni_pretrain_ids.csv.*no scans"):
        read_splits(tmp_path)
    _write(bad, "subject_id,scan_uid\ns1,a\n")
    _write(tmp_path / "adni_train.csv", "subject_id,scan_uid\ns2,b\n")
    with pytest.raises(SplitError, match="adni_train.csv"):
        read_splits(tmp_path)


def test_read_splits_keeps_ids_as_text(tmp_path):
    _write(tmp_path / "abide_downtest_ids.csv", "subject_id,scan_uid\n0050012,00001\n")
    splits = read_splits(tmp_path)
    assert splits.loc[0, "subject_id"] == "0050012" and splits.loc[0, "scan_uid"] == "00001"
    assert splits.loc[0, "partition"] == "test" and splits.loc[0, "task"] is None


def synthetic_scans(seed: int = 0) -> pd.DataFrame:
    """120 cognition, 30 glioma, 30 autism, 10 pool subjects with 1-3 scans each."""
    rng = np.random.default_rng(seed)
    cohorts = [("cognition", 120, ["NC", "MCI", "AD"]), ("glioma", 30, ["G2", "G3", "G4"]),
               ("autism", 30, ["TD", "ASD"]), ("pool", 10, [""])]
    rows = []
    for dataset, n, labels in cohorts:
        for i in range(n):
            subject = f"{dataset}-{i:03d}"
            for session in range(int(rng.integers(1, 4))):
                rows.append({"scan_uid": f"{subject}-ses{session}", "subject_id": subject,
                             "session": session, "dataset": dataset,
                             "label": labels[i % len(labels)]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def scans():
    return synthetic_scans()


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory, scans):
    out = tmp_path_factory.mktemp("splits")
    make_splits(scans, out, SplitConfig(seed=3))
    return out


@pytest.fixture(scope="module")
def splits(split_dir):
    return read_splits(split_dir)


def test_made_splits_are_clean_and_ignore_the_manifest(split_dir):
    assert (split_dir / "splits.json").is_file()
    result = audit_splits(split_dir)
    assert result.leaks == [] and result.notes == []
    assert_no_leakage(result)


def test_cognition_cv_tests_every_downstream_subject_once(scans, splits):
    cognition = splits[splits["dataset"] == "cognition"]
    pretrain = set(cognition.loc[cognition["partition"] == "pretrain", "subject_id"])
    downstream = set(cognition.loc[cognition["partition"] != "pretrain", "subject_id"])
    assert pretrain | downstream == set(scans.loc[scans["dataset"] == "cognition", "subject_id"])
    assert len(downstream) == 18  # 15% of 120
    labels = subject_labels(scans)
    for task, wanted in TASK_LABELS.items():
        rows = cognition[cognition["task"] == task]
        members = {s for s in downstream if labels[s] in wanted}
        assert sorted(rows["fold"].unique()) == [0, 1, 2, 3, 4]
        tested = rows[rows["partition"] == "test"].drop_duplicates(["fold", "subject_id"])
        assert sorted(tested["subject_id"]) == sorted(members)  # each exactly once
        for _, fold in rows.groupby("fold"):
            assert set(fold["subject_id"]) == members


def test_stratification_roughly_holds(scans, splits):
    labels = subject_labels(scans)
    cognition = splits[splits["dataset"] == "cognition"]
    pool = labels[sorted(set(cognition.loc[cognition["partition"] != "pretrain", "subject_id"]))]
    assert pool.value_counts().to_dict() == {"NC": 6, "MCI": 6, "AD": 6}
    tests = cognition[cognition["partition"] == "test"]
    tests = tests.drop_duplicates(["task", "fold", "subject_id"])
    per_fold = tests.assign(label=labels[tests["subject_id"]].to_numpy())
    counts = per_fold.groupby(["task", "fold", "label"]).size()
    assert counts.min() >= 1 and counts.max() <= 2  # 6 per label over 5 folds
    glioma = splits[(splits["dataset"] == "glioma") & (splits["task"] == "multiclass")]
    test = glioma[glioma["partition"] == "test"].drop_duplicates("subject_id")
    assert sorted(labels[test["subject_id"]].value_counts().to_list()) == [1, 2, 2]  # 5 of 10/10/10


def test_downstream_only_datasets_never_pretrain(scans, splits):
    expected_tasks = {"glioma": {"grade2_vs_34", "multiclass"}, "autism": {"asd_vs_td"}}
    for dataset, tasks in expected_tasks.items():
        rows = splits[splits["dataset"] == dataset]
        assert "pretrain" not in set(rows["partition"])
        assert set(rows["task"]) == tasks
        everyone = set(scans.loc[scans["dataset"] == dataset, "subject_id"])
        pretrained = set(splits.loc[splits["partition"] == "pretrain", "subject_id"])
        assert everyone.isdisjoint(pretrained)
        for _, task_rows in rows.groupby("task"):
            placed = task_rows.drop_duplicates("subject_id")
            assert sorted(placed["subject_id"]) == sorted(everyone)  # each in one partition
            sizes = placed["partition"].value_counts().to_dict()
            assert sizes == {"train": 20, "val": 5, "test": 5}  # 70 / 15 / 15 of 30
    glioma = splits[splits["dataset"] == "glioma"]
    by_task = {
        task: rows.set_index("scan_uid")["partition"].sort_index()
        for task, rows in glioma.groupby("task")
    }
    pd.testing.assert_series_equal(by_task["multiclass"], by_task["grade2_vs_34"])
    pool = splits[splits["dataset"] == "pool"]
    assert set(pool["partition"]) == {"pretrain"}
    assert set(pool["scan_uid"]) == set(scans.loc[scans["dataset"] == "pool", "scan_uid"])


def test_every_scan_follows_its_subject(scans, splits):
    scans_of = scans.groupby("subject_id")["scan_uid"].apply(set)
    for _, rows in splits.groupby("file"):
        listed = rows.groupby("subject_id")["scan_uid"].apply(set)
        for subject, uids in listed.items():
            assert uids == scans_of[subject]


def test_same_seed_gives_byte_identical_files(tmp_path, scans, split_dir):
    again = make_splits(scans.sample(frac=1.0, random_state=1), tmp_path, SplitConfig(seed=3))
    first = sorted(p.name for p in split_dir.iterdir())
    assert first == sorted([p.name for p in again] + ["splits.json"])
    for name in first:
        assert (tmp_path / name).read_bytes() == (split_dir / name).read_bytes(), name
    text = (tmp_path / "cognition_pretrain_ids.csv").read_text().splitlines()
    assert text[0] == "subject_id,scan_uid" and text[1:] == sorted(text[1:])


def test_other_seed_gives_other_split(tmp_path, scans, split_dir):
    make_splits(scans, tmp_path, SplitConfig(seed=4))
    name = "cognition_pretrain_ids.csv"
    assert (tmp_path / name).read_bytes() != (split_dir / name).read_bytes()


def test_latest_session_gives_the_subject_label():
    scans = pd.DataFrame({"subject_id": ["a", "a", "a", "b"], "scan_uid": ["1", "2", "3", "4"],
                          "session": [2, 10, 1, 1], "label": ["MCI", "AD", "NC", ""]})
    assert subject_labels(scans).to_dict() == {"a": "AD", "b": ""}


def test_converters_keep_only_their_task_scans(tmp_path):
    rows = []
    for i, history in enumerate([["NC"]] * 30 + [["MCI"]] * 30 + [["MCI", "AD"]] * 30):
        for session, label in enumerate(history):
            rows.append({"scan_uid": f"s{i:02d}-{session}", "subject_id": f"s{i:02d}",
                         "session": session, "dataset": "cognition", "label": label})
    scans = pd.DataFrame(rows)
    with pytest.warns(SplitWarning, match="nc_vs_ad: .* scan\\(s\\) of its subjects carry another"):
        make_splits(scans, tmp_path, SplitConfig(downstream_fraction=0.5))
    splits = read_splits(tmp_path)
    converters = {f"s{i:02d}" for i in range(60, 90)}
    listed = splits[splits["subject_id"].isin(converters)]
    downstream = listed[listed["partition"] != "pretrain"]
    assert set(downstream["task"]) == {"nc_vs_ad"} and not downstream.empty
    assert set(downstream["scan_uid"].str[-2:]) == {"-1"}  # the AD scan only
    pretrain = listed[listed["partition"] == "pretrain"]
    assert set(pretrain["scan_uid"]) == {f"{s}-{k}" for s in pretrain["subject_id"] for k in (0, 1)}
    assert audit_splits(tmp_path).leaks == []


def test_small_cohort_is_a_clear_error(tmp_path):
    scans = synthetic_scans()
    scans = scans[~((scans["label"] == "AD") & (scans["subject_id"] > "cognition-030"))]
    with pytest.raises(SplitError, match=r"cognition/nc_vs_ad.*'AD': \d.*5 folds"):
        make_splits(scans, tmp_path, SplitConfig())
    assert not list(tmp_path.glob("*.csv"))  # nothing half-written


def test_tiny_holdout_keeps_every_label_in_test_and_warns_for_val(tmp_path):
    scans = synthetic_scans()
    keep = scans["dataset"] != "autism"
    keep |= scans["subject_id"].isin([f"autism-{i:03d}" for i in range(4)])  # TD, ASD, TD, ASD
    with pytest.warns(SplitWarning, match="autism val: too few subjects to stratify"):
        make_splits(scans[keep], tmp_path, SplitConfig())
    test = pd.read_csv(tmp_path / "autism_downstream_asd_vs_td_test_ids.csv", dtype=str)
    labels = subject_labels(scans)
    # 15% of 4 subjects rounds to 1; the test set is raised to one subject per label
    assert sorted(labels[test["subject_id"].unique()]) == ["ASD", "TD"]
    assert "autism val" in (tmp_path / "splits.json").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="label"), "lacks column"),
        (lambda t: t.assign(scan_uid=t["scan_uid"].where(t.index != 5, t["scan_uid"][4])),
         "scan_uid not unique"),
        (lambda t: t.assign(subject_id=t["subject_id"].where(t["dataset"] != "pool", "glioma-000")),
         "more than one dataset: glioma-000"),
        (lambda t: t.assign(dataset=t["dataset"].replace("pool", "oasis")), "dataset\\(s\\) oasis"),
    ],
)
def test_ambiguous_scans_table_is_refused(tmp_path, scans, change, message):
    with pytest.raises(SplitError, match=message):
        make_splits(change(scans), tmp_path, SplitConfig())


def test_stale_csv_in_output_is_refused(tmp_path, scans):
    _write(tmp_path / "cognition_downstream_fold7_nc_vs_ad_test_ids.csv", "subject_id,scan_uid\n")
    with pytest.raises(SplitError, match="fold7"):
        make_splits(scans, tmp_path, SplitConfig())


def _copy(split_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(split_dir, target)
    return target


def _append(path: Path, rows: pd.DataFrame) -> None:
    table = pd.concat([pd.read_csv(path, dtype=str), rows[["subject_id", "scan_uid"]]])
    table.to_csv(path, index=False)


def test_audit_names_a_subject_copied_into_val(split_dir, tmp_path):
    leaky = _copy(split_dir, tmp_path)
    test_file = "cognition_downstream_fold0_nc_vs_ad_test_ids.csv"
    val_file = "cognition_downstream_fold0_nc_vs_ad_val_ids.csv"
    test = pd.read_csv(leaky / test_file, dtype=str)
    subject = test["subject_id"].iloc[0]
    _append(leaky / val_file, test[test["subject_id"] == subject])
    result = audit_splits(leaky)
    found = [(leak.kind, leak.subject_id, leak.fold, leak.partitions, leak.files)
             for leak in result.leaks]
    assert found == [("within-split", subject, 0, ("val", "test"), (val_file, test_file))]
    text = format_audit(result)
    assert "LEAKAGE" in text and subject in text and val_file in text and test_file in text
    with pytest.raises(SplitLeakageError, match=rf"(?s){subject}.*{val_file}.*{test_file}"):
        assert_no_leakage(leaky)


def test_audit_names_a_downstream_subject_in_pretraining(split_dir, tmp_path):
    leaky = _copy(split_dir, tmp_path)
    test_file = "cognition_downstream_fold2_nc_vs_mci_test_ids.csv"
    test = pd.read_csv(leaky / test_file, dtype=str)
    subject = test["subject_id"].iloc[-1]
    _append(leaky / "cognition_pretrain_ids.csv", test[test["subject_id"] == subject])
    leaks = audit_splits(leaky).leaks
    assert {leak.subject_id for leak in leaks} == {subject}
    assert {leak.kind for leak in leaks} == {"pretrain-downstream"}
    assert ("cognition_pretrain_ids.csv", test_file) in {leak.files for leak in leaks}
    with pytest.raises(SplitLeakageError, match=subject):
        assert_no_leakage(leaky)


def test_load_partition_refuses_a_leaking_split(split_dir, tmp_path):
    leaky = _copy(split_dir, tmp_path)
    test = pd.read_csv(leaky / "glioma_downstream_multiclass_test_ids.csv", dtype=str)
    subject = test["subject_id"].iloc[0]
    train_file = leaky / "glioma_downstream_multiclass_train_ids.csv"
    _append(train_file, test[test["subject_id"] == subject])
    with pytest.raises(SplitLeakageError, match=subject):
        load_partition(leaky, "glioma", "train", task="multiclass")
    # other datasets of the folder are unaffected by the glioma leak
    assert len(load_partition(leaky, "pool", "pretrain")) > 0


def test_load_partition_sees_a_folder_changed_after_a_first_load(split_dir, tmp_path):
    # load_partition keeps the folder's audit between calls; a leak written afterwards must
    # still be refused, and a repaired folder loaded again.
    folder = _copy(split_dir, tmp_path)
    train_file = folder / "glioma_downstream_multiclass_train_ids.csv"
    clean = train_file.read_bytes()
    first = load_partition(folder, "glioma", "train", task="multiclass")
    test = pd.read_csv(folder / "glioma_downstream_multiclass_test_ids.csv", dtype=str)
    subject = test["subject_id"].iloc[0]
    _append(train_file, test[test["subject_id"] == subject])
    with pytest.raises(SplitLeakageError, match=subject):
        load_partition(folder, "glioma", "train", task="multiclass")
    train_file.write_bytes(clean)
    pd.testing.assert_frame_equal(load_partition(folder, "glioma", "train", task="multiclass"), first)
    (folder / "glioma_downstream_multiclass_val_ids.csv").unlink()
    with pytest.raises(SplitError, match="glioma_downstream_multiclass_train_ids.csv"):
        load_partition(folder, "glioma", "val", task="multiclass")


def test_load_partition_returns_the_file_rows(split_dir):
    rows = load_partition(split_dir, "cognition", "val", task="nc_vs_ad", fold=1)
    expected = pd.read_csv(split_dir / "cognition_downstream_fold1_nc_vs_ad_val_ids.csv", dtype=str)
    pd.testing.assert_frame_equal(rows, expected)
    with pytest.raises(SplitError, match="cognition_downstream_fold0_nc_vs_ad_test_ids.csv"):
        load_partition(split_dir, "cognition", "val", task="nc_vs_ad")  # fold missing


def test_audit_counts_match_the_scans_table(scans, split_dir):
    result = audit_splits(split_dir)
    totals = result.totals.set_index("dataset")
    for dataset, rows in scans.groupby("dataset"):
        counted = totals.loc[dataset]
        stage = "downstream" if dataset in ("glioma", "autism") else "pretrain"
        if dataset != "cognition":
            assert counted[f"{stage}_subjects"] == rows["subject_id"].nunique()
            assert counted[f"{stage}_scans"] == len(rows)
    cognition = totals.loc["cognition"]
    assert cognition["pretrain_subjects"] + cognition["downstream_subjects"] == 120
    assert "downstream (all folds)" in format_audit(result)


@pytest.mark.skipif(not PAPER_SPLITS.is_dir(), reason="the paper's released splits are not here")
def test_released_splits_reproduce_table1():
    result = audit_splits(PAPER_SPLITS)
    totals = result.totals.set_index("dataset")
    adni = totals.loc["adni"]
    assert (adni["pretrain_subjects"], adni["pretrain_scans"]) == (1224, 31347)
    assert (adni["downstream_subjects"], adni["downstream_scans"]) == (496, 5392)
    scan = totals.loc["scan"]
    assert (scan["pretrain_subjects"], scan["pretrain_scans"]) == (3701, 10060)
    assert (scan["downstream_subjects"], scan["downstream_scans"]) == (1167, 3147)
    assert tuple(totals.loc["ucsf", ["downstream_subjects", "downstream_scans"]]) == (184, 2024)
    assert tuple(totals.loc["abide", ["downstream_subjects", "downstream_scans"]]) == (1109, 1206)
    assert result.leaks == []


def test_demo_protocol_tests_hold_30_subjects_and_validation_20(tmp_path):
    """Sized from the demo profile's plan alone (no voxels), as `make demo` will split it."""
    import json

    from neurossl.cohort.cohort_plan import plan_cohort, planned_scans
    from neurossl.config import load_config
    from neurossl.tasks import TASKS

    cfg = load_config("demo")
    make_splits(planned_scans(plan_cohort(cfg.cohort)), tmp_path, cfg.splits)
    files = json.loads((tmp_path / "splits.json").read_text())["files"]
    for task in TASKS.values():
        folds = [f for f in files if f.startswith(f"{task.dataset}_downstream") and f"_{task.split_task}_" in f]
        tests = [files[f]["subjects"] for f in folds if f.endswith("_test_ids.csv")]
        vals = [files[f]["subjects"] for f in folds if f.endswith("_val_ids.csv")]
        assert tests and min(tests) >= 30, (task.name, tests)
        assert min(vals) >= 20, (task.name, vals)
    pretrain = sum(v["scans"] for f, v in files.items() if f.endswith("pretrain_ids.csv") and not f.startswith("headct"))
    assert pretrain >= 400  # the MRI pretraining set keeps its size


def test_committed_demo_splits_are_the_demo_profiles(tmp_path):
    from neurossl.cohort.cohort_plan import plan_cohort, planned_scans
    from neurossl.config import load_config

    cfg = load_config("demo")
    make_splits(planned_scans(plan_cohort(cfg.cohort)), tmp_path, cfg.splits)
    committed = Path(__file__).resolve().parents[1] / "splits" / "demo"
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in committed.iterdir() if p.name != "README.md")
    for name in written:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name
