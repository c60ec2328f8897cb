"""Who is in the demo cohort: datasets, subjects, labels, ages, visits and scans (no voxels).

A plan is cheap and fully determined by the config: :func:`plan_cohort` lists every subject with
its sessions and scans, so the scan count (the progress bar's total) is known before generation.
Subject ``i`` of a dataset is drawn from its own generator (:func:`subject_rng`), so it stays the
same whatever the other subjects are.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from neurossl.config import CohortConfig

# Purposes of the per-subject random generators (the fourth entry of their seed).
PLAN, ANATOMY, LESION, ATROPHY, SCAN = range(5)


@dataclass(frozen=True)
class DatasetSpec:
    """One demo dataset.

    Attributes:
        name: dataset name (``cohort.dataset_shares`` key, folder name).
        prefix: subject-id prefix, ``sub-<prefix>0001``.
        labels: balanced labels; empty for unlabelled datasets.
        phenotypes: hidden ``(phenotype, probability)`` mix of an unlabelled dataset.
    """

    name: str
    prefix: str
    labels: tuple[str, ...]
    phenotypes: tuple[tuple[str, float], ...] = ()


DATASETS = (
    DatasetSpec("cognition", "cog", ("NC", "MCI", "AD")),
    DatasetSpec("glioma", "gli", ("G2", "G3", "G4")),
    DatasetSpec("autism", "aut", ("TD", "ASD")),
    DatasetSpec(
        "pool", "pool", (), (("NC", 0.4), ("MCI", 0.15), ("AD", 0.15), ("G2", 0.05), ("G3", 0.05), ("G4", 0.05), ("TD", 0.15))
    ),
    DatasetSpec("headct", "ct", (), (("NC", 0.6), ("MCI", 0.1), ("AD", 0.15), ("G3", 0.075), ("G4", 0.075))),
    # Appended last: a dataset's code is its position here and seeds its subjects' generators.
    DatasetSpec("ich", "ich", ("NOICH", "ICH")),
)
# Datasets acquired as head CT only (one scan per subject).
CT_DATASETS = ("headct", "ich")
# Age range (years) per phenotype; cognition's three classes share one range (age-matched), so
# age cannot stand in for the diagnosis.
AGE_RANGE = MappingProxyType({
    "NC": (20.0, 88.0),
    "MCI": (60.0, 88.0),
    "AD": (60.0, 88.0),
    "G2": (25.0, 65.0),
    "G3": (30.0, 72.0),
    "G4": (40.0, 82.0),
    "TD": (7.0, 35.0),
    "ASD": (7.0, 35.0),
    "NOICH": (30.0, 88.0),
    "ICH": (30.0, 88.0),
})
COGNITION_NC_AGE = (60.0, 88.0)


@dataclass(frozen=True)
class ScanPlan:
    """One scan of a session: its modality and whether it is a thick-slice acquisition."""

    modality: str
    anisotropic: bool


@dataclass(frozen=True)
class SessionPlan:
    """One visit: ``ses-01``..., the subject's age then, and its scans."""

    session: str
    age: float
    scans: tuple[ScanPlan, ...]


@dataclass(frozen=True)
class SubjectPlan:
    """One subject.

    Attributes:
        subject_id: e.g. ``sub-cog0001``; ``dataset`` / ``dataset_code`` / ``index`` locate it.
        label: the public label (empty for unlabelled datasets).
        phenotype: what is simulated (the label, or the hidden condition of a pool / CT subject).
        age: age at the first visit; ``sex``: ``"M"`` or ``"F"``.
        severity_offset: the subject's own deviation of atrophy severity.
        sessions: visits in time order.
    """

    subject_id: str
    dataset: str
    dataset_code: int
    index: int
    label: str
    phenotype: str
    age: float
    sex: str
    severity_offset: float
    sessions: tuple[SessionPlan, ...]


def subject_rng(seed: int, plan: SubjectPlan | tuple[int, int], purpose: int, *extra: int) -> np.random.Generator:
    """Generator for one purpose of one subject, keyed by ``(seed, dataset, index, purpose, *extra)``."""
    code, index = (plan.dataset_code, plan.index) if isinstance(plan, SubjectPlan) else plan
    return np.random.default_rng([seed, code, index, purpose, *extra])


def dataset_counts(subjects: int, shares: dict[str, float]) -> dict[str, int]:
    """Subjects per dataset: ``subjects * share`` rounded by largest remainder (sums to ``subjects``)."""
    known = [spec.name for spec in DATASETS]
    unknown = sorted(set(shares) - set(known))
    if unknown:
        raise ValueError(f"unknown demo dataset(s) {unknown} in cohort.dataset_shares; valid: {', '.join(known)}")
    if any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError(f"cohort.dataset_shares must be non-negative with a positive sum, got {shares}")
    total = sum(shares.values())
    exact = {name: subjects * shares.get(name, 0.0) / total for name in known}
    counts = {name: int(np.floor(v)) for name, v in exact.items()}
    by_remainder = sorted(known, key=lambda n: (-(exact[n] - counts[n]), known.index(n)))
    for name in by_remainder[: subjects - sum(counts.values())]:
        counts[name] += 1
    return counts


def _modalities(spec: DatasetSpec, phenotype: str, rng: np.random.Generator) -> list[str]:
    """Contrasts acquired at one visit."""
    if spec.name in CT_DATASETS:
        return ["CT"]
    if spec.name == "autism":
        return ["T1w"]
    if spec.name == "glioma":
        # every contrast at every visit, as UCSF-PDGM acquires them: the same subjects can be
        # probed per contrast (a multi-contrast encoder's routing, evaluate.contrast_tasks)
        return ["T1w", "T2w", "FLAIR"]
    if phenotype.startswith("G"):
        second = str(rng.choice(["T1w", "T2w", "none"], p=[0.6, 0.25, 0.15]))
        return ["FLAIR"] if second == "none" else sorted(["FLAIR", second], key=["T1w", "T2w", "FLAIR"].index)
    extra = [m for m, p in (("T2w", 0.2), ("FLAIR", 0.25)) if rng.random() < p]
    return ["T1w", *extra]


def _visit_count(spec: DatasetSpec, phenotype: str, max_visits: int, rng: np.random.Generator) -> int:
    """Cognition subjects come back up to ``max_visits`` times, pool subjects up to twice."""
    if spec.name == "cognition":
        return int(rng.integers(1, max_visits + 1))
    if spec.name == "pool" and not phenotype.startswith("G"):
        return int(rng.integers(1, min(2, max_visits) + 1))
    return 1


def plan_subject(cfg: CohortConfig, dataset: str, index: int) -> SubjectPlan:
    """Plan subject ``index`` (0-based) of ``dataset``; labels cycle so each dataset is balanced."""
    code = [spec.name for spec in DATASETS].index(dataset)
    spec = DATASETS[code]
    rng = subject_rng(cfg.seed, (code, index), PLAN)
    if spec.labels:
        label = phenotype = spec.labels[index % len(spec.labels)]
    else:
        names, probs = zip(*spec.phenotypes)
        label, phenotype = "", str(rng.choice(names, p=np.asarray(probs) / sum(probs)))
    low, high = COGNITION_NC_AGE if (dataset, phenotype) == ("cognition", "NC") else AGE_RANGE[phenotype]
    age = float(rng.uniform(low, high))
    sex = "M" if rng.random() < (0.8 if phenotype in ("TD", "ASD") else 0.5) else "F"
    offset = float(rng.normal(0.0, 0.05))
    visits = _visit_count(spec, phenotype, cfg.max_visits, rng)
    ages = age + np.concatenate([[0.0], np.cumsum(rng.uniform(0.8, 2.0, size=visits - 1))])
    sessions = tuple(
        SessionPlan(
            f"ses-{v + 1:02d}",
            float(ages[v]),
            tuple(ScanPlan(m, bool(rng.random() < cfg.anisotropic_fraction)) for m in _modalities(spec, phenotype, rng)),
        )
        for v in range(visits)
    )
    subject_id = f"sub-{spec.prefix}{index + 1:04d}"
    return SubjectPlan(subject_id, dataset, code, index, label, phenotype, age, sex, offset, sessions)


def plan_cohort(cfg: CohortConfig) -> list[SubjectPlan]:
    """Every subject of the cohort, dataset by dataset in :data:`DATASETS` order."""
    if cfg.seed < 0:
        raise ValueError(f"cohort.seed must be >= 0, got {cfg.seed}")
    if cfg.max_visits < 1:
        raise ValueError(f"cohort.max_visits must be >= 1, got {cfg.max_visits}")
    counts = dataset_counts(cfg.subjects, cfg.dataset_shares)
    return [plan_subject(cfg, spec.name, i) for spec in DATASETS for i in range(counts[spec.name])]


def planned_scans(plans: list[SubjectPlan]) -> "pd.DataFrame":
    """The ``scan_uid, subject_id, session, dataset, modality, label`` columns of the cohort's
    ``scans.tsv``, from the plan alone (no voxels): enough to make and size the splits."""
    import pandas as pd

    rows = [
        {"scan_uid": f"{p.subject_id}_{s.session}_{scan.modality}", "subject_id": p.subject_id, "session": s.session,
         "dataset": p.dataset, "modality": scan.modality, "label": p.label}
        for p in plans for s in p.sessions for scan in s.scans
    ]
    return pd.DataFrame(rows, columns=["scan_uid", "subject_id", "session", "dataset", "modality", "label"])
