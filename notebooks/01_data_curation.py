# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Data curation
#
# What goes into pretraining and evaluation: the cohort, the curation filters of the paper, the
# acquisition geometry the preprocessing has to cope with, what a scan looks like before and after
# preprocessing, and the subject-level splits with their leakage audit.
#
# The notebook is a thin layer over the package; `neurossl paper` runs it with papermill, and the
# parameters below can be overridden there (`--profile`, `--data`, `--splits`, `--out`).

# %% tags=["parameters"]
# Relative paths are taken from the repository root, wherever the kernel starts.
profile = "demo"          # smoke | demo | paper
data_dir = "runs/demo"    # cohort/, curation.csv, cache/, pretrain/<objective>/, eval/
splits_dir = "splits/demo"
figures_dir = "paper/figures"
tables_dir = "paper/tables"
device = "auto"
objectives = ["mae", "slmae", "jepa", "vcr_jepa", "simclr", "dino_mim", "moe_jepa"]
run_missing = True        # run a stage whose outputs are missing; False: stop with a clear error

# %%
# %matplotlib inline
import json

from IPython.display import Markdown, display

from neurossl.cli import main as neurossl_cli
from neurossl.config import load_config
from neurossl.data.catalog import read_scans, read_table
from neurossl.data.curate import summarize_report
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.data.io import load_mask, load_volume
from neurossl.data.preprocess import slice_axis
from neurossl.splits.audit import audit_splits, format_audit
from neurossl.evaluate.tables import write_table
from neurossl.paths import repo_path
from neurossl.plots.cohort import (acquisition_table, curation_counts, plot_acquisition,
                                   plot_cohort, plot_curation)
from neurossl.plots.slices import (SliceView, as_ras, bright_focus, model_space_focus,
                                   plot_orthogonal_views)
from neurossl.plots.style import save_figure, set_theme
from neurossl.summary import cohort_table

set_theme()
cfg = load_config(profile)
data, splits = repo_path(data_dir), repo_path(splits_dir)
figures, tables = repo_path(figures_dir), repo_path(tables_dir)
tables.mkdir(parents=True, exist_ok=True)


# %% [markdown]
# ## The data stages
#
# Each stage writes a folder the next one reads (`make demo` runs the same commands). When a
# stage's output is missing and `run_missing` is set, it is run here through the command line
# (the synthetic demo cohort is never generated for the `paper` profile: bring your own data).

# %%
cohort, report_path, cache = data / "cohort", data / "curation.csv", data / "cache"
stages = [
    (cohort / "scans.tsv", ["demo-data", "--out", str(cohort), "--profile", profile]),
    (report_path, ["curate", str(cohort), "--report", str(report_path), "--profile", profile]),
    (cache / "index.csv", ["preprocess", str(cohort), "--curation", str(report_path),
                           "--cache", str(cache), "--profile", profile]),
    (splits / "splits.json", ["splits", "make", "--scans", str(cohort / "scans.tsv"),
                                "--out", str(splits), "--profile", profile]),
]
for output, argv in stages:
    done = output.exists() or (argv[0] == "splits" and any(splits.glob("*_ids.csv")))
    if done:
        print(f"{argv[0]:<11} done: {output}")
    elif argv[0] == "demo-data" and profile == "paper":
        raise FileNotFoundError(f"{output} is missing: with the paper profile put your own data "
                                f"(NIfTI tree + scans.tsv) in {cohort} (a symbolic link is fine)")
    elif run_missing:
        print(f"{argv[0]:<11} running: neurossl {' '.join(argv)}")
        if neurossl_cli([*argv, "--quiet"] if argv[0] in {"demo-data", "curate", "preprocess"}
                        else argv) != 0:
            raise RuntimeError(f"stage {argv[0]} failed")
    else:
        raise FileNotFoundError(f"{output} is missing and run_missing=False; run "
                                f"`neurossl {' '.join(argv)}` (or `make demo`) first")

# %% [markdown]
# ## The cohort
#
# Subjects and scans per dataset and label. The demo datasets stand in for the paper's: the
# `cognition` set for ADNI / NACC (NC, MCI, AD), `glioma` for UCSF-PDGM (grades 2–4), `autism`
# for ABIDE (ASD vs TD), an unlabelled `pool` that only feeds pretraining, and `headct` (CT) for
# the FM-CT objective.

# %%
scans = read_scans(cohort)
cohort_counts = cohort_table(scans)
write_table(cohort_counts, tables / "tab01_cohort", index=False)
display(Markdown(cohort_counts.to_markdown(index=False)))

# %% [markdown]
# **Figure 1a.** Left: scans per dataset, stacked by MRI contrast (or CT). Right: distinct
# subjects per dataset, stacked by their diagnostic label.

# %%
fig = plot_cohort(scans)
save_figure(fig, figures / "fig01_cohort")
fig

# %% [markdown]
# ## Curation
#
# The paper's filters: a file larger than a minimum size, a field of view above 50 mm on every
# axis, a voxel spacing of at most 6.5 mm, a readable header and finite voxels. Every file gets
# one row in `curation.csv`, kept or rejected with a reason.

# %%
report = read_table(report_path, sep=",")
print(summarize_report(report))
curation = curation_counts(report)
write_table(curation, tables / "tab01_curation_summary", index=False)

# %% [markdown]
# **Figure 1b.** Files kept (green) and rejected by each filter (red).

# %%
fig = plot_curation(report)
save_figure(fig, figures / "fig01_curation")
fig

# %% [markdown]
# ## Acquisition geometry
#
# Scans come at different resolutions and in different stored orientations. Thick-slice scans
# (coarsest / finest spacing at or above the preprocessing's isotropy ratio) are sliced along
# their through-plane axis; every scan is reoriented to RAS before anything else.

# %%
acquisition = acquisition_table(scans, cfg.preprocess.isotropy_ratio)
geometry = (acquisition.groupby(["dataset", "acquisition"])
            .agg(scans=("scan_uid", "count"),
                 finest_mm=("min_spacing_mm", "median"),
                 coarsest_mm=("max_spacing_mm", "median"),
                 max_anisotropy=("anisotropy", "max"))
            .round(2).reset_index())
write_table(geometry, tables / "tab01_acquisition", index=False)
display(Markdown(geometry.to_markdown(index=False)))

# %% [markdown]
# **Figure 1c.** Left: finest against coarsest voxel spacing of each scan (slightly jittered);
# points above the dashed line are thick-slice acquisitions. Right: how many scans of each
# dataset are stored in each voxel-axis orientation (e.g. `PSR`: the first voxel axis runs
# posterior, the second superior, the third right).

# %%
fig = plot_acquisition(acquisition, cfg.preprocess.isotropy_ratio)
save_figure(fig, figures / "fig01_acquisition")
fig

# %% [markdown]
# ## Example scans, raw and preprocessed
#
# Three scans: a T1-weighted MRI, a FLAIR with a glioma (planes through its brightest region) and
# a head CT. On the left, the NIfTI file as stored, reoriented to RAS with
# `nibabel.as_closest_canonical` and drawn at its true voxel size (scale bar 50 mm); on the right,
# the model input from the cache: brain-cropped, intensity-normalised (CT: the brain window),
# resampled to a cube of `depth × crop × crop` voxels; outside the brain is black.

# %%
index = read_table(cache / "index.csv", sep=",")
ok = index[index["status"] == "ok"]
wanted = [("T1w", ok["modality"] == "T1w"),
          ("FLAIR with glioma", (ok["modality"] == "FLAIR") & (ok["dataset"] == "glioma")),
          ("CT", ok["modality"] == "CT")]
rows, labels = [], []
for name, selected in wanted:
    if not selected.any():
        continue
    entry = ok[selected].iloc[0]
    raw = load_volume(cohort / entry["path"])
    item = CachedVolumeDataset(cache, [entry["scan_uid"]], train=False, preprocess=cfg.preprocess)[0]
    depth_axis = slice_axis(None if entry["depth_axis"] == "" else int(entry["depth_axis"]),
                            cfg.preprocess, None, json.loads(entry["shape"]))
    model_input = as_ras(item["image"], depth_axis)
    is_lesion = "glioma" in name
    raw_focus = model_focus = None
    if is_lesion:  # planes through the lesion: the brightest spot inside the brain mask
        mask_path = scans.set_index("scan_uid").loc[entry["scan_uid"], "mask_path"]
        raw_focus = bright_focus(raw.data, load_mask(cohort / mask_path, raw) if mask_path else None)
        model_focus = model_space_focus(raw_focus, json.loads(entry["bbox"]), depth_axis,
                                        cfg.preprocess.depth, cfg.preprocess.crop_size)
    rows.append([
        SliceView(raw.data, raw.spacing, window=(-20.0, 100.0) if name == "CT" else None,
                  focus=raw_focus),
        SliceView(model_input, background=0.0, focus=model_focus),
    ])
    spacing = "×".join(f"{s:.1f}" for s in raw.spacing)
    labels.append(f"{name}\n{entry['scan_uid'].split('_')[0]}\n{spacing} mm")

# %% [markdown]
# **Figure 1d.** Axial, coronal and sagittal planes of each scan: raw (left three columns, in mm)
# and as the model sees it (right three columns, in voxels of the resampled cube). The CT is shown
# in a -20 to 100 HU window raw and in the first (brain) window channel preprocessed.

# %%
fig = plot_orthogonal_views(rows, labels, ["raw (RAS)", "preprocessed"],
                            "Example scans before and after preprocessing")
save_figure(fig, figures / "fig01_example_slices")
fig

# %% [markdown]
# ## Splits and the leakage audit
#
# Splits are at the subject level: no subject is in two partitions of one task and fold, and no
# subject of a dataset is both in its pretraining file and in any of its downstream files. The
# audit counts distinct subjects and scans per file (slashes separate folds) and fails on a leak.

# %%
audit = audit_splits(splits)
print(format_audit(audit))
write_table(audit.totals, tables / "tab01_split_totals", index=False)
if audit.leaks:
    raise RuntimeError(f"{len(audit.leaks)} subject leak(s) in {splits}; see the audit above")
