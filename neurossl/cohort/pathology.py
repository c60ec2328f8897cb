"""Conditions with a known kind of signal: neurodegeneration severity, glioma, autism.

The label signals are LOCAL shape and texture, a few of the paper's 8^3 tubelets in size (one to
three of the demo's 16^3 tubelets at 64^3: benchmarks/results/signal_tokens.md), with the global
statistics a random patch embedding reads (tissue fractions, intensity histogram, brain and
lesion volume) matched between classes, so that a representation must carry anatomy to tell them:

- cognition (NC / MCI / AD, age-matched): every subject loses the same tissue volume for its
  age and its own draw (:func:`neurodegenerate`); the diagnosis only decides WHERE: AD and MCI
  spend part of it on medial-temporal atrophy (hippocampus and temporal horn,
  :func:`medial_temporal_loss`), NC spread all of it as diffuse cortical thinning. Total CSF,
  GM and WM fractions therefore match between classes.
- glioma (G2 / G3 / G4): :func:`make_glioma` draws lesions of the same size, edema range and
  fine texture at every grade, and a fluid core (a cyst at grade 2, necrosis at 3 / 4); grade
  sets the sharpness and raggedness of the lesion's and the core's boundary.
- autism (TD / ASD): :func:`apply_autism_effect` is a tiny diffuse GM change, below the
  subject-to-subject variation (near chance, as in the paper's ABIDE results).
- head CT (NOICH / ICH): :func:`make_haemorrhage` adds an acute haematoma (50-80 HU).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np
from scipy import ndimage as ndi

from neurossl.cohort.anatomy import Tissues, enlarge_ventricles, hippocampus_weight, move_to_csf
from neurossl.cohort.fields import smooth_field

# Medial-temporal severity at baseline and its yearly progression per diagnosis (0 = none).
SEVERITY = MappingProxyType({"NC": (0.0, 0.0), "MCI": (0.45, 0.04), "AD": (0.8, 0.06)})
# Everyone's total atrophy: a class-independent load (what an AD subject spends on the medial
# temporal lobe comes out of it, so it must exceed that) plus a yearly term beyond AGE_ONSET.
ATROPHY_LOAD, AGE_ONSET, AGE_SLOPE = 0.6, 55.0, 0.012
# Per grade: (radius mm range, edge width, boundary irregularity, texture std, fluid-core chance,
# core relative radius range, edema extent range relative to the radius). Radius, edema, fine
# texture and a fluid core (a cyst in grade 2, necrosis in grades 3 / 4) are the same at every
# grade, so neither the lesion's volume nor its intensity mix tells the grade (a random patch
# embedding reads both, benchmarks/results/conditions.md): the boundary's sharpness and
# raggedness, of the lesion and of its core, do.
GRADES = MappingProxyType({
    2: ((9.0, 18.0), 0.30, 0.08, 0.35, 1.0, (0.35, 0.55), (0.3, 1.0)),
    3: ((9.0, 18.0), 0.12, 0.30, 0.35, 1.0, (0.35, 0.55), (0.3, 1.0)),
    4: ((9.0, 18.0), 0.07, 0.40, 0.35, 1.0, (0.35, 0.55), (0.3, 1.0)),
})


@dataclass(frozen=True)
class Lesion:
    """A glioma inside the box ``box`` of the subject grid; local arrays ``(x, y, z)`` float32.

    Attributes:
        box: slices of the subject grid the local arrays cover.
        solid: tumour tissue fraction; ``necrosis``: necrotic core fraction;
        edema: vasogenic edema fraction (T2 / FLAIR bright);
        texture: multiplicative heterogeneity applied to the solid part (1 = homogeneous).
        grade: WHO grade 2, 3 or 4.
    """

    box: tuple[slice, slice, slice]
    solid: np.ndarray
    necrosis: np.ndarray
    edema: np.ndarray
    texture: np.ndarray
    grade: int

    @property
    def fraction(self) -> np.ndarray:
        """``(x, y, z)`` total lesion fraction (solid + necrosis + edema)."""
        return self.solid + self.necrosis + self.edema


def atrophy_severity(label: str, age: float, years: float, offset: float = 0.0) -> float:
    """Medial-temporal (disease) severity of a subject with diagnosis ``label``, ``years`` after
    baseline; 0 for NC and for the labels of other datasets. ``age`` and ``offset`` do not enter:
    they set the total atrophy (:func:`total_atrophy`), not where it goes."""
    base, rate = SEVERITY.get(label, SEVERITY["NC"])
    return max(base + rate * years, 0.0) if base > 0 else 0.0


def total_atrophy(age: float, offset: float = 0.0) -> float:
    """Everyone's total atrophy, in units of diffuse cortical thinning, whatever the diagnosis."""
    return max(ATROPHY_LOAD + AGE_SLOPE * max(age - AGE_ONSET, 0.0) + offset, 0.0)


def medial_temporal_loss(tissues: Tissues, severity: float) -> tuple[np.ndarray, np.ndarray]:
    """``(gm_loss, wm_loss)`` fractions ``(X, Y, Z)`` of hippocampal / temporal-horn atrophy."""
    hippocampus = hippocampus_weight(tissues.mni)
    return np.clip(0.6 * severity * hippocampus, 0.0, 0.9), np.clip(0.35 * severity * hippocampus, 0.0, 0.9)


def neurodegenerate(
    tissues: Tissues, label: str, age: float, years: float, offset: float, rng: np.random.Generator
) -> Tissues:
    """Atrophy of one visit: a total tissue loss set by age and the subject's ``offset`` alone,
    placed by the diagnosis (medial temporal for AD / MCI, diffuse cortical for the rest).

    The diffuse part is scaled so that the GM + WM volume lost equals that of a subject of the
    same age and offset with no medial-temporal atrophy: total tissue fractions match between
    NC and AD. Ventricles grow with the total (the same for every diagnosis).
    """
    total = total_atrophy(age, offset)
    if total <= 0:
        return tissues
    voxel = float(tissues.affine[0, 0])
    cortex = np.clip(1.0 + tissues.signed_distance / 20.0, 0.0, 1.0)
    pattern = np.clip(1.0 + 0.3 * smooth_field(rng, tissues.gm.shape, 30.0, voxel), 0.0, None)
    diffuse = 0.22 * cortex * pattern
    budget = float((tissues.gm * np.clip(total * diffuse, 0.0, 1.0)).sum())
    severity = atrophy_severity(label, age, years)
    out = tissues
    if severity > 0:
        gm_loss, wm_loss = medial_temporal_loss(tissues, severity)
        spent = float((tissues.gm * gm_loss).sum() + (tissues.wm * wm_loss).sum())
        out = move_to_csf(tissues, gm_loss, wm_loss)
        budget = max(budget - spent, 0.0)
    out = move_to_csf(out, _scaled_loss(out.gm, diffuse, budget), np.zeros_like(diffuse))
    return enlarge_ventricles(out, grow_mm=3.0 * total)


def _scaled_loss(gm: np.ndarray, pattern: np.ndarray, volume: float) -> np.ndarray:
    """``k * pattern`` (clipped to [0, 1]) with ``k`` such that ``sum(gm * loss) == volume``."""
    lo, hi = 0.0, 8.0
    for _ in range(30):  # bisection: the clip makes the lost volume monotone but not linear in k
        k = 0.5 * (lo + hi)
        lo, hi = (k, hi) if float((gm * np.clip(k * pattern, 0.0, 1.0)).sum()) < volume else (lo, k)
    return np.clip(0.5 * (lo + hi) * pattern, 0.0, 1.0).astype(np.float32)


def _lesion_centre(tissues: Tissues, rng: np.random.Generator) -> np.ndarray:
    """Voxel index ``(3,)`` of a random deep white-matter point in a cerebral hemisphere."""
    mni = tissues.mni
    eligible = (tissues.wm > 0.7) & (mni[2] > -10.0) & (np.abs(mni[0]) > 15.0) & (tissues.signed_distance < -15.0)
    flat = np.flatnonzero(eligible)
    return np.asarray(np.unravel_index(flat[rng.integers(len(flat))], eligible.shape))


def _local_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise of unit std, ``shape`` float32."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=sigma)
    return noise / (noise.std() + 1e-6)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))).astype(np.float32)


def make_glioma(tissues: Tissues, grade: int, rng: np.random.Generator) -> Lesion:
    """Draw a glioma of WHO ``grade`` (2, 3, 4) for a subject.

    The lesion is a blob of radius ``r`` (the same range at every grade) whose edge sharpens and
    whose outline (and that of its fluid core, the ``necrosis`` compartment: a cyst at grade 2)
    grows more ragged with grade, with edema reaching ``r (1 + e)`` along the white matter and a
    voxel-scale texture: the focal high-frequency content the spectral analysis looks for, which
    rises with grade through the sharper, more ragged boundaries.
    """
    (r_lo, r_hi), edge, irregular, texture_std, necrosis_p, core_range, edema_range = GRADES[grade]
    voxel = float(tissues.affine[0, 0])
    radius = rng.uniform(r_lo, r_hi)
    extent = rng.uniform(*edema_range)
    centre = _lesion_centre(tissues, rng)
    # Outline and edema spread are clipped so the lesion stays within ``reach``; a spherical taper
    # there keeps the box edges invisible.
    reach = 1.6 * radius * (1.0 + extent) + 3.0 * voxel
    box, distance = _box_around(centre, reach, tissues.gm.shape, voxel)
    shape = distance.shape
    outline = np.clip(1.0 + irregular * _local_noise(rng, shape, sigma=radius / (3.0 * voxel)), 0.6, 1.5)
    rho = distance / (radius * outline)
    tumour = _sigmoid((1.0 - rho) / edge)
    core = rng.uniform(*core_range) if rng.random() < necrosis_p else 0.0
    necrosis = _sigmoid((core - rho) / 0.06) * tumour if core > 0 else np.zeros_like(tumour)
    taper = np.clip((reach - distance) / (2.0 * voxel), 0.0, 1.0)
    edema = _edema(tissues, box, rho, extent, rng) * (1.0 - tumour) * taper
    # Heterogeneity at two scales: voxel-level grain and small blobs (cysts, haemorrhage).
    grain = _local_noise(rng, shape, sigma=0.5) + 0.5 * _local_noise(rng, shape, sigma=1.5)
    texture = np.clip(1.0 + texture_std * grain, 0.2, None)
    brain = tissues.brain[box]
    return Lesion(box, (tumour - necrosis) * brain, necrosis * brain, edema * brain, texture, grade)


def _edema(tissues: Tissues, box: tuple[slice, ...], rho: np.ndarray, extent: float, rng: np.random.Generator) -> np.ndarray:
    """``(x, y, z)`` edema share reaching ``rho < 1 + extent`` with a ragged front, mostly in white
    matter (vasogenic edema spreads along the tracts and spares the cortex)."""
    voxel = float(tissues.affine[0, 0])
    spread = np.clip(1.0 + 0.3 * _local_noise(rng, rho.shape, sigma=4.0 / voxel), 0.7, 1.4)
    brain = tissues.brain[box]
    wm_share = np.divide(tissues.wm[box] + 0.3 * tissues.gm[box], brain, out=np.zeros_like(brain), where=brain > 1e-3)
    return _sigmoid((1.0 + extent - rho * spread) / 0.15) * np.clip(wm_share, 0.0, 1.0)


def _box_around(
    centre: np.ndarray, reach_mm: float, shape: tuple[int, ...], voxel: float
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Slices of the box of half-size ``reach_mm`` around voxel ``centre`` (clipped to ``shape``)
    and the ``(x, y, z)`` distance in mm of its voxels to the centre."""
    half = int(np.ceil(reach_mm / voxel))
    box = tuple(slice(max(c - half, 0), min(c + half + 1, n)) for c, n in zip(centre, shape))
    offsets = np.ogrid[tuple(slice(s.start - c, s.stop - c) for s, c in zip(box, centre))]
    distance = np.sqrt(sum((o.astype(np.float32) * voxel) ** 2 for o in offsets))
    return box, distance


def carve_lesion(tissues: Tissues, lesion: Lesion) -> Tissues:
    """Replace normal tissue by the lesion inside its box; the brain fraction is unchanged."""
    box = lesion.box
    brain = tissues.brain[box]
    keep = 1.0 - np.divide(lesion.fraction, brain, out=np.zeros_like(brain), where=brain > 1e-3)
    keep = np.clip(keep, 0.0, 1.0)
    carved = {}
    for name in ("gm", "wm", "csf", "ventricles"):
        array = getattr(tissues, name).copy()
        array[box] *= keep
        carved[name] = array
    return replace(tissues, **carved)


def apply_autism_effect(tissues: Tissues, rng: np.random.Generator, strength: float = 0.005) -> Tissues:
    """A very weak diffuse effect: ~``strength`` more frontal-temporal GM, taken from CSF.

    Far below the subject-to-subject variation of the warp and the contrasts, so that an ASD
    classifier stays near chance, as in the paper's ABIDE results.
    """
    frontal = np.clip((tissues.mni[1] + 30.0) / 40.0, 0.0, 1.0)
    gain = np.minimum(strength * rng.uniform(0.5, 1.5) * frontal * tissues.gm, tissues.csf - tissues.ventricles)
    gain = np.clip(gain, 0.0, None)
    return replace(tissues, gm=tissues.gm + gain, csf=tissues.csf - gain)


@dataclass(frozen=True)
class Haemorrhage:
    """An acute intraparenchymal haematoma inside the box ``box`` of the subject grid.

    Attributes:
        box: slices of the subject grid the local array covers.
        blood: ``(x, y, z)`` float32 blood fraction (replaces normal tissue).
        hu: attenuation of the clot in Hounsfield units (acute blood, 50-80 HU).
    """

    box: tuple[slice, slice, slice]
    blood: np.ndarray
    hu: float

    @property
    def fraction(self) -> np.ndarray:
        """``(x, y, z)`` share of normal tissue the haematoma replaces."""
        return self.blood


# Acute clot attenuation (HU) and haematoma radius (mm): from a few mm (a petechial or small
# lobar bleed, the size of a sulcus or a choroid-plexus calcification) to a large haematoma.
HAEMORRHAGE_HU = (50.0, 80.0)
HAEMORRHAGE_RADIUS_MM = (3.0, 14.0)


def make_haemorrhage(tissues: Tissues, rng: np.random.Generator) -> Haemorrhage:
    """Draw an acute haematoma: an irregular blob anywhere in the cerebrum, deep (basal ganglia,
    thalamus) or lobar (cortex and the white matter beneath), never reaching the brain surface."""
    voxel = float(tissues.affine[0, 0])
    radius = float(rng.uniform(*HAEMORRHAGE_RADIUS_MM))
    eligible = (tissues.brain > 0.9) & (tissues.signed_distance < -(radius + 2.0)) & (tissues.mni[2] > -25.0)
    flat = np.flatnonzero(eligible)
    centre = np.asarray(np.unravel_index(flat[rng.integers(len(flat))], eligible.shape))
    reach = 1.5 * radius + 2.0 * voxel
    box, distance = _box_around(centre, reach, tissues.gm.shape, voxel)
    outline = np.clip(1.0 + 0.25 * _local_noise(rng, distance.shape, sigma=max(radius / (2.0 * voxel), 0.5)), 0.6, 1.4)
    blood = _sigmoid((1.0 - distance / (radius * outline)) / 0.12) * tissues.brain[box]
    return Haemorrhage(box, blood.astype(np.float32), float(rng.uniform(*HAEMORRHAGE_HU)))
