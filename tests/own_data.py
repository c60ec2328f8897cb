"""Builders of a user's own data for the tests, derived from the session's smoke cohort:

- an ADNI-like download (LONI IDA file names with image IDs, an ADNIMERGE-like label CSV, split
  files in the released format naming scans that are absent);
- a BIDS tree (ABIDE-like: participants.tsv with DX_GROUP, release-style ``abide_down*`` splits).

Each returns what the test needs to state the exact coverage it expects.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

DX = {"NC": "CN", "MCI": "MCI", "AD": "Dementia"}  # ADNIMERGE's DX values
ADNI_MAP = ["--map", "CN=NC", "--map", "MCI=MCI", "--map", "Dementia=AD"]
ADNI_FILES = ("adni_pretrain_ids.csv",) + tuple(
    f"adni_downstream_fold0_nc_vs_ad_{p}_ids.csv" for p in ("train", "val", "test"))


@dataclass
class OwnData:
    """A user's folder, label table and split folder, and what was done to them."""

    root: Path
    labels: Path
    splits: Path
    ids: dict[str, str] = field(default_factory=dict)  # smoke scan_uid -> the user's scan_uid
    subjects: dict[str, str] = field(default_factory=dict)  # smoke subject -> the user's subject
    absent: dict[str, list[str]] = field(default_factory=dict)  # split file -> scans not downloaded
    too_small: str = ""  # a scan curation rejects
    deleted: str = ""  # a scan in the table whose file is gone


def _cohort(smoke_data: Path, dataset: str) -> pd.DataFrame:
    scans = pd.read_csv(smoke_data / "cohort" / "scans.tsv", sep="\t", dtype=str, keep_default_na=False)
    return scans[scans["dataset"] == dataset].reset_index(drop=True)


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def _renamed_split(smoke_split: Path, data: OwnData, dest: Path, extra: list[tuple[str, str]]) -> None:
    """A smoke split file with the user's IDs, plus ``extra`` (subject, scan) rows."""
    table = pd.read_csv(smoke_split, dtype=str)
    table = table[table["scan_uid"].isin(data.ids)]
    rows = [(data.subjects[s], data.ids[u]) for s, u in zip(table["subject_id"], table["scan_uid"])]
    pd.DataFrame(rows + extra, columns=["subject_id", "scan_uid"]).to_csv(dest, index=False)


def make_adni_like(smoke_data: Path, dest: Path) -> OwnData:
    """The smoke cohort's cognition scans as an ADNI download (``ADNI/<PTID>/<desc>/<date>/S<n>/
    ADNI_<PTID>_MR_<modality>_br_raw_<date>_S<n>_I<id>.nii.gz``, BET masks beside them)."""
    scans = _cohort(smoke_data, "cognition")
    data = OwnData(dest / "ADNI", dest / "ADNIMERGE.csv", dest / "splits")
    label_rows = []
    for i, row in scans.iterrows():
        ptid = data.subjects.setdefault(row["subject_id"], f"{941 + i % 3:03d}_S_{4000 + len(data.subjects):04d}")
        image = f"I{328000 + i}"
        data.ids[row["scan_uid"]] = image
        folder = f"ADNI/{ptid}/{row['modality']}/2012-03-0{1 + i % 9}_10_20_30.0/S{12000 + i}"
        name = f"ADNI_{ptid}_MR_{row['modality']}_br_raw_2012030{1 + i % 9}102030_S{12000 + i}_{image}"
        cohort = smoke_data / "cohort"
        _copy(cohort / row["path"], dest / folder / f"{name}.nii.gz")
        _copy(cohort / row["mask_path"], dest / folder / f"{name}_mask.nii.gz")
        label_rows.append({"RID": str(4000 + i), "PTID": ptid, "VISCODE": "bl", "EXAMDATE": "2012-03-01",
                           "DX": DX[row["label"]], "AGE": row["age"], "IMAGEUID": image})
    label_rows.append({"RID": "9999", "PTID": "999_S_9999", "VISCODE": "bl", "EXAMDATE": "2012-03-01",
                       "DX": "CN", "AGE": "70.0", "IMAGEUID": "I999999"})  # a row no scan matches
    pd.DataFrame(label_rows).to_csv(data.labels, index=False)
    _adni_splits(smoke_data, data)
    return data


def _add_too_small(data: OwnData, ptid: str) -> None:
    """A scan curation rejects (a 12^3 volume, below the smoke profile's 10 kB minimum)."""
    data.too_small = "I399999"
    path = data.root / f"{ptid}/Localizer/2012-03-01_10_20_30.0/S1/ADNI_{ptid}_MR_T1w_br_raw_1_S1_I399999.nii.gz"
    path.parent.mkdir(parents=True)
    volume = np.random.default_rng(0).random((12, 12, 12)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([5.0, 5.0, 5.0, 1.0])), path)


def _adni_splits(smoke_data: Path, data: OwnData) -> None:
    """Released-format split files: the smoke split renamed, with scans the download lacks."""
    data.splits.mkdir()
    smoke = smoke_data / "splits"
    pretrain_subject = pd.read_csv(smoke / "cognition_pretrain_ids.csv", dtype=str)["subject_id"].iloc[0]
    test_subject = pd.read_csv(smoke / "cognition_downstream_fold0_nc_vs_ad_test_ids.csv",
                               dtype=str)["subject_id"].iloc[0]
    _add_too_small(data, data.subjects[pretrain_subject])
    data.absent = {
        "adni_pretrain_ids.csv": ["I388001", "I388002"],
        "adni_downstream_fold0_nc_vs_ad_test_ids.csv": ["I388003"],
    }
    for name in ADNI_FILES:
        source = smoke / name.replace("adni_", "cognition_", 1)
        owner = data.subjects[test_subject if "test" in name else pretrain_subject]
        extra = [(owner, uid) for uid in data.absent.get(name, [])]
        if name == "adni_pretrain_ids.csv":
            extra.append((data.subjects[pretrain_subject], data.too_small))
        _renamed_split(source, data, data.splits / name, extra)


ABIDE_MAP = ["--map", "1=ASD", "--map", "2=TD"]  # ABIDE's DX_GROUP codes
ABIDE_DX = {"ASD": "1", "TD": "2"}


def make_bids_like(smoke_data: Path, dest: Path) -> OwnData:
    """The smoke cohort's autism scans as an ABIDE-like BIDS tree, plus a fieldmap and an angio
    image that are not scans, and ``abide_down{train,val,test}_ids.csv`` naming one absent scan."""
    scans = _cohort(smoke_data, "autism")
    data = OwnData(dest / "abide", dest / "abide" / "participants.tsv", dest / "splits")
    people = []
    for _, row in scans.iterrows():
        subject = row["subject_id"].removeprefix("sub-")
        data.subjects[row["subject_id"]] = subject
        source = smoke_data / "cohort" / row["path"]
        anat = data.root / row["path"].split("/", 1)[1]
        _copy(source, anat)
        _copy(smoke_data / "cohort" / row["mask_path"], anat.with_name(anat.name.replace(".nii.gz", "_mask.nii.gz")))
        data.ids[row["scan_uid"]] = anat.name.removesuffix(".nii.gz").replace("sub-", "").replace("ses-", "")
        people.append({"participant_id": f"sub-{subject}", "age": row["age"], "sex": row["sex"],
                       "DX_GROUP": ABIDE_DX[row["label"]]})
    first = data.root / scans["path"].iloc[0].split("/", 1)[1]
    _copy(first, first.parent.parent / "fmap" / first.name.replace("T1w", "epi"))
    _copy(first, first.with_name(first.name.replace("T1w", "angio")))
    pd.DataFrame(people).to_csv(data.labels, sep="\t", index=False)
    _abide_splits(scans, data)
    return data


def _abide_splits(scans: pd.DataFrame, data: OwnData) -> None:
    """Train / val / test by subject, each with both labels; the test names one absent scan."""
    data.splits.mkdir()
    by_label = {label: list(rows["subject_id"]) for label, rows in scans.groupby("label")}
    parts = {"train": [], "val": [], "test": []}
    for subjects in by_label.values():
        parts["test"].append(subjects[0])
        parts["val"].append(subjects[1])
        parts["train"].extend(subjects[2:])
    data.absent = {"abide_downtest_ids.csv": ["aut0999_01_acq-iso_T1w"]}
    for partition, subjects in parts.items():
        chosen = scans[scans["subject_id"].isin(subjects)]
        rows = [(data.subjects[s], data.ids[u]) for s, u in zip(chosen["subject_id"], chosen["scan_uid"])]
        name = f"abide_down{partition}_ids.csv"
        rows += [("aut0999", uid) for uid in data.absent.get(name, [])]
        pd.DataFrame(rows, columns=["subject_id", "scan_uid"]).to_csv(data.splits / name, index=False)
