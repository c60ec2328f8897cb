"""Subject anatomy for the demo cohort: MNI152 tissue maps, warps, atrophy helpers and a skull shell.

Every array here lives on one of two grids:

- the *template grid*: nilearn's MNI152 2009 maps at ``resolution_mm`` (RAS+, axis-aligned);
- the *subject grid*: an axis-aligned RAS+ box around the head (:data:`HEAD_BOX_MM`) at the same
  resolution, on which a subject's tissues are built before any acquisition effect.

A subject is the template seen through a random affine (head size, pose) plus a smooth elastic
displacement; all sampling is vectorised (``scipy.ndimage.map_coordinates``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from neurossl.cohort.fields import half_grid, smooth_field, upsample_half, world_axes

# World box of the subject grid in mm, per RAS axis: the MNI brain (x -72..72, y -106..72,
# z -72..82) plus room for the skull shell and for the random head scaling and rotation.
HEAD_BOX_MM = ((-100.0, 100.0), (-136.0, 100.0), (-90.0, 110.0))
# Rotation / scaling happen about the middle of the MNI brain, not about the world origin.
BRAIN_CENTRE_MM = (0.0, -17.0, 5.0)
# Points inside the lateral ventricles of the (symmetric) MNI152 2009 template, in mm.
VENTRICLE_SEEDS_MM = ((6.0, 0.0, 18.0), (-6.0, 0.0, 18.0), (22.0, -40.0, 18.0), (-22.0, -40.0, 18.0))
# Hippocampus approximated as an ellipsoidal GM region (centre, radii) in MNI mm.
HIPPOCAMPUS_MM = ((26.0, -22.0, -14.0), (7.0, 14.0, 7.0))
# Skull-shell layers from the brain surface outwards: (name, mean thickness mm).
SHELL_LAYERS_MM = (
    ("csf", 2.0),  # meninges and extra-cerebral CSF
    ("bone", 2.0),  # inner table
    ("marrow", 3.0),  # diploe
    ("bone", 2.0),  # outer table
    ("fat", 3.5),  # subcutaneous fat
    ("skin", 3.5),  # skin, galea and scalp muscle
)


@dataclass(frozen=True)
class Template:
    """MNI152 tissue maps on the template grid, each ``(X, Y, Z)`` float32.

    Attributes:
        gm, wm: grey / white matter probability inside the brain.
        ventricles: CSF probability inside the lateral ventricles.
        signed_distance: mm to the brain surface, negative inside, positive outside.
        affine: ``(4, 4)`` voxel-to-MNI matrix (diagonal, RAS+).
    """

    gm: np.ndarray
    wm: np.ndarray
    ventricles: np.ndarray
    signed_distance: np.ndarray
    affine: np.ndarray

    @property
    def resolution_mm(self) -> float:
        """Voxel size of the template grid in mm."""
        return float(self.affine[0, 0])

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Fractional template voxel indices of MNI points ``(3, ...)`` (mm), same shape."""
        inverse = np.linalg.inv(self.affine)
        return np.stack([inverse[a, a] * points[a] + inverse[a, 3] for a in range(3)])


@dataclass(frozen=True)
class Tissues:
    """A subject's tissue fractions on the subject grid, each ``(X, Y, Z)`` float32.

    Attributes:
        gm, wm, csf: fractions inside the brain; ``gm + wm + csf == brain``.
        ventricles: the ventricular part of ``csf``.
        brain: soft brain fraction (partial volume at the surface); the mask is ``brain >= 0.5``.
        signed_distance: mm to the brain surface (negative inside).
        mni: ``(3, X, Y, Z)`` MNI coordinates (mm) each voxel was sampled from.
        affine: ``(4, 4)`` subject-grid voxel-to-world matrix (RAS+).
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray
    brain: np.ndarray
    signed_distance: np.ndarray
    mni: np.ndarray
    affine: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``(X, Y, Z)`` boolean brain mask (the skull shell excluded)."""
        return self.brain >= 0.5

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0


@dataclass(frozen=True)
class Shell:
    """Tissue fractions outside the brain, each ``(X, Y, Z)`` float32.

    ``brain + csf + bone + marrow + fat + skin + air == 1`` everywhere.
    """

    csf: np.ndarray
    bone: np.ndarray
    marrow: np.ndarray
    fat: np.ndarray
    skin: np.ndarray
    air: np.ndarray


def load_template(resolution_mm: int = 2) -> Template:
    """Load nilearn's MNI152 2009 maps (shipped in its wheel, offline) as a :class:`Template`."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=resolution_mm)
    mask_raw = _as_float(datasets.load_mni152_brain_mask(resolution=resolution_mm))
    # The 2 mm mask is blocky: smooth it once so the written masks have a natural surface.
    mask = ndi.gaussian_filter(mask_raw, sigma=2.0 / resolution_mm) > 0.5
    gm = _as_float(datasets.load_mni152_gm_template(resolution=resolution_mm)) * mask
    wm = _as_float(datasets.load_mni152_wm_template(resolution=resolution_mm)) * mask
    wm = np.minimum(wm, 1.0 - gm)
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    affine = np.asarray(t1.affine, dtype=np.float64)
    distance = _signed_distance(mask, float(resolution_mm))
    ventricles = csf * _ventricle_region(csf, affine)
    return Template(gm, wm, ventricles.astype(np.float32), distance, affine)


def _as_float(image) -> np.ndarray:
    return np.asarray(image.dataobj, dtype=np.float32)


def _sample(volume: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Trilinear samples of ``volume`` at voxel coordinates ``index`` ``(3, ...)``; edges repeat."""
    return ndi.map_coordinates(volume, index, order=1, mode="nearest", output=np.float32)


def _signed_distance(mask: np.ndarray, voxel_mm: float) -> np.ndarray:
    """``(X, Y, Z)`` mm from the surface of ``mask``: negative inside, positive outside."""
    outside = ndi.distance_transform_edt(~mask) * voxel_mm
    inside = ndi.distance_transform_edt(mask) * voxel_mm
    return (outside - inside).astype(np.float32)


def _ventricle_region(csf: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``(X, Y, Z)`` bool: the connected CSF components holding :data:`VENTRICLE_SEEDS_MM`."""
    mm = world_axes(csf.shape, affine)
    centre = (mm[0][:, None, None] / 34.0) ** 2 + ((mm[1][None, :, None] + 15.0) / 55.0) ** 2
    central = centre + ((mm[2][None, None, :] - 5.0) / 35.0) ** 2 < 1.0
    labels, _ = ndi.label((csf > 0.5) & central)
    inverse = np.linalg.inv(affine)
    seeds = [np.round(inverse[:3, :3] @ np.asarray(s) + inverse[:3, 3]).astype(int) for s in VENTRICLE_SEEDS_MM]
    ids = {int(labels[tuple(s)]) for s in seeds} - {0}
    if not ids:
        raise ValueError("no ventricle seed falls inside the template's CSF; check the template")
    return ndi.binary_dilation(np.isin(labels, sorted(ids)))


def subject_grid(resolution_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and ``(4, 4)`` RAS+ affine of the subject grid covering :data:`HEAD_BOX_MM`."""
    shape = tuple(int(round((hi - lo) / resolution_mm)) + 1 for lo, hi in HEAD_BOX_MM)
    affine = np.diag([resolution_mm] * 3 + [1.0])
    affine[:3, 3] = [lo for lo, _ in HEAD_BOX_MM]
    return shape, affine


def random_head_affine(rng: np.random.Generator, rotation_deg: float = 8.0) -> np.ndarray:
    """``(3, 3)`` subject-to-MNI linear map: rotation, global head size and mild anisotropy."""
    angles = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, size=3))
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rotation = rotation @ r
    scale = rng.uniform(0.93, 1.07) * rng.uniform(0.97, 1.03, size=3)
    return rotation @ np.diag(scale)


def sample_coordinates(
    rng: np.random.Generator, shape: tuple[int, int, int], affine: np.ndarray, elastic_mm: float = 2.5
) -> np.ndarray:
    """MNI coordinates ``(3, X, Y, Z)`` (mm) each voxel of the grid ``(shape, affine)`` is sampled from.

    ``mni = c + A (p + u(p) - c) + t``: ``A`` from :func:`random_head_affine`, ``u`` a smooth
    elastic displacement (std ``elastic_mm``, correlation ~12 mm), ``t`` a translation.
    """
    linear = random_head_affine(rng)
    shift = rng.uniform(-5.0, 5.0, size=3)
    centre = np.asarray(BRAIN_CENTRE_MM)
    axes = world_axes(shape, affine)
    voxel = float(affine[0, 0])
    moved = []
    for a in range(3):
        grid = np.expand_dims(axes[a] - centre[a], [b for b in range(3) if b != a])
        moved.append(grid + elastic_mm * smooth_field(rng, shape, 12.0, voxel))
    mni = [centre[a] + shift[a] + sum(linear[a, b] * moved[b] for b in range(3)) for a in range(3)]
    return np.stack(mni).astype(np.float32)


def warp_template(template: Template, mni: np.ndarray, shape: tuple[int, int, int], affine: np.ndarray) -> Tissues:
    """Sample the template at the coordinates ``mni`` ``(3, x, y, z)`` of :func:`half_grid`.

    The coordinates and the signed distance are smooth, so they are sampled on the half grid and
    upsampled (8x fewer samples); the tissue maps are sampled at full resolution, but only where
    the brain is. Outside the template box the edge value is repeated (``mode="nearest"``), which
    continues the brainstem below the template's lower edge instead of cutting it flat.

    Returns:
        :class:`Tissues` on the grid ``(shape, affine)``.
    """
    distance = upsample_half(_sample(template.signed_distance, template.to_index(mni)), shape)
    full_mni = np.stack([upsample_half(m, shape) for m in mni])
    brain = np.clip(0.5 - distance / float(affine[0, 0]), 0.0, 1.0)
    inside = np.flatnonzero(brain > 0.0)
    index = template.to_index(full_mni.reshape(3, -1)[:, inside])
    maps = {}
    for name in ("gm", "wm", "ventricles"):
        flat = np.zeros(brain.size, dtype=np.float32)
        flat[inside] = _sample(getattr(template, name), index)
        maps[name] = flat.reshape(shape)
    gm = maps["gm"] * brain
    wm = np.minimum(maps["wm"] * brain, brain - gm)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    ventricles = np.minimum(maps["ventricles"], csf)
    return Tissues(gm, wm, csf, ventricles, brain, distance, full_mni, affine)


def make_subject(template: Template, rng: np.random.Generator) -> Tissues:
    """A new healthy subject: the template under a random affine + elastic warp."""
    shape, affine = subject_grid(template.resolution_mm)
    mni = sample_coordinates(rng, *half_grid(shape, affine))
    return warp_template(template, mni, shape, affine)


def move_to_csf(tissues: Tissues, gm_loss: np.ndarray, wm_loss: np.ndarray) -> Tissues:
    """Turn fractions ``gm_loss`` / ``wm_loss`` (``(X, Y, Z)``, 0..1) of GM / WM into CSF."""
    gm_lost = tissues.gm * np.clip(gm_loss, 0.0, 1.0)
    wm_lost = tissues.wm * np.clip(wm_loss, 0.0, 1.0)
    return replace(tissues, gm=tissues.gm - gm_lost, wm=tissues.wm - wm_lost, csf=tissues.csf + gm_lost + wm_lost)


def enlarge_ventricles(tissues: Tissues, grow_mm: float) -> Tissues:
    """Dilate the ventricles by ``grow_mm`` (soft edge), turning the tissue they take into CSF."""
    if grow_mm <= 0:
        return tissues
    voxel = float(tissues.affine[0, 0])
    margin = int(np.ceil(grow_mm / voxel)) + 2
    core = tissues.ventricles > 0.5
    # The distance transform only needs the box around the ventricles: far cheaper than the head.
    box = tuple(slice(max(s.start - margin, 0), s.stop + margin) for s in ndi.find_objects(core.astype(np.int8))[0])
    distance = ndi.distance_transform_edt(~core[box]) * voxel
    grown = np.clip((grow_mm - distance) / voxel + 0.5, 0.0, 1.0) * (tissues.signed_distance[box] < -2.0 * voxel)
    ventricles = tissues.ventricles.copy()
    ventricles[box] = np.maximum(ventricles[box], grown.astype(np.float32))
    parenchyma = tissues.gm + tissues.wm
    taken = np.clip(ventricles - tissues.ventricles, 0.0, None)
    loss = np.divide(taken, parenchyma, out=np.zeros_like(taken), where=parenchyma > 1e-3)
    moved = move_to_csf(tissues, loss, loss)
    return replace(moved, ventricles=np.minimum(ventricles, moved.csf))


def hippocampus_weight(mni: np.ndarray) -> np.ndarray:
    """``(X, Y, Z)`` Gaussian weight (1 at the centre) of both hippocampi from MNI coords ``(3, X, Y, Z)``."""
    (cx, cy, cz), (rx, ry, rz) = HIPPOCAMPUS_MM
    d2 = ((np.abs(mni[0]) - cx) / rx) ** 2 + ((mni[1] - cy) / ry) ** 2 + ((mni[2] - cz) / rz) ** 2
    return np.exp(-0.5 * d2).astype(np.float32)


def skull_shell(tissues: Tissues, rng: np.random.Generator) -> Shell:
    """Concentric layers :data:`SHELL_LAYERS_MM` around the brain with smoothly varying thickness.

    Fractions come from ramps of the signed distance one voxel wide, so the layers carry partial
    volume and sum, with the brain and the air, to exactly one.
    """
    voxel = float(tissues.affine[0, 0])
    distance = tissues.signed_distance
    # Two smooth fields mixed differently per layer: thickness varies around the head at the
    # cost of two upsamplings instead of one per layer.
    fields = [smooth_field(rng, distance.shape, 40.0, voxel) for _ in range(2)]
    layers = {name: np.zeros_like(distance) for name in ("csf", "bone", "marrow", "fat", "skin")}
    inner, boundary = _share_beyond(distance, 0.0, voxel), np.zeros_like(distance)
    for name, thickness in SHELL_LAYERS_MM:
        a, b = rng.normal(0.0, 0.2, size=2)
        variation = np.clip(1.0 + a * fields[0] + b * fields[1], 0.4, None)
        boundary = boundary + thickness * rng.uniform(0.8, 1.25) * variation
        beyond = _share_beyond(distance, boundary, voxel)
        layers[name] += inner - beyond
        inner = beyond
    return Shell(air=inner, **layers)


def _share_beyond(distance: np.ndarray, boundary: np.ndarray | float, voxel: float) -> np.ndarray:
    """``(X, Y, Z)`` share of each voxel lying beyond ``boundary`` mm from the brain (a ramp one
    voxel wide, the partial volume of a surface crossing the voxel)."""
    return np.clip((distance - boundary) / voxel + 0.5, 0.0, 1.0)
