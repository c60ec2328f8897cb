"""Slice figures of 3-D volumes: orthogonal planes of raw and preprocessed scans, and masked
reconstructions.

Volumes are shown in RAS voxel order ``(X, Y, Z)`` = (right, anterior, superior), in the
neurological convention: the subject's right is on the right of an axial or coronal panel,
anterior is up in axial panels and superior is up in coronal and sagittal ones. A physical voxel
spacing keeps the true aspect ratio of thick-slice acquisitions and adds a scale bar in mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# anatomical plane -> the RAS axis held fixed in it
PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}
SCALE_BAR_MM = 50.0


@dataclass
class SliceView:
    """One volume to draw in the three orthogonal planes.

    Attributes:
        volume: ``(X, Y, Z)`` array in RAS order.
        spacing: voxel size along X, Y, Z in mm; None for a resampled grid without physical size
            (drawn with square voxels and no scale bar).
        window: display range ``(low, high)``; None = the 1st-99.5th percentile of nonzero voxels.
        focus: voxel ``(x, y, z)`` the three planes pass through; None = the volume's centre.
        background: a value drawn black as outside the brain (0 for z-scored model inputs).
    """

    volume: np.ndarray
    spacing: tuple[float, float, float] | None = None
    window: tuple[float, float] | None = None
    focus: tuple[int, int, int] | None = None
    background: float | None = None


def as_ras(image: torch.Tensor | np.ndarray, depth_axis: int, channel: int = 0) -> np.ndarray:
    """A model input ``(C, D, H, W)`` (or ``(D, H, W)``) back in RAS axis order ``(X, Y, Z)``.

    ``item_stage`` moves the slice axis (RAS axis ``depth_axis``) to the front and keeps the other
    two in RAS order, so moving it back restores RAS order (with the resampled extents).
    """
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 4:
        array = array[channel]
    return np.moveaxis(array.astype(np.float32), 0, depth_axis)


def bright_focus(
    volume: np.ndarray, mask: np.ndarray | None = None, size: int = 5
) -> tuple[int, int, int]:
    """Voxel where the volume, averaged over ``size``-voxel cubes, is brightest inside ``mask``
    (e.g. a FLAIR lesion inside the brain), for planes that pass through it."""
    from scipy.ndimage import uniform_filter

    smooth = uniform_filter(np.asarray(volume, dtype=np.float32), size=size)
    if mask is not None:
        smooth = np.where(np.asarray(mask, bool), smooth, -np.inf)
    return tuple(int(i) for i in np.unravel_index(np.argmax(smooth), smooth.shape))


def model_space_focus(
    focus: Sequence[int], bbox: Sequence[Sequence[int]], depth_axis: int, depth: int, crop_size: int
) -> tuple[int, int, int]:
    """Where a raw RAS voxel lands in an evaluation-mode model input put back in RAS order.

    Follows the preprocessing: the brain bounding box ``bbox`` (``[[x0, x1], [y0, y1], [z0, z1]]``
    as in the cache index), the centred in-plane square crop, and the resize of the depth axis to
    ``depth`` and of the in-plane axes to ``crop_size`` (voxel centres mapped linearly).
    """
    extents = [int(b[1]) - int(b[0]) for b in bbox]
    side = min(n for a, n in enumerate(extents) if a != depth_axis)
    point = []
    for axis, (voxel, (start, _)) in enumerate(zip(focus, bbox)):
        local = voxel - int(start)
        if axis == depth_axis:
            size, scale = depth, depth / extents[axis]
        else:
            local -= (extents[axis] - side) // 2
            size, scale = crop_size, crop_size / side
        point.append(int(np.clip(round((local + 0.5) * scale - 0.5), 0, size - 1)))
    return tuple(point)


def plane_image(volume: np.ndarray, plane: str, focus: Sequence[int]) -> np.ndarray:
    """The 2-D slice of an ``(X, Y, Z)`` volume through ``focus``, as ``(rows, cols)`` to draw
    with ``origin="lower"``: axial (Y up, X across), coronal and sagittal (Z up)."""
    x, y, z = focus
    if plane == "axial":
        return volume[:, :, z].T
    if plane == "coronal":
        return volume[:, y, :].T
    if plane == "sagittal":
        return volume[x, :, :].T
    raise ValueError(f"plane must be one of {tuple(PLANES)}, got {plane!r}")


def _pixel_mm(spacing: Sequence[float], plane: str) -> tuple[float, float]:
    """(horizontal, vertical) pixel size in mm of a plane drawn by :func:`plane_image`."""
    sx, sy, sz = spacing
    return {"axial": (sx, sy), "coronal": (sx, sz), "sagittal": (sy, sz)}[plane]


def display_window(volume: np.ndarray) -> tuple[float, float]:
    """1st and 99.5th percentile of the nonzero voxels (the whole volume if all are zero)."""
    values = volume[volume != 0]
    values = values if values.size else volume.ravel()
    low, high = np.percentile(values, [1.0, 99.5])
    return float(low), float(max(high, low + 1e-6))


def _add_scale_bar(ax: Axes, width_mm: float, height_mm: float) -> None:
    """A white ``SCALE_BAR_MM`` bar in the lower-left corner (axes in mm)."""
    x0, y0 = 0.06 * width_mm, 0.06 * height_mm
    ax.plot([x0, x0 + SCALE_BAR_MM], [y0, y0], color="white", linewidth=2.5, solid_capstyle="butt")
    ax.text(x0, y0 + 0.03 * height_mm, f"{SCALE_BAR_MM:g} mm", color="white", fontsize=7,
            va="bottom")


def draw_plane(ax: Axes, view: SliceView, plane: str, cmap: str = "gray") -> None:
    """Draw one plane of ``view`` on ``ax`` (in mm when it has a spacing, else in voxels)."""
    volume = view.volume
    focus = view.focus or tuple(s // 2 for s in volume.shape)
    image = plane_image(volume, plane, focus)
    if view.background is not None:
        image = np.where(image == view.background, np.nan, image)
        ax.set_facecolor("black")
    low, high = view.window or display_window(volume)
    h_mm, v_mm = _pixel_mm(view.spacing or (1.0, 1.0, 1.0), plane)
    width, height = image.shape[1] * h_mm, image.shape[0] * v_mm
    ax.imshow(image, cmap=cmap, vmin=low, vmax=high, origin="lower",
              extent=(0, width, 0, height), interpolation="nearest")
    if view.spacing is not None:
        _add_scale_bar(ax, width, height)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def plot_orthogonal_views(
    rows: Sequence[Sequence[SliceView]],
    row_labels: Sequence[str],
    group_titles: Sequence[str],
    title: str,
) -> Figure:
    """Grid of volumes in the three orthogonal planes: one row per scan, one column group per view.

    Args:
        rows: per row, one :class:`SliceView` per column group (e.g. raw, preprocessed).
        row_labels: text left of each row (scan, modality, spacing).
        group_titles: one title per column group, prefixed to the plane names.
        title: figure title.

    Returns:
        Figure with ``len(rows)`` rows and ``3 * len(group_titles)`` image panels per row.
    """
    planes = list(PLANES)
    n_cols = 3 * len(group_titles)
    fig = Figure(figsize=(1.9 * n_cols + 0.8, 2.1 * len(rows) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), n_cols, squeeze=False))
    for r, (views, label) in enumerate(zip(rows, row_labels, strict=True)):
        for g, view in enumerate(views):
            for p, plane in enumerate(planes):
                ax = axes[r, 3 * g + p]
                draw_plane(ax, view, plane)
                if r == 0:
                    ax.set_title(f"{group_titles[g]}\n{plane}", fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title)
    return fig


def plot_reconstructions(
    results: dict[str, dict[str, np.ndarray]], plane: str = "axial", title: str | None = None
) -> Figure:
    """Masked-reconstruction panels of one volume, one row per objective.

    Columns: the input; the input with masked tubelets greyed out (what the encoder sees); the
    decoder's output; and the mosaic (visible voxels from the input, masked ones from the
    decoder). The slice passes through the volume's centre in ``plane``.

    Args:
        results: objective name -> ``dict(input, mask, reconstruction, mosaic)``, each an
            ``(D, H, W)`` array in model space, ``mask`` boolean (True = masked voxel), as
            returned by :func:`neurossl.analysis.reconstruction.reconstruct`; ``depth_axis``
            (optional int) puts the volume back in RAS order for labelled planes.
        plane: ``axial``, ``coronal`` or ``sagittal``.
        title: figure title (default names the plane).

    Returns:
        Figure with ``len(results)`` rows and four columns, sharing one intensity range per row.
    """
    columns = ["input", "visible to the encoder", "reconstruction", "mosaic"]
    fig = Figure(figsize=(8.4, 2.3 * len(results) + 0.5), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(results), 4, squeeze=False))
    for r, (name, result) in enumerate(results.items()):
        depth_axis = int(result.get("depth_axis", 0))
        ras = {key: as_ras(np.asarray(result[key]), depth_axis)
               for key in ("input", "reconstruction", "mosaic")}
        mask = np.moveaxis(np.asarray(result["mask"], dtype=bool), 0, depth_axis)
        window = display_window(ras["input"])
        visible = np.where(mask, np.nan, ras["input"])
        ratio = mask.mean()
        panels = [ras["input"], visible, ras["reconstruction"], ras["mosaic"]]
        for c, volume in enumerate(panels):
            ax = axes[r, c]
            draw_plane(ax, SliceView(volume, window=window), plane)
            ax.set_facecolor("#4a6fa5")  # masked (NaN) voxels show the background colour
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r, 0].set_ylabel(f"{name}\n({ratio:.0%} masked)", fontsize=9)
    fig.suptitle(title or f"Masked reconstructions, {plane} slice through the centre "
                          "(blue: masked tubelets)")
    return fig
