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
objectives = None         # None: every registered objective (neurossl.objectives.OBJECTIVES)
run_missing = True        # run a stage whose outputs are missing; False: stop with a clear error

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from neurossl import pipeline
from neurossl.config import load_config
from neurossl.data.catalog import read_scans, read_table
from neurossl.data.curate import summarize_report
from neurossl.evaluate.tables import write_table
from neurossl.paths import repo_path
from neurossl.plots.cohort import (acquisition_summary, acquisition_table, curation_counts,
                                   plot_acquisition, plot_cohort, plot_curation)
from neurossl.plots.examples import example_views
from neurossl.plots.slices import plot_orthogonal_views
from neurossl.plots.style import save_figure, set_theme
from neurossl.splits.audit import assert_no_leakage, audit_splits, format_audit
from neurossl.summary import cohort_table

set_theme()
cfg = load_config(profile)
data, splits = repo_path(data_dir), repo_path(splits_dir)
figures, tables = repo_path(figures_dir), repo_path(tables_dir)

# %% [markdown]
# ## The data stages
#
# Each stage writes a folder the next one reads: cohort, curation report, preprocessing cache,
# splits (`neurossl.pipeline.data`; `make demo` and `neurossl demo` call the same functions). A
# finished stage is skipped; a missing one is run when `run_missing` is set, else it stops with
# an error naming what is missing. The synthetic demo cohort is never generated for the `paper`
# profile: bring your own data.

# %%
run = pipeline.data(data, splits, profile, run_missing)
run

# %% [markdown]
# ## The cohort
#
# Subjects and scans per dataset and label. The demo datasets stand in for the paper's: the
# `cognition` set for ADNI / NACC (NC, MCI, AD), `glioma` for UCSF-PDGM (grades 2–4), `autism`
# for ABIDE (ASD vs TD), an unlabelled `pool` that only feeds pretraining, and `headct` (CT) for
# the FM-CT objective.

# %%
scans = read_scans(run.cohort)
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
report = read_table(run.curation, sep=",")
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
geometry = acquisition_summary(acquisition)
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
rows, labels = example_views(run.cohort, run.cache, scans, cfg.preprocess)

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
audit = audit_splits(run.splits)
print(format_audit(audit))
write_table(audit.totals, tables / "tab01_split_totals", index=False)
assert_no_leakage(audit)  # a leak stops the notebook, naming the subjects and files
