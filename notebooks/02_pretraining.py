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
# # 02 · Self-supervised pretraining
#
# One encoder per objective, all the same 3-D ViT, pretrained on the pretraining partitions of
# the splits: the paper's MAE, SL-MAE (MAE + spectral loss), JEPA and VCR-JEPA (JEPA +
# variance-covariance regularisation), and the neighbouring systems 3D-Neuro-SimCLR, FM-CT's
# DINO + masked image modelling (on CT) and Neuro-JEPA's mixture of experts.
#
# A run whose `encoder.safetensors` exists is loaded, not retrained; an interrupted one resumes
# from its newest checkpoint (`neurossl.pipeline.pretrained`). This notebook shows that
# every run trained (its loss fell) and what the masked autoencoders reconstruct.

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
from neurossl.analysis.reconstruction import example_reconstructions
from neurossl.analysis.summaries import loss_verdict
from neurossl.config import load_config
from neurossl.evaluate.tables import write_table
from neurossl.objectives import OBJECTIVES
from neurossl.paths import repo_path
from neurossl.plots.slices import plot_reconstructions
from neurossl.plots.style import save_figure, save_figures, set_theme
from neurossl.plots.training import loss_summary, plot_collapse_monitor, plot_loss_curves
from neurossl.train.trainer import read_metrics

set_theme()
objectives = list(objectives or OBJECTIVES)
cfg = load_config(profile)
data, splits = repo_path(data_dir), repo_path(splits_dir)
figures, tables = repo_path(figures_dir), repo_path(tables_dir)

# %% [markdown]
# ## Pretraining runs
#
# Each run writes `pretrain/<objective>/` under the run folder: the resolved `config.yaml`,
# `metrics.jsonl` (one record per logged step), checkpoints and the exported encoder. Each
# objective's settings are the profile's plus its block of
# `neurossl/profiles/<profile>/objectives.yaml`, resolved by `load_config(profile, objective=NAME)`
# exactly as `make demo`, `neurossl demo` and `neurossl pretrain --objective NAME` resolve them.

# %%
runs = pipeline.pretrained_all(objectives, data, splits, profile, device, run_missing)
metrics = {objective: read_metrics(run) for objective, run in runs.items()}

# %% [markdown]
# ## Did every run learn?
#
# The first and last logged total loss of each run (means of the first and last three records)
# and whether it fell. Losses of different objectives are on different scales and are not
# comparable with each other; only their trend is.

# %%
losses = loss_summary(metrics)
write_table(losses.round(4), tables / "tab02_pretraining_losses", index=False)
display(Markdown(losses.to_markdown(index=False, floatfmt=".4g")))
print(loss_verdict(losses))

# %% [markdown]
# **Figure 2a.** Training loss against optimiser step, one panel per objective. The total loss
# is solid; objectives with several terms (e.g. SL-MAE's pixel and spectral terms, VCR-JEPA's
# prediction and variance-covariance terms) also show each term dashed. Panels whose values span
# more than a factor of ten use a logarithmic loss axis.

# %%
fig = plot_loss_curves(metrics)
save_figure(fig, figures / "fig02_loss_curves")
fig

# %% [markdown]
# **Figure 2b.** The collapse monitor of the teacher-student objectives: the spread (standard
# deviation) and effective rank of the embeddings over training. A collapsing encoder maps every
# volume to the same point, driving the spread to zero and the rank to one.

# %%
fig = plot_collapse_monitor(metrics)  # None without a teacher-student objective
save_figures({"fig02_collapse_monitor": fig}, figures)
fig

# %% [markdown]
# ## What the masked autoencoders reconstruct
#
# One T1-weighted volume of the cache, masked with the runs' own masking (75% of the
# tubelets, same random mask for both runs), encoded from the visible tubelets only and
# decoded back to voxels. The mosaic pastes the decoder's output into the masked tubelets.
# SL-MAE adds a loss on the high-frequency spectrum of the reconstruction.

# %%
results = example_reconstructions(runs, data / "cache", cfg.preprocess)  # {} without MAE / SL-MAE

# %% [markdown]
# **Figure 2c.** An axial slice through the centre of the volume, one row per run: the input,
# what the encoder sees (masked tubelets in blue), the decoder's output and the mosaic. All
# panels of a row share the input's intensity range (z-scored intensities).

# %%
fig = plot_reconstructions(results, plane="axial") if results else None
save_figures({"fig02_reconstructions": fig}, figures)
fig
