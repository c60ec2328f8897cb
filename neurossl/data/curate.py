"""Curation: each candidate scan under a folder gets one report row, kept or rejected with a reason.

The official filters (design section 3), each threshold from :class:`CurationConfig`: file larger
than ``min_file_bytes``, 3-D only, field of view > ``min_fov_mm`` and spacing <= ``max_spacing_mm``
on every axis, measured after reorientation to RAS. Checks run cheap-first (file size, header,
then voxels), so a file the filters reject is never decompressed.

Files found under the root fall into four kinds:

- scans: names matching ``cfg.patterns``; each gets exactly one row;
- brain masks: names ending in ``cfg.exclude_suffixes``; not scans, linked from their scan's row
  (``mask_path``) and counted in the summary;
- sidecars and hidden files (``.tsv``, ``.json``, ``.DS_Store``, ...): ignored, counted;
- anything else (``.mgz``, ``.img``, ``.nii.bz2``, ...): a rejected row ``unsupported_format``,
  so a scan in a format we do not read is never silently dropped.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurossl.config import CurationConfig
from neurossl.data import curation_rules, io
from neurossl.progress import tqdm

logger = logging.getLogger(__name__)

KEPT = "kept"
REJECTED = "rejected"
# Reason codes added by curation on top of the io.py codes (stable strings).
FILE_TOO_SMALL = "file_too_small"
FOV_TOO_SMALL = "fov_too_small"
SPACING_TOO_COARSE = "spacing_too_coarse"
SPACING_TOO_FINE = "spacing_too_fine"
UNSUPPORTED_FORMAT = "unsupported_format"
UNREADABLE = io.UNREADABLE

REPORT_COLUMNS = (
    "path",
    "status",
    "reason",
    "detail",
    "shape",
    "spacing",
    "orientation",
    "size_bytes",
    "mask_path",
)
# Non-image companions of scans (BIDS sidecars, tables, notes): neither scans nor rejects.
SIDECAR_SUFFIXES = (
    ".tsv", ".json", ".csv", ".txt", ".md", ".yaml", ".yml", ".bval", ".bvec", ".log"
)
# Affines are stored as float32, so 2 mm can read back as 2.0000000476; thresholds compare
# spacings rounded to this many decimals so that a value on the boundary behaves as written.
GEOMETRY_DECIMALS = 4


@dataclass(frozen=True)
class Inventory:
    """The files under a curation root, sorted, by kind (paths include the root).

    ``unlisted`` holds the folders that could not be read (permissions, vanished), so that
    they are reported rather than silently missing from the report.
    """

    scans: tuple[Path, ...]
    unsupported: tuple[Path, ...]
    masks: tuple[Path, ...]
    ignored: tuple[Path, ...]
    unlisted: tuple[str, ...] = ()


def classify_file(name: str, cfg: CurationConfig) -> str:
    """Kind of a file from its name: ``"scan"``, ``"mask"``, ``"ignored"`` or ``"unsupported"``."""
    if name.startswith("."):
        return "ignored"
    if name.endswith(tuple(cfg.exclude_suffixes)):
        return "mask"
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in cfg.patterns):
        return "scan"
    if name.lower().endswith(SIDECAR_SUFFIXES):
        return "ignored"
    return "unsupported"


def find_files(root: Path, cfg: CurationConfig) -> Inventory:
    """Walk ``root`` recursively and sort its files by kind.

    Hidden folders (``.git``, ...) are skipped. Symlinked folders are followed, because datasets
    are often assembled from links (DataLad, shared storage), each real folder once.
    """
    kinds: dict[str, list[Path]] = {"scan": [], "unsupported": [], "mask": [], "ignored": []}
    unlisted: list[str] = []
    seen: set[str] = set()

    def note_unlisted(err: OSError) -> None:
        logger.warning("curation: cannot list folder %s: %s", err.filename, err.strerror)
        unlisted.append(str(err.filename))

    for folder, subfolders, names in os.walk(root, onerror=note_unlisted, followlinks=True):
        seen.add(os.path.realpath(folder))
        subfolders[:] = sorted(
            d
            for d in subfolders
            if not d.startswith(".") and os.path.realpath(os.path.join(folder, d)) not in seen
        )
        for name in sorted(names):
            kinds[classify_file(name, cfg)].append(Path(folder) / name)
    groups = (tuple(kinds[k]) for k in ("scan", "unsupported", "mask", "ignored"))
    return Inventory(*groups, unlisted=tuple(unlisted))


def _format_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _format_spacing(spacing: tuple[float, ...]) -> str:
    return "x".join(f"{s:.2f}" for s in spacing)


def _new_row(path: Path, root: Path) -> dict:
    return {
        "path": path.relative_to(root).as_posix(),
        "status": REJECTED,
        "reason": "",
        "detail": "",
        "shape": "",
        "spacing": "",
        "orientation": "",
        "size_bytes": pd.NA,
        "mask_path": "",
    }


def file_size(path: Path) -> int:
    """Size in bytes of the file at ``path``; :class:`io.VolumeError` ``missing_file`` if none."""
    if not path.is_file():
        raise io.VolumeError(path, io.MISSING, "no such file (a broken link?)")
    return path.stat().st_size


def check_file_size(path: Path, size: int, cfg: CurationConfig) -> None:
    """The official size filter: the file must be larger than ``min_file_bytes`` (or the rule
    set's minimum when that is larger)."""
    if size == 0:
        raise io.VolumeError(path, io.EMPTY, "file is empty (0 bytes)")
    limit = curation_rules.min_file_bytes(cfg)
    if size <= limit:
        raise io.VolumeError(path, FILE_TOO_SMALL, f"{size} bytes <= {limit} bytes")


def check_geometry(
    path: Path,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    cfg: CurationConfig,
) -> None:
    """Apply the spacing and field-of-view filters to a RAS shape / spacing (mm).

    The worst axis is named; a spacing below ``min_spacing_mm`` is a corrupt header, so it is
    checked before the field of view it would shrink.
    """
    spacing = tuple(round(s, GEOMETRY_DECIMALS) for s in spacing)
    finest = min(range(3), key=lambda a: spacing[a])
    if spacing[finest] < cfg.min_spacing_mm:
        raise io.VolumeError(
            path,
            SPACING_TOO_FINE,
            f"spacing {spacing[finest]} mm on axis {finest} < {cfg.min_spacing_mm} mm",
        )
    coarsest = max(range(3), key=lambda a: spacing[a])
    if spacing[coarsest] > cfg.max_spacing_mm:
        raise io.VolumeError(
            path,
            SPACING_TOO_COARSE,
            f"spacing {spacing[coarsest]:.2f} mm on axis {coarsest} > {cfg.max_spacing_mm:.2f} mm",
        )
    fov = [round(n * s, GEOMETRY_DECIMALS) for n, s in zip(shape, spacing)]
    narrowest = min(range(3), key=lambda a: fov[a])
    if fov[narrowest] <= cfg.min_fov_mm:
        raise io.VolumeError(
            path,
            FOV_TOO_SMALL,
            f"fov {fov[narrowest]:.1f} mm on axis {narrowest} <= {cfg.min_fov_mm:.1f} mm",
        )


def _evaluate_scan(path: Path, root: Path, cfg: CurationConfig, row: dict) -> None:
    """Run the filters cheap-first, filling ``row`` as facts become known; raise on rejection."""
    rules = curation_rules.active_rules(cfg)
    row["size_bytes"] = file_size(path)
    curation_rules.check_path(path, root, rules)
    check_file_size(path, row["size_bytes"], cfg)
    img = io.open_nifti(path)
    io.check_header(img, path, cfg.max_voxels)
    shape, spacing = io.ras_geometry(img)
    row.update(
        orientation=io.orientation_code(img.affine),
        shape=_format_shape(shape),
        spacing=_format_spacing(spacing),
    )
    check_geometry(path, shape, spacing, cfg)
    data = io.read_voxels(img, path)
    io.check_voxels(data, path)
    curation_rules.check_intensity(path, data, rules)
    row["status"] = KEPT


def curate_file(path: Path, root: Path, cfg: CurationConfig) -> dict:
    """One report row for the scan at ``path``; never raises for a bad file."""
    row = _new_row(path, root)
    row["mask_path"] = io.mask_beside(root, path)
    try:
        _evaluate_scan(path, root, cfg, row)
    except io.VolumeError as err:
        row.update(reason=err.code, detail=err.detail)
    except Exception as err:  # one hostile file must not end a long run; the row keeps the text
        logger.warning("curation: unexpected error on %s: %s: %s", path, type(err).__name__, err)
        row.update(reason=UNREADABLE, detail=f"{type(err).__name__}: {err}")
    return row


def _unsupported_row(path: Path, root: Path, cfg: CurationConfig) -> dict:
    row = _new_row(path, root)
    suffix = "".join(path.suffixes[-2:]) or path.name
    row.update(
        reason=UNSUPPORTED_FORMAT,
        detail=f"'{suffix}' is not a supported scan format (expected {', '.join(cfg.patterns)})",
    )
    if path.is_file():
        row["size_bytes"] = file_size(path)
    return row


def write_report(report: pd.DataFrame, path: str | Path) -> Path:
    """Write the report CSV (parent folders created; written atomically so a crash leaves none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    report.to_csv(partial, index=False)
    partial.replace(path)
    return path


def read_report(path: str | Path) -> pd.DataFrame:
    """Read a curation CSV back with the types :func:`curate_directory` returns (blanks stay "")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"curation report not found: {path}")
    dtypes = {c: str for c in REPORT_COLUMNS} | {"size_bytes": "Int64"}
    report = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={"size_bytes": [""]})
    _require_columns(report, str(path))
    return report


def _require_columns(report: pd.DataFrame, source: str) -> None:
    missing = [c for c in REPORT_COLUMNS if c not in report.columns]
    if missing:
        raise ValueError(f"{source} is not a curation report: missing columns {missing}")


def curate_directory(
    root: str | Path,
    cfg: CurationConfig | None = None,
    report_path: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Curate every candidate scan under ``root``.

    Returns:
        One row per scan or unsupported-format file, sorted by ``path``, with the columns
        :data:`REPORT_COLUMNS`. ``report.attrs`` holds ``root``, the counts of brain-mask
        and ignored files and the folders that could not be listed (for :func:`summarize_report`;
        not stored in the CSV).
    Raises:
        FileNotFoundError: ``root`` does not exist, or holds no candidate scan files.
        NotADirectoryError: ``root`` is a file.
    """
    cfg = cfg or CurationConfig()
    curation_rules.active_rules(cfg)  # an unknown rule set fails before the walk
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"curation root does not exist: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"curation root is not a folder: {root}")
    found = find_files(root, cfg)
    if not found.scans and not found.unsupported:
        raise FileNotFoundError(
            f"no candidate scan files under {root}: nothing matches {', '.join(cfg.patterns)} "
            f"({len(found.masks)} brain-mask and {len(found.ignored)} sidecar/hidden files seen)"
        )
    scans = tqdm(found.scans, desc="curate", unit="file", disable=not progress)
    rows = [curate_file(path, root, cfg) for path in scans]
    rows += [_unsupported_row(p, root, cfg) for p in found.unsupported]
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS)).sort_values("path", ignore_index=True)
    report["size_bytes"] = report["size_bytes"].astype("Int64")
    report.attrs.update(
        root=str(root),
        rule_set=cfg.rule_set,
        mask_files=len(found.masks),
        ignored_files=len(found.ignored),
        unlisted_folders=list(found.unlisted),
    )
    if report_path is not None:
        write_report(report, report_path)
    return report


def summarize_report(report: pd.DataFrame) -> str:
    """Printable summary: scans kept and rejected (by reason), brain masks, ignored files."""
    _require_columns(report, "report")
    kept = int((report["status"] == KEPT).sum())
    rejected = report.loc[report["status"] != KEPT, "reason"]
    where = f" under {report.attrs['root']}" if "root" in report.attrs else ""
    lines = [f"curation{where}: {len(report)} scan files, {kept} kept, {len(rejected)} rejected"]
    if report.attrs.get("rule_set"):
        lines.append(f"dataset rule set: {report.attrs['rule_set']}")
    counts = rejected.value_counts()
    for reason in sorted(counts.index, key=lambda r: (-counts[r], r)):
        lines.append(f"  {reason:<24}{counts[reason]:>6}")
    with_mask = int((report["mask_path"] != "").sum())
    if "mask_files" in report.attrs:
        masks = report.attrs["mask_files"]
        lines.append(f"brain-mask files: {masks} (not scans; {with_mask} beside a scan)")
    else:
        lines.append(f"scans with a brain mask beside them: {with_mask}")
    if "ignored_files" in report.attrs:
        lines.append(f"sidecar / hidden files ignored: {report.attrs['ignored_files']}")
    for folder in report.attrs.get("unlisted_folders", []):
        lines.append(f"WARNING: folder not listed (unreadable), its files are missing: {folder}")
    return "\n".join(lines)


def kept_scans(report: pd.DataFrame | str | Path, root: str | Path | None = None) -> pd.DataFrame:
    """The kept rows of a report (a DataFrame or a CSV path), for the stages after curation.

    With ``root`` (the folder that was curated), adds ``scan_file`` and ``mask_file``: the
    absolute paths (``mask_file`` is ``""`` when the scan has no mask).
    """
    if not isinstance(report, pd.DataFrame):
        report = read_report(report)
    _require_columns(report, "report")
    kept = report[report["status"] == KEPT].reset_index(drop=True)
    if root is not None:
        base = Path(root).resolve()
        kept["scan_file"] = [str(base / p) for p in kept["path"]]
        kept["mask_file"] = [str(base / m) if m else "" for m in kept["mask_path"]]
    return kept
