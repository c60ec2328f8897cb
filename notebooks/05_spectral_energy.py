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
# # 05 · Spectral energy of the data and of reconstructions
#
# SL-MAE adds to MAE a loss on the high-frequency spectrum of the reconstruction. The paper
# motivates it by two observations, both checked here:
#
# 1. datasets differ in how much of their spectral power sits at high frequencies (fine
#    structure, edges, lesions, noise), and
# 2. a plain MAE reconstructs blurry volumes: its reconstructions lose high-frequency power that
#    SL-MAE is meant to restore.
#
# Spectra are of the preprocessed model inputs (evaluation-mode items of the cache: fixed slice
# axis, centre crop, no augmentation), cropped to the brain (non-zero voxels), z-scored, 3-D FFT.
# Frequencies are normalised so that 1 is the Nyquist corner, and the high-frequency energy is
# the share of power at radial frequency r ≥ the SL-MAE cutoff (0.3 by default).
#
# The demo volumes are synthetic, resampled to a small grid and few per dataset: read the
# comparisons as a demonstration of the analysis, not as evidence.

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

from neurossl.analysis.features import exported_encoders
from neurossl.analysis.reconstruction import RECONSTRUCTING
from neurossl.analysis.spectral_energy import (compare_reconstructions, hf_energy_tables, split_scans,
                                               volume_spectra)
from neurossl.analysis.summaries import hf_ordering, reconstruction_hf_summary
from neurossl.config import load_config
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.evaluate.tables import write_tables
from neurossl.objectives import OBJECTIVES
from neurossl.paths import repo_path
from neurossl.plots.spectrum import (plot_hf_energy, plot_hf_energy_by_contrast, plot_radial_profiles,
                                     reconstruction_slice_figures, reconstruction_spectra_figure)
from neurossl.plots.style import save_figure, save_figures, set_theme

set_theme()
objectives = list(objectives or OBJECTIVES)
cfg = load_config(profile)
cutoff = cfg.objective.spectral_cutoff
data_dir, splits_dir = repo_path(data_dir), repo_path(splits_dir)
figures_dir, tables_dir = repo_path(figures_dir), repo_path(tables_dir)
cache_dir = data_dir / "cache"

# %% [markdown]
# ## The volumes
#
# Every cached scan of the split folder, pretraining and downstream partitions alike. CT volumes
# are windowed into three channels; the first (brain window) is used.

# %%
scans = split_scans(cache_dir, splits_dir)
items = CachedVolumeDataset(cache_dir, scans["scan_uid"].tolist(), train=False, preprocess=cfg.preprocess)
energy, profiles = volume_spectra(items, scans, cutoff)
scans.groupby(["dataset", "modality"]).size().unstack(fill_value=0)

# %% [markdown]
# ## Radially averaged power spectra
#
# Lines are the geometric mean over a dataset's volumes, bands ± one standard deviation of log
# power; the shaded band is the high-frequency range the SL-MAE loss compares.

# %%
fig = plot_radial_profiles(profiles, cutoff)
save_figure(fig, figures_dir / "fig05_radial_profiles")
fig

# %% [markdown]
# ## High-frequency energy per dataset
#
# Each point is one volume's share of power at r ≥ cutoff; boxes show quartiles, diamonds means.

# %%
fig = plot_hf_energy(energy, cutoff)
save_figure(fig, figures_dir / "fig05_hf_energy")
fig

# %%
hf_tables = hf_energy_tables(energy)
write_tables(hf_tables, tables_dir)
display(Markdown("\n\n".join(f"**{name}**\n\n{table.to_markdown()}" for name, table in hf_tables.items())))

# %% [markdown]
# ### Same contrast, different datasets
#
# Datasets mix contrasts in different proportions (and CT has its own texture), so a
# per-dataset mean mixes contrast with anatomy. The fair comparison holds
# the contrast fixed: T1w volumes of each dataset.

# %%
fig = plot_hf_energy_by_contrast(energy, cutoff)
save_figure(fig, figures_dir / "fig05_hf_energy_by_contrast")
display(fig)
display(Markdown(hf_ordering(energy)))

# %% [markdown]
# ## MAE vs SL-MAE reconstructions
#
# Both runs reconstruct the same volumes under the same random mask (75% of tubelets, the run's
# masking settings). The *mosaic* keeps the visible tubelets of the input and takes the masked
# ones from the decoder: the volume the SL-MAE spectral loss compares with its input (spectra
# over the target's brain box; the tubelet seams of a mosaic add some high-frequency power). The
# volumes are the first T1w scans (by id) of each downstream dataset, up to four each, chosen
# before looking at any reconstruction. A ratio below 1 at high frequency means the model smooths
# away fine detail. The demo runs are short, so both reconstructions are coarse.

# %%
runs = exported_encoders(data_dir, [name for name in RECONSTRUCTING if name in objectives])
comparison = compare_reconstructions(runs, items, scans, cutoff)  # None without both runs
spectra_figure = reconstruction_spectra_figure(comparison, cutoff)
save_figures(spectra_figure, figures_dir)
display(*spectra_figure.values())

# %% [markdown]
# High-frequency energy (share at r ≥ cutoff) of each target and of the two mosaics of it:

# %%
hf = comparison.hf if comparison is not None else None
write_tables({"tab05_reconstruction_hf_energy": hf}, tables_dir)
display(Markdown(reconstruction_hf_summary(hf)))

# %% [markdown]
# ## What the reconstructions look like
#
# The middle slice of one volume per dataset: the target, the masked tubelets (red), and the
# MAE and SL-MAE mosaics, all on the target's grey scale.

# %%
slices = reconstruction_slice_figures(comparison)
save_figures(slices, figures_dir)
display(*slices.values())
