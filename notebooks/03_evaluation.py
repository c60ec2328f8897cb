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
# # 03 · Downstream evaluation
#
# Every pretrained encoder is judged on the downstream tasks of the split folder (Alzheimer's
# NC vs AD and NC vs MCI with cross-validation, glioma grade, autism), in two modes: a **frozen**
# encoder under an attentive probe, and **fine-tuning** of the whole network. Two baselines run
# under the same protocol: the **random twin** (the same ViT with random weights, the paper's key
# control) and **ResNet50-3D** trained from scratch. A few-shot experiment repeats the frozen
# probe with a few labelled volumes per class (`evaluate.fewshot_shots` of the profile).
#
# This notebook runs the evaluation when its outputs are missing (`run_missing`), then renders
# the paper's tables with 95% bootstrap confidence intervals over test subjects, ROC curves,
# few-shot curves and a paired comparison of each encoder with its random twin.
#
# **Read the numbers with care.** On the demo cohort the test sets hold tens of scans, so
# differences of several AUC points are within noise: the confidence intervals below say how
# much. Nothing here is tuned on test data: heads early-stop on the validation partition and
# seeds are fixed in the profile before any result is seen.

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
from neurossl.analysis.summaries import paired_verdict
from neurossl.config import load_config
from neurossl.evaluate.report import (paired_table, read_predictions, report_markdown, write_per_contrast,
                                      write_report)
from neurossl.evaluate.tables import read_results
from neurossl.objectives import OBJECTIVES
from neurossl.paths import repo_path
from neurossl.plots.evaluation import plot_fewshot, plot_probe_comparison, roc_figures
from neurossl.plots.style import save_figure, save_figures, set_theme

set_theme()
objectives = list(objectives or OBJECTIVES)
cfg = load_config(profile)
data_dir, splits_dir = repo_path(data_dir), repo_path(splits_dir)
figures_dir, tables_dir = repo_path(figures_dir), repo_path(tables_dir)

# %% [markdown]
# ## Run or load the evaluation
#
# The pretraining runs come from notebook 02. The evaluation stage (`neurossl.pipeline.evaluation`,
# the same as `make demo`'s) writes `eval/results.csv` and one prediction file per (encoder, task,
# mode): frozen probes of every encoder, its random twin and ResNet50-3D, few-shot curves, and
# fine-tuning of a few encoders (the CPU budget). A complete `eval/` folder is loaded, not rerun;
# delete it to evaluate again.

# %%
eval_dir = pipeline.evaluation(data_dir, splits_dir, profile, objectives, device, run_missing=run_missing)
results = read_results(eval_dir / "results.csv")
predictions = read_predictions(eval_dir / "predictions")
results.groupby(["encoder", "mode"], sort=False)["task"].nunique().unstack().fillna(0).astype(int)

# %% [markdown]
# The table above counts the tasks each encoder was evaluated on per mode (`fewshot_<k>`: `k`
# labelled volumes per class). Only SSL encoders are probed frozen; ResNet50-3D has no
# pretrained weights to freeze, so it appears under fine-tuning and few-shot only.
#
# ## Paper tables
#
# `tab03_downstream_<metric>`: mean ± s.d. over folds (and seeds) of each metric, frozen and
# fine-tuned blocks side by side. `tab03_confidence_intervals`: the point estimate on the
# pooled out-of-fold predictions with a 95% bootstrap interval that resamples test *subjects*.
# `tab03_paired_vs_random`: each encoder minus the random twin on the same test scans, with a
# paired bootstrap interval and p-values (paired bootstrap; DeLong for binary tasks).

# %%
paired = paired_table(predictions[~predictions["mode"].str.startswith("fewshot")],
                      n_boot=cfg.evaluate.bootstrap)
written = write_report(eval_dir, tables_dir, n_boot=cfg.evaluate.bootstrap, prefix="tab03_", paired=paired)
display(Markdown(report_markdown(written)))

# %% [markdown]
# ## ROC curves
#
# One curve per encoder on the out-of-fold test predictions of each task, pooled over folds (and
# seeds), so every downstream subject of a cross-validated task appears once per seed. For the
# three-class glioma task the curve is the mean of the one-vs-rest curves and the AUC the mean of
# the one-vs-rest AUCs (the `roc_auc` of the tables). The dashed grey line is the random twin,
# the dotted black line ResNet50-3D.

# %%
roc = roc_figures(predictions)  # None for a mode without predictions
save_figures(roc, figures_dir)
display(*[fig for fig in roc.values() if fig is not None])

# %% [markdown]
# ## Few-shot learning
#
# Frozen SSL encoders with a probe trained on `k` labelled volumes per class (drawn from the
# first fold's training partition, several draws), against ResNet50-3D trained from scratch on
# the same volumes. Points are the mean over draws, bars one standard deviation. The paper's
# claim is that pretrained features help most when labels are scarce; on the demo cohort the
# test sets are small and the spread across draws is large.

# %%
fig = plot_fewshot(results, "roc_auc")
save_figure(fig, figures_dir / "fig03_fewshot")
fig

# %% [markdown]
# ## Does pretraining beat its random twin?
#
# The decisive control: the same architecture and head with random weights, evaluated on the
# same test scans. Each point is ROC-AUC(SSL) − ROC-AUC(random twin); bars are 95% paired
# bootstrap intervals (those of `tab03_paired_vs_random`). An interval that crosses zero means
# the data cannot tell the two apart. The interval resamples test subjects only: with a few
# hundred training scans the probe's own initial weights move a cell by about as much
# (`benchmarks/results/probe_seeds.md`), so with one seed per cell (`evaluate.seeds`) each point
# is a single draw.

# %%
fig = plot_probe_comparison(paired)
save_figure(fig, figures_dir / "fig03_paired_vs_random")
fig

# %%
display(Markdown(paired_verdict(paired, objectives)))

# %% [markdown]
# ## One contrast at a time (Neuro-JEPA)
#
# MoE-JEPA routes each volume's tokens by its contrast. The profile's `evaluate.contrast_tasks`
# probe it frozen on each contrast of the same subjects (the demo's glioma subjects all have T1w,
# T2w and FLAIR), against a random twin of its own architecture, modality embedding included.
# The same rows are in `tab03_paired_vs_random`, under the task `<task>:<contrast>`.

# %%
write_per_contrast(paired, tables_dir)

# %% [markdown]
# With the small demo test sets most intervals are wide; what the paper measures with thousands
# of scans is only hinted at here. The same notebook with `profile="paper"` and the real cohort
# produces the paper's tables with their intervals.
