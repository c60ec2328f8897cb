"""The embedded demo cohort: synthetic subjects from real MNI152 anatomy, written as BIDS-like NIfTI.

Entry point :func:`generate_cohort`. The cohort mimics the paper's data sources (design section 4):

=========  ==============  =====================  =====================================
dataset    ids             labels                 signal
=========  ==============  =====================  =====================================
cognition  ``sub-cog0001``  NC / MCI / AD          where atrophy goes (medial temporal), age-matched
glioma     ``sub-gli0001``  G2 / G3 / G4           lesion texture, edge and necrosis; same sizes
autism     ``sub-aut0001``  TD / ASD               tiny diffuse effect (near chance)
pool       ``sub-pool0001`` (none)                 mix of the above
headct     ``sub-ct0001``   (none)                 head CT in Hounsfield units
ich        ``sub-ich0001``  NOICH / ICH            head CT, acute haematoma present / absent
=========  ==============  =====================  =====================================

Layout: ``<out>/<dataset>/sub-<id>/ses-<nn>/anat/sub-<id>_ses-<nn>_acq-<iso|thick>_<modality>.nii.gz``
with the true brain mask beside it (``..._<modality>_mask.nii.gz``), plus ``participants.tsv``,
``scans.tsv`` (:data:`SCAN_COLUMNS`) and ``cohort.json``. Every random draw comes from a
generator seeded by ``(seed, dataset, subject index, purpose, ...)``, so a subject's data do not
depend on the other subjects or on the order of generation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from neurossl import __version__
from neurossl.config import CohortConfig
from neurossl.data.catalog import read_scans
from neurossl.cohort.acquisition import RenderedScan, nifti_bytes, render, reorient, sample_acquisition
from neurossl.cohort.anatomy import Shell, Template, Tissues, load_template, make_subject, skull_shell
from neurossl.cohort.cohort_plan import ANATOMY, ATROPHY, DATASETS, LESION, SCAN, SubjectPlan, plan_cohort, subject_rng
from neurossl.cohort.contrast import synthesize, tissue_intensities
from neurossl.cohort.pathology import (Haemorrhage, Lesion, apply_autism_effect, carve_lesion, make_glioma,
                                       make_haemorrhage, neurodegenerate)
from neurossl.progress import tqdm

SCAN_COLUMNS = (
    "scan_uid",
    "subject_id",
    "session",
    "dataset",
    "modality",
    "label",
    "age",
    "sex",
    "spacing",
    "orientation",
    "shape",
    "path",
    "mask_path",
)
PARTICIPANT_COLUMNS = ("subject_id", "dataset", "label", "age", "sex")


@dataclasses.dataclass(frozen=True)
class SubjectAnatomy:
    """What stays fixed across a subject's visits: warped tissues, skull shell, lesion (a glioma
    or, for the ``ICH`` phenotype, a haematoma)."""

    tissues: Tissues
    shell: Shell
    lesion: Lesion | Haemorrhage | None


def subject_anatomy(template: Template, plan: SubjectPlan, seed: int) -> SubjectAnatomy:
    """Build the subject's healthy anatomy, skull shell and (glioma phenotypes) lesion."""
    rng = subject_rng(seed, plan, ANATOMY)
    tissues = make_subject(template, rng)
    shell = skull_shell(tissues, rng)
    lesion = None
    if plan.phenotype.startswith("G"):
        lesion = make_glioma(tissues, int(plan.phenotype[1:]), subject_rng(seed, plan, LESION))
    elif plan.phenotype == "ICH":
        lesion = make_haemorrhage(tissues, subject_rng(seed, plan, LESION))
    return SubjectAnatomy(tissues, shell, lesion)


def visit_tissues(anatomy: SubjectAnatomy, plan: SubjectPlan, visit: int, seed: int) -> Tissues:
    """Tissues at visit ``visit``: atrophy for the age and diagnosis, autism effect, lesion.

    The atrophy generator is re-seeded identically at every visit so that a subject keeps the
    same regional pattern and only its severity grows.
    """
    age = plan.sessions[visit].age
    tissues = neurodegenerate(
        anatomy.tissues, plan.phenotype, age, age - plan.age, plan.severity_offset, subject_rng(seed, plan, ATROPHY)
    )
    if plan.phenotype == "ASD":
        tissues = apply_autism_effect(tissues, subject_rng(seed, plan, ATROPHY, 1))
    if anatomy.lesion is not None:
        tissues = carve_lesion(tissues, anatomy.lesion)
    return tissues


def simulate_subject(template: Template, plan: SubjectPlan, seed: int) -> Iterator[tuple[int, str, RenderedScan]]:
    """Yield ``(visit, modality, scan)`` for every scan of the subject (RAS+, not yet stored)."""
    anatomy = subject_anatomy(template, plan, seed)
    for visit, session in enumerate(plan.sessions):
        tissues = visit_tissues(anatomy, plan, visit, seed)
        for index, scan in enumerate(session.scans):
            rng = subject_rng(seed, plan, SCAN, visit, index)
            intensity = tissue_intensities(scan.modality, rng)
            image = synthesize(tissues, anatomy.shell, intensity, anatomy.lesion)
            acquisition = sample_acquisition(rng, scan.anisotropic, template.resolution_mm)
            yield visit, scan.modality, render(
                image, tissues.brain, tissues.affine, scan.modality, intensity["wm"], acquisition, rng
            )


def _format_mm(value: float) -> str:
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def write_scan(out_dir: Path, plan: SubjectPlan, visit: int, modality: str, scan: RenderedScan) -> dict:
    """Store ``scan`` in its orientation with its mask; return its ``scans.tsv`` row."""
    session = plan.sessions[visit].session
    stem = f"{plan.subject_id}_{session}_acq-{scan.acquisition.kind}_{modality}"
    folder = Path(plan.dataset) / plan.subject_id / session / "anat"
    (out_dir / folder).mkdir(parents=True, exist_ok=True)
    code = scan.acquisition.orientation
    data, affine = reorient(scan.data, scan.affine, code)
    mask, _ = reorient(scan.mask, scan.affine, code)
    path, mask_path = folder / f"{stem}.nii.gz", folder / f"{stem}_mask.nii.gz"
    _write_atomic(out_dir / path, nifti_bytes(data, affine))
    _write_atomic(out_dir / mask_path, nifti_bytes(mask, affine))
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return {
        "scan_uid": f"{plan.subject_id}_{session}_{modality}",
        "subject_id": plan.subject_id,
        "session": session,
        "dataset": plan.dataset,
        "modality": modality,
        "label": plan.label,
        "age": round(plan.sessions[visit].age, 1),
        "sex": plan.sex,
        "spacing": "x".join(_format_mm(s) for s in spacing),
        "orientation": code,
        "shape": "x".join(str(n) for n in data.shape),
        "path": path.as_posix(),
        "mask_path": mask_path.as_posix(),
    }


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write via a temporary file so an interrupted run never leaves a truncated NIfTI."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(payload)
    os.replace(partial, path)


def _manifest(cfg: CohortConfig) -> dict:
    return {"generator": "neurossl.cohort.synth", "version": __version__, "config": dataclasses.asdict(cfg)}


def is_up_to_date(out_dir: str | Path, cfg: CohortConfig) -> bool:
    """True when ``out_dir`` holds a complete cohort generated with ``cfg`` by this version."""
    out_dir = Path(out_dir)
    manifest_path, scans_path = out_dir / "cohort.json", out_dir / "scans.tsv"
    if not (manifest_path.is_file() and scans_path.is_file() and (out_dir / "participants.tsv").is_file()):
        return False
    manifest = json.loads(manifest_path.read_text())
    expected = json.loads(json.dumps(_manifest(cfg)))
    if not manifest.get("complete") or {k: manifest.get(k) for k in expected} != expected:
        return False
    table = read_scans(out_dir)
    return all((out_dir / p).is_file() for p in [*table["path"], *table["mask_path"]])


def _start_fresh(out_dir: Path, cfg: CohortConfig) -> None:
    """Remove an earlier cohort's trees (ours, marked by ``cohort.json``) and mark this run as incomplete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "cohort.json").is_file():
        for spec in DATASETS:
            if (out_dir / spec.name).is_dir():
                shutil.rmtree(out_dir / spec.name)
    (out_dir / "cohort.json").write_text(json.dumps({**_manifest(cfg), "complete": False}, indent=2))


def write_subject(out_dir: Path, plan: SubjectPlan, template: Template, seed: int) -> list[dict]:
    """Simulate and store every scan of one subject; return its ``scans.tsv`` rows."""
    return [write_scan(out_dir, plan, v, modality, scan) for v, modality, scan in simulate_subject(template, plan, seed)]


def generate_cohort(out_dir: str | Path, cfg: CohortConfig, progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Generate (or reuse, when up to date) the demo cohort in ``out_dir``.

    Args:
        out_dir: destination folder; created if missing.
        cfg: cohort settings (seed, number of subjects, resolution, dataset shares, ...).
        progress: show a tqdm bar counting scans.
        workers: processes (joblib); the output does not depend on it.

    Returns:
        The scans table, columns :data:`SCAN_COLUMNS` (paths relative to ``out_dir``).
    """
    out_dir = Path(out_dir)
    if is_up_to_date(out_dir, cfg):
        print(f"demo cohort in {out_dir} is up to date (seed {cfg.seed}, {cfg.subjects} subjects)")
        return read_scans(out_dir)
    plans = plan_cohort(cfg)
    _start_fresh(out_dir, cfg)
    template = load_template(cfg.resolution_mm)
    rows: list[dict] = []
    total = sum(len(s.scans) for p in plans for s in p.sessions)
    with tqdm(total=total, desc="demo cohort", unit="scan", disable=not progress) as bar:
        if workers <= 1:
            for plan in plans:
                for visit, modality, scan in simulate_subject(template, plan, cfg.seed):
                    rows.append(write_scan(out_dir, plan, visit, modality, scan))
                    bar.update(1)
        else:
            # joblib memory-maps the template's arrays once instead of pickling them per subject.
            jobs = (delayed(write_subject)(out_dir, plan, template, cfg.seed) for plan in plans)
            for subject_rows in Parallel(n_jobs=workers, return_as="generator")(jobs):
                rows.extend(subject_rows)
                bar.update(len(subject_rows))
    _write_tables(out_dir, plans, rows)
    manifest = {**_manifest(cfg), "complete": True, "subjects": len(plans), "scans": len(rows)}
    (out_dir / "cohort.json").write_text(json.dumps(manifest, indent=2))
    return read_scans(out_dir)


def _write_tables(out_dir: Path, plans: list[SubjectPlan], rows: list[dict]) -> None:
    """Write ``participants.tsv`` (baseline age) and ``scans.tsv``."""
    participants = [
        {"subject_id": p.subject_id, "dataset": p.dataset, "label": p.label, "age": round(p.age, 1), "sex": p.sex}
        for p in plans
    ]
    pd.DataFrame(participants, columns=list(PARTICIPANT_COLUMNS)).to_csv(out_dir / "participants.tsv", sep="\t", index=False)
    pd.DataFrame(rows, columns=list(SCAN_COLUMNS)).to_csv(out_dir / "scans.tsv", sep="\t", index=False)
