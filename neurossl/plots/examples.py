"""Example scans raw and preprocessed, side by side (notebook 01's Figure 1d).

Three kinds of scan are shown when the cohort has them: a T1-weighted MRI, a FLAIR with a
glioma (its planes through the lesion's brightest region) and a head CT. Each row pairs the
NIfTI file as stored, reoriented to RAS at its true voxel size, with the model input from the
cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from neurossl.config import PreprocessConfig
from neurossl.data.catalog import read_table
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.data.io import load_mask, load_volume
from neurossl.data.preprocess import slice_axis
from neurossl.plots.slices import SliceView, as_ras, bright_focus, model_space_focus

# The raw CT is shown in a brain window (HU); its model input is the first window channel.
CT_WINDOW = (-20.0, 100.0)


def example_entries(index: pd.DataFrame) -> dict[str, pd.Series]:
    """The first cached scan of each example kind present: name -> its cache index row (as text,
    the way ``index.csv`` stores it)."""
    ok = index[index["status"] == "ok"]
    wanted = {"T1w": ok["modality"] == "T1w",
              "FLAIR with glioma": (ok["modality"] == "FLAIR") & (ok["dataset"] == "glioma"),
              "CT": ok["modality"] == "CT"}
    return {name: ok[selected].iloc[0] for name, selected in wanted.items() if selected.any()}


def depth_axis_of(entry: pd.Series, preprocess: PreprocessConfig) -> int:
    """The axis the preprocessing sliced ``entry`` along (its model input's depth axis)."""
    stored = None if entry["depth_axis"] == "" else int(entry["depth_axis"])
    return slice_axis(stored, preprocess, None, json.loads(entry["shape"]))


def example_row(name: str, entry: pd.Series, scans: pd.DataFrame, cohort_dir: Path, cache_dir: Path,
                preprocess: PreprocessConfig) -> tuple[list[SliceView], str]:
    """The raw and preprocessed views of one scan and its row label (kind, subject, spacing)."""
    raw = load_volume(cohort_dir / entry["path"])
    item = CachedVolumeDataset(cache_dir, [entry["scan_uid"]], train=False, preprocess=preprocess)[0]
    depth_axis = depth_axis_of(entry, preprocess)
    raw_focus = model_focus = None
    if "glioma" in name:  # planes through the lesion: the brightest spot inside the brain mask
        mask_path = scans.set_index("scan_uid").loc[entry["scan_uid"], "mask_path"]
        raw_focus = bright_focus(raw.data, load_mask(cohort_dir / mask_path, raw) if mask_path else None)
        model_focus = model_space_focus(raw_focus, json.loads(entry["bbox"]), depth_axis,
                                        preprocess.depth, preprocess.crop_size)
    views = [SliceView(raw.data, raw.spacing, window=CT_WINDOW if name == "CT" else None, focus=raw_focus),
             SliceView(as_ras(item["image"], depth_axis), background=0.0, focus=model_focus)]
    spacing = "×".join(f"{s:.1f}" for s in raw.spacing)
    return views, f"{name}\n{entry['scan_uid'].split('_')[0]}\n{spacing} mm"


def example_views(cohort_dir: str | Path, cache_dir: str | Path, scans: pd.DataFrame,
                  preprocess: PreprocessConfig) -> tuple[list[list[SliceView]], list[str]]:
    """Rows and labels for :func:`neurossl.plots.slices.plot_orthogonal_views`."""
    cohort_dir, cache_dir = Path(cohort_dir), Path(cache_dir)
    pairs = [example_row(name, entry, scans, cohort_dir, cache_dir, preprocess)
             for name, entry in example_entries(read_table(cache_dir / "index.csv", sep=",")).items()]
    return [views for views, _ in pairs], [label for _, label in pairs]
