"""Preprocess once: the deterministic stage of every scan, stored as memory-mappable ``.npy``.

Layout of ``cache_dir``::

    index.csv               one row per entry of the latest build (status ok / failed)
    volumes/<key>.npy       (X, Y, Z) cfg.cache_dtype, RAS, cropped; np.load(mmap_mode="r")
    volumes/<key>.json      that array's metadata (shape, spacing, depth_axis, mask method, ...)

``key`` = sha256 over the scan file's bytes, the given mask file's bytes (when the mask method
reads one), the modality kind (CT / MRI) and :func:`config_hash` of the deterministic config
fields. A changed file, mask or config therefore gets a new key and is recomputed; an unchanged
one is found by key and skipped. Files are written to a temporary name and moved into place with
``os.replace``, so an interrupted build never leaves a half-written array under a valid key.
A scan that fails (:class:`~neurossl.data.io.VolumeError`) becomes a ``failed`` row with its
reason; the build goes on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from neurossl.config import PreprocessConfig
from neurossl.data.io import MISSING, VolumeError, mask_path_for
from neurossl.data.preprocess import deterministic_stage, is_ct
from neurossl.progress import tqdm
from neurossl.runtime.files import atomic_path, sha256_file

CACHE_OVERFLOW = "cache_dtype_overflow"  # reason code, in the style of neurossl.data.io's
INDEX_FILE = "index.csv"
VOLUMES_DIR = "volumes"
# Bump when the deterministic stage's output changes for the same inputs and config.
CACHE_FORMAT = 1
DETERMINISTIC_FIELDS = ("margin", "clip_percentiles", "isotropy_ratio", "mask", "cache_dtype")
# Deterministic fields added later -> the value every cache built before them had. They enter the
# hash only when they differ from it, so that those caches stay valid; an index without their
# column reads back as that value.
LATER_FIELDS = {"intensity": "brain"}
CARRIED_COLUMNS = ("subject_id", "session", "dataset", "label", "age", "sex")
CACHE_DTYPES = ("float16", "float32")
STATUS_COLUMNS = ("status", "action", "reason", "detail")
ENTRY_COLUMNS = (
    "key",
    "file",
    "shape",
    "spacing",
    "depth_axis",
    "mask_method",
    "bbox",
    "intensity",
    "config_hash",
)
# read back as text (labels such as "NC" or "1" stay strings); missing -> ""
TEXT_COLUMNS = (
    ("scan_uid", "path", "modality", "subject_id", "session", "dataset", "label", "sex")
    + STATUS_COLUMNS
    + ("key", "file", "mask_method", "intensity", "config_hash")
)


def config_hash(cfg: PreprocessConfig) -> str:
    """Hash of the config fields that change the deterministic stage's output (hex, 16 chars)."""
    fields = {name: getattr(cfg, name) for name in DETERMINISTIC_FIELDS}
    fields.update({name: getattr(cfg, name) for name, before in LATER_FIELDS.items()
                   if getattr(cfg, name) != before})
    fields["format"] = CACHE_FORMAT
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def mask_file_for(record: dict, root: Path, scan: Path) -> Path:
    """The given mask of an entry: its ``mask_path`` column, else the BET name beside the scan."""
    given = text(record.get("mask_path"))
    return root / given if given else mask_path_for(scan)


def entry_key(scan: Path, mask_file: Path, modality: str, cfg: PreprocessConfig) -> str:
    """Cache key of one entry (hex sha256); see the module docstring."""
    if not scan.is_file():
        raise VolumeError(scan, MISSING, "no such file")
    reads_mask = cfg.mask == "given" or (cfg.mask == "auto" and mask_file.is_file())
    parts = [
        sha256_file(scan),
        sha256_file(mask_file) if reads_mask and mask_file.is_file() else "no-mask",
        "CT" if is_ct(modality) else "MRI",
        config_hash(cfg),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def read_meta(cache_dir: Path, key: str) -> dict | None:
    """Metadata of a cached array, or None when it is not (completely) cached."""
    meta_path = cache_dir / VOLUMES_DIR / f"{key}.json"
    if not (meta_path.is_file() and (cache_dir / VOLUMES_DIR / f"{key}.npy").is_file()):
        return None
    return json.loads(meta_path.read_text())


def compute_entry(
    scan: Path, mask_file: Path, modality: str, cfg: PreprocessConfig, cache_dir: Path, key: str
) -> dict:
    """Run the deterministic stage, store array + metadata under ``key``; return the metadata."""
    prep = deterministic_stage(scan, cfg, modality, mask_file)
    largest = float(np.abs(prep.data).max())
    if largest > float(np.finfo(cfg.cache_dtype).max):  # scanner units (intensity: official)
        raise VolumeError(scan, CACHE_OVERFLOW, f"values beyond {cfg.cache_dtype}'s range "
                          f"(max |x| {largest:.4g}); set preprocess.cache_dtype=float32")
    array = prep.data.astype(cfg.cache_dtype)
    folder = cache_dir / VOLUMES_DIR
    with atomic_path(folder / f"{key}.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)  # a handle: np.save would append .npy to the temporary name
    meta = {
        "key": key,
        "file": f"{VOLUMES_DIR}/{key}.npy",
        "shape": json.dumps(list(array.shape)),
        "spacing": json.dumps([round(s, 6) for s in prep.spacing]),
        "depth_axis": prep.depth_axis,
        "modality": prep.modality,
        "mask_method": prep.mask_method,
        "bbox": json.dumps([list(b) for b in prep.bbox]),
        "intensity": cfg.intensity,
        "config_hash": config_hash(cfg),
    }
    # metadata last: its presence marks the entry complete (see read_meta)
    with atomic_path(folder / f"{key}.json") as tmp:
        tmp.write_text(json.dumps(meta))
    return meta


def text(value: object) -> str:
    """A table cell as text: None / NaN -> '', integral floats without '.0' (1.0 -> '1')."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an int column holding NaN was read as float
    return str(value)


def cache_entry(record: dict, root: Path, cache_dir: Path, cfg: PreprocessConfig) -> dict:
    """Cache one entry (a row of ``entries``); returns its index row, ``failed`` on VolumeError."""
    scan = root / text(record["path"])
    modality = text(record.get("modality")) or "MRI"
    row = {"scan_uid": text(record["scan_uid"]), "path": text(record["path"]), "modality": modality,
           "intensity": cfg.intensity}
    row.update(
        {
            col: record[col] if col == "age" else text(record[col])
            for col in CARRIED_COLUMNS
            if col in record
        }
    )
    try:
        mask_file = mask_file_for(record, root, scan)
        key = entry_key(scan, mask_file, modality, cfg)
        meta = read_meta(cache_dir, key)
        action = "skipped" if meta is not None else "computed"
        if meta is None:
            meta = compute_entry(scan, mask_file, modality, cfg, cache_dir, key)
    except VolumeError as exc:
        return {
            **row,
            "status": "failed",
            "action": "failed",
            "reason": exc.code,
            "detail": exc.detail,
        }
    return {**row, **meta, "status": "ok", "action": action, "reason": "", "detail": ""}


def build_cache(
    entries: pd.DataFrame,
    root: str | Path,
    cache_dir: str | Path,
    cfg: PreprocessConfig,
    progress: bool = True,
) -> pd.DataFrame:
    """Preprocess every entry into ``cache_dir`` (skipping those already cached).

    Args:
        entries: one row per scan with at least ``scan_uid, path`` (relative to ``root``) and
            optionally ``mask_path``, ``modality`` (``CT`` keeps HU) and the carried columns
            ``subject_id, session, dataset, label, age, sex``.
        root: folder the paths are relative to (a cohort root).
        cache_dir: output folder; created when missing.
    Returns:
        The index as :func:`read_index` returns it (also written to ``cache_dir/index.csv``):
        one row per entry with ``status`` (ok / failed), ``action`` (computed / skipped /
        failed), ``reason``, ``detail``, ``key``, ``file``, ``shape``, ``spacing``,
        ``depth_axis``, ``modality``, ``mask_method``, ``bbox``, ``intensity`` (the
        ``preprocess.intensity`` rule that built it), ``config_hash`` and the carried columns.
    """
    if cfg.cache_dtype not in CACHE_DTYPES:
        raise ValueError(
            f"preprocess.cache_dtype must be one of {CACHE_DTYPES}, got {cfg.cache_dtype!r}"
        )
    missing = {"scan_uid", "path"} - set(entries.columns)
    if missing:
        raise ValueError(f"entries lack the column(s) {sorted(missing)}")
    cache_dir = Path(cache_dir)
    (cache_dir / VOLUMES_DIR).mkdir(parents=True, exist_ok=True)
    records = entries.to_dict("records")
    rows = [
        cache_entry(record, Path(root), cache_dir, cfg)
        for record in tqdm(records, desc="preprocess", unit="scan", disable=not progress)
    ]
    carried = [col for col in CARRIED_COLUMNS if col in entries.columns]
    columns = ["scan_uid", "path", *carried, "modality", *STATUS_COLUMNS, *ENTRY_COLUMNS]
    index = pd.DataFrame(rows).reindex(columns=columns)
    index["depth_axis"] = index["depth_axis"].astype("Int64")  # 2, not 2.0; empty for None
    with atomic_path(cache_dir / INDEX_FILE) as tmp:
        index.to_csv(tmp, index=False)
    return read_index(cache_dir)  # the same types as every later reader sees


def read_index(cache_dir: str | Path) -> pd.DataFrame:
    """The index of a cache; ``shape``/``spacing`` as tuples, ``depth_axis`` as int or None."""
    path = Path(cache_dir) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no preprocessing cache here; run build_cache first")
    raw = (*TEXT_COLUMNS, "shape", "spacing", "bbox", "depth_axis")
    index = pd.read_csv(path, dtype={c: str for c in raw})
    for name, before in LATER_FIELDS.items():
        values = index[name] if name in index.columns else pd.Series("", index=index.index)
        index[name] = values.fillna("").replace("", before)
    present = [c for c in raw if c in index.columns]
    index[present] = index[present].fillna("")
    for col in ("shape", "spacing"):
        index[col] = pd.Series(
            [tuple(json.loads(v)) if v else None for v in index[col]],
            index=index.index,
            dtype=object,
        )
    axes = [int(v) if v else None for v in index["depth_axis"]]
    index["depth_axis"] = pd.Series(axes, index=index.index, dtype=object)  # keeps None, not NaN
    return index
