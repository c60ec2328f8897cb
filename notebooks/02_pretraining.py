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
# from its newest checkpoint (`neurossl.pipeline.pretrained`). This notebook scores every run
# against the trivial predictor of its kind on held-out volumes (a falling loss is no evidence:
# it also falls to a trivial solution), and shows what the masked autoencoders reconstruct.

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
from neurossl.analysis.heldout import learning_tables
from neurossl.analysis.summaries import learning_verdict
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
# Each run is scored on held-out volumes (the downstream validation scans of its own input
# modalities, which pretraining never reads) beside the trivial predictor of its kind: MAE and
# SL-MAE's masked-voxel Pearson r beside the per-position mean (a template), the JEPA family's
# prediction error beside predicting each position's mean teacher target, SimCLR's retrieval of
# the positive view beside chance (within batches of its training size, and among all the
# held-out views; passed when the interval over volumes lies above chance), DINO-MIM's terms
# beside the uniform ln K, and every encoder's token-level effective rank with the mean token
# removed beside 2 (a collapsed encoder's tokens vary along one direction or none). `passed`
# says whether the model beats its baseline.

# %%
checks, reconstruction = learning_tables(runs, data / "cache", splits)
write_table(checks.round(4), tables / "tab02_learning_checks", index=False)
write_table(reconstruction.round(4), tables / "tab02_reconstruction_quality", index=False)
display(Markdown(checks.to_markdown(index=False, floatfmt=".4g")))
display(Markdown(learning_verdict(checks)))

# %% [markdown]
# The reconstructions' quality on the same volumes (masked voxels only): Pearson r and PSNR.

# %%
display(Markdown(reconstruction.to_markdown(index=False, floatfmt=".4g")))

# %% [markdown]
# ## The training logs
#
# The first and last logged total loss of each run (means of the first and last three records).
# Losses of different objectives are on different scales and are not comparable with each other.

# %%
losses = loss_summary(metrics)
write_table(losses.round(4), tables / "tab02_pretraining_losses", index=False)
display(Markdown(losses.to_markdown(index=False, floatfmt=".4g")))

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
# **Figure 2b.** The collapse monitor of every run over training: the spread (standard
# deviation) of the volumes' pooled embeddings and the effective rank of the encoder's patch
# tokens after removing their mean token. A collapsing encoder maps every token to the same
# point (centred rank towards zero); similar brains only bring the pooled spread down, and an
# offset every token shares only lowers the uncentred rank, which is why the centred token rank
# is the test.

# %%
fig = plot_collapse_monitor(metrics)  # None when no run logged the monitor
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
