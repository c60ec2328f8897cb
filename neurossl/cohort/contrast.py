"""Image contrast from tissue fractions: T1w / T2w / FLAIR (arbitrary units) and CT (HU).

An image is the partial-volume mix ``sum_k fraction_k * intensity_k`` over the brain tissues,
the skull-shell layers, the air and, when present, a glioma's compartments. MR intensities are
drawn per scan around typical relative values (white matter ~ 1 on T1w), so tissue contrast
varies between scans as it does between scanners and protocols; CT uses Hounsfield units.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from neurossl.cohort.anatomy import Shell, Tissues
from neurossl.cohort.pathology import Haemorrhage, Lesion

MODALITIES = ("T1w", "T2w", "FLAIR", "CT")
TISSUES = ("air", "csf", "gm", "wm", "bone", "marrow", "fat", "skin", "solid", "necrosis", "edema")
# Typical relative MR signal per tissue, in the order of TISSUES.
MR_INTENSITY = MappingProxyType({
    "T1w": (0.0, 0.22, 0.6, 1.0, 0.05, 0.85, 1.15, 0.45, 0.5, 0.18, 0.45),
    "T2w": (0.0, 1.0, 0.55, 0.38, 0.04, 0.5, 0.75, 0.35, 0.75, 1.05, 0.85),
    "FLAIR": (0.0, 0.07, 0.72, 0.5, 0.04, 0.55, 0.85, 0.4, 0.95, 0.25, 1.15),
})
# Hounsfield units (mean, std of the per-scan draw) per tissue, in the order of TISSUES.
CT_HU = (
    (-1000.0, 0.0),
    (5.0, 2.0),
    (40.0, 2.0),
    (25.0, 2.0),
    (1700.0, 120.0),
    (900.0, 100.0),
    (-90.0, 8.0),
    (40.0, 4.0),
    (35.0, 3.0),
    (10.0, 3.0),
    (15.0, 3.0),
)


def tissue_intensities(modality: str, rng: np.random.Generator) -> dict[str, float]:
    """Intensity per tissue for one scan: typical values jittered by ~8% (MR) or by the HU std (CT)."""
    if modality == "CT":
        return {name: float(rng.normal(mean, std)) for name, (mean, std) in zip(TISSUES, CT_HU)}
    if modality not in MR_INTENSITY:
        raise ValueError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    jitter = np.exp(rng.normal(0.0, 0.08, size=len(TISSUES)))
    return {name: float(v * j) for name, v, j in zip(TISSUES, MR_INTENSITY[modality], jitter)}


def synthesize(
    tissues: Tissues, shell: Shell, intensity: dict[str, float], lesion: Lesion | Haemorrhage | None = None
) -> np.ndarray:
    """Noise-free image on the subject grid, ``(X, Y, Z)`` float32.

    Args:
        tissues: brain tissue fractions (already carved by ``lesion`` if there is one).
        shell: skull-shell and air fractions.
        intensity: per-tissue values from :func:`tissue_intensities`.
        lesion: optional glioma whose compartments are added inside its box, or a haematoma
            (CT only: its clot's own HU).
    """
    parts = (
        ("air", shell.air),
        ("csf", tissues.csf + shell.csf),
        ("gm", tissues.gm),
        ("wm", tissues.wm),
        ("bone", shell.bone),
        ("marrow", shell.marrow),
        ("fat", shell.fat),
        ("skin", shell.skin),
    )
    image = np.zeros_like(tissues.gm)
    for name, fraction in parts:
        if intensity[name] != 0.0:
            image += np.float32(intensity[name]) * fraction
    if isinstance(lesion, Haemorrhage):
        image[lesion.box] += np.float32(lesion.hu) * lesion.blood
    elif lesion is not None:
        # The edema is half as heterogeneous as the solid tumour it surrounds.
        edema = intensity["edema"] * lesion.edema * (0.5 + 0.5 * lesion.texture)
        tumour = intensity["solid"] * lesion.solid * lesion.texture + intensity["necrosis"] * lesion.necrosis
        image[lesion.box] += tumour + edema
    return image
