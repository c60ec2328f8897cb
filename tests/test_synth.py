"""The demo cohort generator: signals, geometry, storage, tables and determinism."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurossl.config import CohortConfig
from neurossl.cohort import synth
from neurossl.cohort.acquisition import RenderedScan, render, sample_acquisition
from neurossl.cohort.anatomy import load_template
from neurossl.cohort.cohort_plan import dataset_counts, plan_cohort, plan_subject, planned_scans
from neurossl.cohort.contrast import synthesize, tissue_intensities

SEED = 0
SMALL = CohortConfig(seed=SEED, subjects=10, max_visits=2, anisotropic_fraction=0.5)


@pytest.fixture(scope="module")
def template():
    return load_template(2)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    table = synth.generate_cohort(out, SMALL, progress=False)
    return out, table


def _at_age(plan, phenotype: str, age: float):
    """``plan`` with one visit at ``age`` and the given simulated condition."""
    session = dataclasses.replace(plan.sessions[0], age=age)
    return dataclasses.replace(plan, phenotype=phenotype, age=age, sessions=(session,))


def _tissues(template, plan):
    anatomy = synth.subject_anatomy(template, plan, SEED)
    return synth.visit_tissues(anatomy, plan, 0, SEED)


def _ventricle_ml(template, plan) -> float:
    tissues = _tissues(template, plan)
    return float(tissues.ventricles.sum()) * tissues.voxel_ml


def hf_share(image: np.ndarray, mask: np.ndarray, cutoff: float = 0.3) -> float:
    """Share of 3-D FFT power at normalised radial frequency >= ``cutoff`` in the mask's bounding box."""
    box = tuple(slice(i.min(), i.max() + 1) for i in np.nonzero(mask))
    x = image[box].astype(np.float64)
    x = (x - x.mean()) / x.std()
    power = np.abs(np.fft.fftn(x)) ** 2
    radius = np.sqrt(sum(np.meshgrid(*[np.fft.fftfreq(n) ** 2 for n in x.shape], indexing="ij")))
    return float(power[radius / radius.max() >= cutoff].sum() / power.sum())


def _fractions(tissues) -> np.ndarray:
    """CSF, GM, WM and ventricle volume as fractions of the brain: what a random twin reads."""
    brain = float(tissues.brain.sum())
    return np.array([float(getattr(tissues, k).sum()) / brain for k in ("csf", "gm", "wm", "ventricles")])


def test_nc_and_ad_of_the_same_age_match_in_tissue_fractions(template):
    for index in range(3):
        base = plan_subject(SMALL, "cognition", index)
        nc, mci, ad = (_fractions(_tissues(template, _at_age(base, label, 72.0))) for label in ("NC", "MCI", "AD"))
        np.testing.assert_allclose(ad, nc, atol=0.003, err_msg=f"subject {index}")
        np.testing.assert_allclose(mci, nc, atol=0.003, err_msg=f"subject {index}")


def test_age_adds_atrophy_for_everyone_and_the_diagnosis_does_not(template):
    base = plan_subject(SMALL, "cognition", 0)
    young_nc = _ventricle_ml(template, _at_age(base, "NC", 60.0))
    old_nc = _ventricle_ml(template, _at_age(base, "NC", 86.0))
    young_ad = _ventricle_ml(template, _at_age(base, "AD", 60.0))
    assert young_nc < 0.95 * old_nc
    assert abs(young_ad - young_nc) < 0.02 * young_nc


def test_ad_atrophy_is_medial_temporal_and_nc_spreads_it_over_the_cortex(template):
    base = plan_subject(SMALL, "cognition", 1)
    nc, ad = (_tissues(template, _at_age(base, label, 70.0)) for label in ("NC", "AD"))
    hippocampus = (np.abs(np.abs(nc.mni[0]) - 26) < 6) & (np.abs(nc.mni[1] + 22) < 8) & (np.abs(nc.mni[2] + 14) < 6)
    assert ad.gm[hippocampus].sum() < 0.8 * nc.gm[hippocampus].sum()
    cortex = (nc.signed_distance > -10) & ~hippocampus & (nc.brain > 0.5)
    assert nc.gm[cortex].sum() < 0.99 * ad.gm[cortex].sum()
    assert abs(float(ad.gm.sum()) / float(nc.gm.sum()) - 1.0) < 0.01
    np.testing.assert_array_equal(ad.brain, nc.brain)  # atrophy keeps the intracranial mask


def test_cognition_classes_are_age_matched():
    plans = plan_cohort(CohortConfig(subjects=600))
    ages = pd.DataFrame([(p.phenotype, p.age) for p in plans if p.dataset == "cognition"], columns=["label", "age"])
    means = ages.groupby("label")["age"].mean()
    assert means.max() - means.min() < 2.0, means


def test_glioma_size_does_not_tell_the_grade(template):
    volumes = {g: [] for g in (2, 3, 4)}
    for index in range(3):
        base = plan_subject(SMALL, "glioma", index)
        for grade in volumes:
            lesion = synth.subject_anatomy(template, dataclasses.replace(base, phenotype=f"G{grade}"), SEED).lesion
            volumes[grade].append(float(lesion.fraction.sum()))
    ratio = np.array(volumes[4]) / np.array(volumes[2])
    assert np.all((ratio > 0.7) & (ratio < 1.4)), volumes


def test_haemorrhage_is_acute_blood_in_hounsfield_units(template):
    plans = [plan_subject(SMALL, "ich", i) for i in range(4)]
    assert [p.label for p in plans] == ["NOICH", "ICH", "NOICH", "ICH"]
    for plan in plans:
        anatomy = synth.subject_anatomy(template, plan, SEED)
        assert (anatomy.lesion is None) == (plan.label == "NOICH")
        assert [s.modality for s in plan.sessions[0].scans] == ["CT"]
        if anatomy.lesion is None:
            continue
        tissues = synth.visit_tissues(anatomy, plan, 0, SEED)
        image = synthesize(tissues, anatomy.shell, tissue_intensities("CT", np.random.default_rng(1)), anatomy.lesion)
        clot = np.zeros_like(image, dtype=bool)
        clot[anatomy.lesion.box] = anatomy.lesion.blood > 0.98
        assert clot.sum() > 0 and 50.0 <= anatomy.lesion.hu <= 80.0
        np.testing.assert_allclose(image[clot], anatomy.lesion.hu, atol=2.0)
        assert np.median(image[tissues.mask & ~clot]) < 45.0


def test_autism_effect_is_much_weaker_than_ad(template):
    def change(plan, a: str, b: str) -> float:
        ta, tb = _tissues(template, _at_age(plan, a, 70.0)), _tissues(template, _at_age(plan, b, 70.0))
        # the largest local change of a tissue fraction: what a patch would see
        return max(float(np.abs(getattr(ta, k) - getattr(tb, k)).max()) for k in ("gm", "wm", "csf"))

    plan = plan_subject(SMALL, "autism", 1)
    autism, alzheimer = change(plan, "ASD", "TD"), change(plan, "AD", "NC")
    assert 0 < autism < 0.1 * alzheimer


def test_glioma_high_frequency_energy_rises_with_grade(template):
    intensity = tissue_intensities("FLAIR", np.random.default_rng(7))
    shares = {grade: [] for grade in (2, 3, 4)}
    for index in range(3):
        base = plan_subject(SMALL, "glioma", index)
        for grade in shares:
            plan = dataclasses.replace(base, phenotype=f"G{grade}")
            anatomy = synth.subject_anatomy(template, plan, SEED)
            tissues = synth.visit_tissues(anatomy, plan, 0, SEED)
            image = synthesize(tissues, anatomy.shell, intensity, anatomy.lesion)
            shares[grade].append(hf_share(image, tissues.mask))
    means = [np.mean(shares[g]) for g in (2, 3, 4)]
    assert means[0] < means[1] < means[2], shares


def test_glioma_grades_differ_in_boundary_not_in_composition(template):
    base = plan_subject(SMALL, "glioma", 0)
    lesions = {g: synth.subject_anatomy(template, dataclasses.replace(base, phenotype=f"G{g}"), SEED).lesion for g in (2, 4)}
    for lesion in lesions.values():
        assert lesion.necrosis.sum() > 0 and lesion.edema.sum() > 0
    assert 0.5 < lesions[4].necrosis.sum() / lesions[2].necrosis.sum() < 2.0
    solid = {g: lesion.texture[lesion.solid > 0.5] for g, lesion in lesions.items()}
    assert 0.7 < solid[4].std() / solid[2].std() < 1.4

    def soft_share(lesion) -> float:
        """Share of the tumour's voxels in its partial-volume boundary (a soft edge has more)."""
        tumour = lesion.solid + lesion.necrosis
        return float(((tumour > 0.1) & (tumour < 0.9)).sum() / (tumour > 0.5).sum())

    assert soft_share(lesions[4]) < 0.7 * soft_share(lesions[2])


def _first_scan(template, dataset: str, index: int = 0) -> tuple[object, RenderedScan]:
    plan = plan_subject(SMALL, dataset, index)
    _, _, scan = next(synth.simulate_subject(template, plan, SEED))
    return plan, scan


@pytest.mark.parametrize("code", ["LPS", "PSR", "ILA"])
def test_orientation_and_affine_round_trip(template, tmp_path, code):
    plan, scan = _first_scan(template, "cognition")
    scan = dataclasses.replace(scan, acquisition=dataclasses.replace(scan.acquisition, orientation=code))
    row = synth.write_scan(tmp_path, plan, 0, "T1w", scan)
    stored = nib.load(tmp_path / row["path"])
    assert "".join(nib.aff2axcodes(stored.affine)) == code == row["orientation"]
    canonical = nib.as_closest_canonical(stored)
    np.testing.assert_array_equal(np.asarray(canonical.dataobj), scan.data)
    np.testing.assert_allclose(canonical.affine, scan.affine, atol=1e-5)
    mask = nib.as_closest_canonical(nib.load(tmp_path / row["mask_path"]))
    np.testing.assert_array_equal(np.asarray(mask.dataobj), scan.mask)
    # A landmark keeps its world position: the brightest RAS voxel, found again in the stored file.
    landmark = np.unravel_index(np.argmax(scan.data), scan.data.shape)
    world = scan.affine @ np.array([*landmark, 1.0])
    stored_index = np.linalg.inv(stored.affine) @ world
    np.testing.assert_allclose(stored_index, np.round(stored_index), atol=1e-4)
    assert np.asarray(stored.dataobj)[tuple(np.round(stored_index[:3]).astype(int))] == scan.data[landmark]


def test_thick_slice_acquisitions_have_the_expected_spacing(template, tmp_path):
    rngs = [np.random.default_rng(i) for i in range(40)]
    thick = [sample_acquisition(rng, True, 2.0) for rng in rngs]
    assert {a.thick_axis for a in thick} == {0, 1, 2}
    for acquisition in thick:
        spacing = np.asarray(acquisition.spacing)
        assert 4.0 <= spacing[acquisition.thick_axis] <= 6.5
        assert np.all(np.delete(spacing, acquisition.thick_axis) <= 2.2)
    plan = plan_subject(SMALL, "cognition", 0)
    acquisition = dataclasses.replace(thick[0], orientation="PSR")
    tissues = synth.subject_anatomy(template, plan, SEED).tissues
    rendered = render(tissues.gm, tissues.brain, tissues.affine, "T1w", 1.0, acquisition, np.random.default_rng(0))
    assert rendered.data.shape == acquisition.grid()[0]
    row = synth.write_scan(tmp_path, plan, 0, "T1w", rendered)
    zooms = nib.load(tmp_path / row["path"]).header.get_zooms()
    expected = [acquisition.spacing[nib.orientations.axcodes2ornt("PSR")[k, 0].astype(int)] for k in range(3)]
    np.testing.assert_allclose(zooms, expected, atol=1e-4)
    assert "_acq-thick_" in row["path"]


def test_mask_excludes_the_skull_shell(template):
    anatomy = synth.subject_anatomy(template, plan_subject(SMALL, "headct", 0), SEED)
    mask, shell = anatomy.tissues.mask, anatomy.shell
    assert not np.any(mask & (shell.bone > 0.5))
    assert shell.bone[mask].mean() < 0.01 and shell.bone[~mask].max() > 0.9
    total = anatomy.tissues.brain + shell.csf + shell.bone + shell.marrow + shell.fat + shell.skin + shell.air
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_head_ct_is_in_hounsfield_units_with_a_skull_outside_the_mask(template):
    plan, scan = _first_scan(template, "headct")
    hu, mask = scan.data.astype(float), scan.mask > 0
    assert plan.sessions[0].scans[0].modality == "CT"
    assert hu.min() <= -990 and hu[~mask].max() > 1000
    assert 10 < np.median(hu[mask]) < 45
    assert np.percentile(hu[mask], 99) < 100
    # The head reaches well beyond the brain: cropping to the foreground is not cropping to the brain.
    head = np.argwhere(hu > -500)
    brain = np.argwhere(mask)
    spacing = np.asarray(scan.acquisition.spacing)
    # (Below, the brainstem runs out of the field of view as in real scans: no margin there.)
    assert np.all((brain.min(0) - head.min(0))[:2] * spacing[:2] >= 5.0)
    assert np.all((head.max(0) - brain.max(0)) * spacing >= 5.0)


def test_tables_have_the_exact_columns_and_consistent_rows(cohort):
    out, table = cohort
    assert list(table.columns) == list(synth.SCAN_COLUMNS)
    assert list(pd.read_csv(out / "scans.tsv", sep="\t").columns) == list(synth.SCAN_COLUMNS)
    participants = pd.read_csv(out / "participants.tsv", sep="\t", keep_default_na=False)
    assert list(participants.columns) == ["subject_id", "dataset", "label", "age", "sex"]
    assert table.scan_uid.is_unique and participants.subject_id.is_unique
    assert set(table.subject_id) == set(participants.subject_id)
    assert set(table.dataset) == {"cognition", "glioma", "autism", "pool", "headct"}
    allowed = {"cognition": {"NC", "MCI", "AD"}, "glioma": {"G2", "G3", "G4"}, "autism": {"TD", "ASD"}, "pool": {""}, "headct": {""}}
    for dataset, labels in allowed.items():
        assert set(table.label[table.dataset == dataset]) <= labels
    assert set(table.modality[table.dataset == "headct"]) == {"CT"}
    assert "CT" not in set(table.modality[table.dataset != "headct"])
    for row in table.itertuples():
        assert not Path(row.path).is_absolute() and "\\" not in row.path
        image, mask = nib.load(out / row.path), nib.load(out / row.mask_path)
        assert "x".join(str(n) for n in image.shape) == row.shape
        spacing = np.array([float(s) for s in row.spacing.split("x")])
        np.testing.assert_allclose(image.header.get_zooms(), spacing, atol=1e-3)
        assert "".join(nib.aff2axcodes(image.affine)) == row.orientation
        assert mask.shape == image.shape and np.allclose(mask.affine, image.affine)
        assert spacing.max() <= 6.5 and np.all(np.asarray(image.shape) * spacing > 50.0)
        ratio = spacing.max() / spacing.min()
        assert (ratio >= 1.4) == ("_acq-thick_" in row.path), row.path


def test_visits_and_contrasts(cohort):
    _, table = cohort
    for _, scans in table[table.dataset == "cognition"].groupby("subject_id"):
        ages = scans.drop_duplicates("session").sort_values("session").age.to_numpy()
        assert np.all(np.diff(ages) > 0)
    for _, scans in table[table.dataset == "glioma"].groupby("subject_id"):
        # one visit with every contrast, so the same subjects can be probed per contrast
        assert sorted(scans.modality) == ["FLAIR", "T1w", "T2w"]
    plans = plan_cohort(CohortConfig())
    assert max(len(p.sessions) for p in plans if p.dataset == "cognition") == 3
    for dataset in ("cognition", "glioma", "autism"):
        counts = pd.Series([p.label for p in plans if p.dataset == dataset]).value_counts()
        assert counts.max() - counts.min() <= 1


def test_planned_scans_are_the_generated_scans_table(cohort):
    _, table = cohort
    planned = planned_scans(plan_cohort(SMALL))
    columns = list(planned.columns)
    pd.testing.assert_frame_equal(planned.reset_index(drop=True), table[columns].fillna("").astype(str).reset_index(drop=True),
                                  check_dtype=False)


def test_dataset_counts_add_up_and_reject_unknown_names():
    counts = dataset_counts(300, CohortConfig().dataset_shares)
    assert sum(counts.values()) == 300 and counts["cognition"] == 135
    with pytest.raises(ValueError, match="gliomaa"):
        dataset_counts(10, {"gliomaa": 1.0})


def test_up_to_date_cohort_is_not_regenerated(cohort, capsys):
    out, table = cohort
    before = (out / table.path[0]).stat().st_mtime_ns
    again = synth.generate_cohort(out, SMALL, progress=False)
    assert "up to date" in capsys.readouterr().out
    assert (out / table.path[0]).stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(again, table)
    manifest = json.loads((out / "cohort.json").read_text())
    assert manifest["config"]["subjects"] == SMALL.subjects and manifest["complete"]


def test_same_seed_gives_identical_data_and_tables(cohort, tmp_path, template):
    out, table = cohort
    # Two worker processes must not change a byte: every draw is keyed by subject, not by order.
    synth.generate_cohort(tmp_path, SMALL, progress=False, workers=2)
    for name in ("scans.tsv", "participants.tsv"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    for relative in [*table.path, *table.mask_path]:
        a, b = nib.load(out / relative), nib.load(tmp_path / relative)
        assert np.asarray(a.dataobj).tobytes() == np.asarray(b.dataobj).tobytes()
        np.testing.assert_array_equal(a.affine, b.affine)
    # A different seed changes the plan, the anatomy and the voxels.
    other = dataclasses.replace(SMALL, seed=SEED + 1)
    assert [p.age for p in plan_cohort(other)] != [p.age for p in plan_cohort(SMALL)]
    plan = plan_subject(SMALL, "cognition", 0)
    _, _, first = next(synth.simulate_subject(template, plan, SEED))
    _, _, changed = next(synth.simulate_subject(template, plan, SEED + 1))
    assert first.data.shape != changed.data.shape or np.any(first.data != changed.data)


def test_subjects_do_not_depend_on_cohort_size():
    small = {p.subject_id: p for p in plan_cohort(SMALL)}
    large = {p.subject_id: p for p in plan_cohort(dataclasses.replace(SMALL, subjects=40))}
    assert all(large[key] == plan for key, plan in small.items())
