"""The scans-table contract and its builders: every malformed input fails naming what is wrong."""

from pathlib import Path

import pandas as pd
import pytest

from neurossl.cli import main
from neurossl.data.scans_bids import bids_scan_uid, parse_bids_name, scans_from_bids
from neurossl.data.scans_build import BuildResult
from neurossl.data.scans_labels import LabelSpec, join_labels
from neurossl.data.scans_pattern import ADNI_PATTERN, compile_pattern, scans_from_pattern
from neurossl.data.scans_table import (
    LABELS, REQUIRED, ScansTableError, read_scans_table, validate_scans, write_scans_table,
)
from neurossl.tasks import PAPER_TASKS, TASKS

PAPER_SPLITS = Path(__file__).resolve().parents[2] / "shared" / "paper-splits"


def table(**changes) -> pd.DataFrame:
    rows = [
        {"scan_uid": "I1", "subject_id": "002_S_0001", "session": "bl", "dataset": "adni",
         "modality": "T1w", "label": "NC", "age": "71.5", "path": "a/I1.nii.gz"},
        {"scan_uid": "I2", "subject_id": "002_S_0002", "session": "m06", "dataset": "adni",
         "modality": "T1w", "label": "", "age": "", "path": "a/I2.nii"},
    ]
    frame = pd.DataFrame(rows)
    for key, value in changes.items():
        column, row = key.rsplit("_", 1)
        frame.loc[int(row), column] = value
    return frame


def test_a_valid_table_round_trips(tmp_path):
    path = write_scans_table(table(), tmp_path / "scans.tsv")
    back = read_scans_table(path)
    assert list(back.columns[: len(REQUIRED)]) == list(REQUIRED)
    assert back["age"].iloc[0] == 71.5 and pd.isna(back["age"].iloc[1])
    assert back["label"].tolist() == ["NC", ""]


def test_the_demo_cohort_table_meets_the_contract(smoke_data):
    scans = read_scans_table(smoke_data / "cohort" / "scans.tsv")
    assert set(scans["label"]) - {""} <= set(LABELS)


def test_every_task_label_is_a_contract_label():
    for task in [*TASKS.values(), *PAPER_TASKS.values()]:
        assert set(task.label_map) <= set(LABELS), task.name


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "scans.tsv"
    table().drop(columns="dataset").to_csv(path, sep="\t", index=False)
    with pytest.raises(ScansTableError, match=r"scans.tsv: missing required column\(s\) dataset"):
        read_scans_table(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"label_1": "CN"}, r"line 3 \(scan_uid 'I2'\), column 'label': 'CN' is not one of NC, MCI"),
        ({"age_0": "seventy"}, r"line 2 \(scan_uid 'I1'\), column 'age': 'seventy' is not a number"),
        ({"age_0": "700"}, r"column 'age': 700 is outside 0-120"),
        ({"modality_1": "MPRAGE"}, r"column 'modality': 'MPRAGE' is not one of T1w"),
        ({"dataset_0": "ADNI_1"}, r"column 'dataset': 'ADNI_1' must be lower-case"),
        ({"path_0": "/abs/I1.nii.gz"}, r"column 'path': '/abs/I1.nii.gz' must be a relative"),
        ({"path_0": "a/I1.mgz"}, r"column 'path': 'a/I1.mgz' is not a .nii"),
        ({"subject_id_1": ""}, r"line 3 \(scan_uid 'I2'\), column 'subject_id': is blank"),
        ({"scan_uid_1": "I1"}, r"column 'scan_uid': 'I1' appears on lines 2, 3"),
        ({"subject_id_1": "002_S_0001", "dataset_1": "scan"}, r"subject '002_S_0001' is in several datasets"),
    ],
)
def test_bad_cells_are_named_by_line_column_and_value(change, expected):
    with pytest.raises(ScansTableError, match=expected):
        validate_scans(table(**change), "scans.tsv")


def test_bids_names_give_the_release_scan_uid():
    assert parse_bids_name("sub-OAS30001_ses-d0129_run-01_T1w.nii.gz") == (
        {"sub": "OAS30001", "ses": "d0129", "run": "01"}, "T1w")
    assert bids_scan_uid("sub-OAS30001_ses-d0129_run-01_T1w.nii.gz") == "OAS30001_d0129_run-01_T1w"
    with pytest.raises(ValueError, match="starts with sub-"):
        parse_bids_name("ses-01_T1w.nii.gz")


def test_bids_builder_reads_participants_and_scans_files(tmp_path):
    anat = tmp_path / "sub-OAS30001" / "ses-d0129" / "anat"
    for name in ("sub-OAS30001_ses-d0129_T1w.nii.gz", "sub-OAS30001_ses-d0129_T2star.nii.gz"):
        _touch(anat / name)
    (tmp_path / "participants.tsv").write_text("participant_id\tage\tsex\tdx\nsub-OAS30001\t70\tfemale\tCN\n"
                                               "sub-OAS39999\t71\tM\tCN\n")
    (anat.parent / "sub-OAS30001_ses-d0129_scans.tsv").write_text(
        "filename\tage\tdx\nanat/sub-OAS30001_ses-d0129_T2star.nii.gz\t72.5\tAD\n")
    result = scans_from_bids(tmp_path, "oasis3", "dx", {"CN": "NC", "AD": "AD"})
    rows = result.table.set_index("scan_uid")
    assert rows.loc["OAS30001_d0129_T1w", ["subject_id", "session", "modality", "age", "sex", "label"]].tolist() == [
        "OAS30001", "d0129", "T1w", "70", "F", "NC"]
    assert rows.loc["OAS30001_d0129_T2star", ["modality", "age", "label"]].tolist() == ["T2starw", "72.5", "AD"]
    assert result.unmatched == [{"source": "bids", "item": "participants.tsv sub-OAS39999",
                                 "reason": "participant without an anatomical image"}]
    with pytest.raises(ValueError, match=r"participants.tsv, column 'dx': 2 label value\(s\) without a --map "
                                         r"entry \(line 2 'CN', line 3 'CN'\)"):
        scans_from_bids(tmp_path, "oasis3", "dx", {"AD": "AD"})


def test_adni_pattern_reads_subject_and_image_id():
    name = "ADNI/002_S_0295/MPRAGE/2006-04-18/S13408/ADNI_002_S_0295_MR_MPRAGE_br_raw_2006_S13408_I118671.nii"
    match = compile_pattern(ADNI_PATTERN).search(name)
    assert (match["subject_id"], match["scan_uid"]) == ("002_S_0295", "I118671")
    with pytest.raises(ValueError, match=r"lacks the named group\(s\) \(\?P<subject_id>"):
        compile_pattern(r"(?P<scan_uid>I\d+)")


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_pattern_builder_reports_files_it_cannot_read_ids_from(tmp_path):
    _touch(tmp_path / "x" / "ADNI_002_S_0001_MR_T1_I11.nii.gz")
    _touch(tmp_path / "y" / "ADNI_002_S_0001_MR_T1_I11.nii.gz")  # the same image downloaded twice
    _touch(tmp_path / "notes" / "scout.nii")
    result = scans_from_pattern(tmp_path, ADNI_PATTERN, "adni")
    assert result.table["scan_uid"].tolist() == ["I11"]
    reasons = {row["item"]: row["reason"] for row in result.unmatched}
    assert reasons["notes/scout.nii"] == "path does not match --pattern"
    assert reasons["y/ADNI_002_S_0001_MR_T1_I11.nii.gz"].startswith("duplicate scan_uid I11; kept x/")


def test_contrast_keywords_give_the_modality_first_match_first(tmp_path):
    for name in ("MPRAGE", "Axial_T2_FLAIR", "Axial_T2_FSE", "Localizer"):
        _touch(tmp_path / f"ADNI_002_S_0001_MR_{name}_I{len(name)}.nii")
    contrasts = (("FLAIR", "FLAIR"), ("T2", "T2w"), ("mprage", "T1w"))
    result = scans_from_pattern(tmp_path, ADNI_PATTERN, "adni", contrasts=contrasts)
    assert result.table.set_index("scan_uid")["modality"].to_dict() == {"I6": "T1w", "I14": "FLAIR", "I12": "T2w"}
    assert [(r["item"], r["reason"]) for r in result.unmatched] == [
        ("ADNI_002_S_0001_MR_Localizer_I9.nii", "no --contrast keyword in the file name")]


def _labels(tmp_path, rows, **spec) -> LabelSpec:
    path = tmp_path / "ADNIMERGE.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    defaults = dict(on=(("scan_uid", "IMAGEUID"),), label="DX", mapping=(("CN", "NC"), ("Dementia", "AD")))
    return LabelSpec(path, **(defaults | spec))


def _result() -> BuildResult:
    return BuildResult(table().assign(label="", age=""))


def test_label_join_by_subject_and_visit_maps_values_and_reports_non_matches(tmp_path):
    rows = [{"PTID": "002_S_0001", "VISCODE": "bl", "DX": "Dementia", "AGE": "80"},
            {"PTID": "002_S_0009", "VISCODE": "bl", "DX": "CN", "AGE": "70"}]
    spec = _labels(tmp_path, rows, on=(("subject_id", "PTID"), ("session", "VISCODE")), age="AGE")
    result = join_labels(_result(), spec)
    assert result.table.set_index("scan_uid")["label"].to_dict() == {"I1": "AD", "I2": ""}
    assert result.table.set_index("scan_uid")["age"].to_dict() == {"I1": "80", "I2": ""}
    reasons = sorted(row["reason"] for row in result.unmatched)
    assert reasons == ["no row in ADNIMERGE.csv for subject_id=002_S_0002, session=m06 (left unlabelled)",
                       "row of ADNIMERGE.csv matches no scan"]


def test_unknown_label_value_is_named_with_its_line(tmp_path):
    spec = _labels(tmp_path, [{"IMAGEUID": "I1", "DX": "CN"}, {"IMAGEUID": "I2", "DX": "EMCI"}])
    with pytest.raises(ValueError, match=r"ADNIMERGE.csv, column 'DX': 1 label value\(s\) without a --map "
                                         r"entry \(line 3 'EMCI'\)"):
        join_labels(_result(), spec)


def test_label_table_errors_name_the_column_and_the_repeated_key(tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) IMAGEUID; the header is: DX"):
        join_labels(_result(), _labels(tmp_path, [{"DX": "CN"}]))
    spec = _labels(tmp_path, [{"IMAGEUID": "I1", "DX": "CN"}, {"IMAGEUID": "I1", "DX": "CN"}])
    with pytest.raises(ValueError, match=r"key \(IMAGEUID\) not unique, e.g. line 2 and line 3"):
        join_labels(_result(), spec)


def test_scans_cli_columns_and_check(tmp_path, capsys):
    assert main(["scans", "columns"]) == 0
    assert "scan_uid" in capsys.readouterr().out
    path = tmp_path / "scans.tsv"
    table(label_1="CN").to_csv(path, sep="\t", index=False)
    assert main(["scans", "check", str(path)]) == 2
    assert "column 'label': 'CN' is not one of" in capsys.readouterr().err


@pytest.mark.skipif(not PAPER_SPLITS.is_dir(), reason="the paper's released splits are not here")
def test_every_released_downstream_split_has_a_paper_task():
    from neurossl.splits.files import read_splits

    splits = read_splits(PAPER_SPLITS)
    down = splits[splits["partition"] != "pretrain"]
    released = {(d, t if isinstance(t, str) else None) for d, t in zip(down["dataset"], down["task"])}
    assert released == {(t.dataset, t.split_task) for t in PAPER_TASKS.values()}
    adni = splits.loc[splits["dataset"] == "adni", "scan_uid"]
    assert adni.str.fullmatch(r"I\d+").all()  # what ADNI_PATTERN's scan_uid group reads
