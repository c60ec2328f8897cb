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
objectives = ["mae", "slmae", "jepa", "vcr_jepa", "simclr", "dino_mim", "moe_jepa"]
run_missing = True        # run a stage whose outputs are missing; False: stop with a clear error

# %%
# %matplotlib inline
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from neurossl.analysis.features import pretraining_runs
from neurossl.analysis.reconstruction import reconstruct
from neurossl.analysis.spectrum import (crop_to_mask, high_frequency_energy, reconstruction_spectra,
                                        spectral_table)
from neurossl.config import load_config
from neurossl.data.cache import read_index
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.splits.files import read_splits
from neurossl.evaluate.tables import write_table
from neurossl.paths import repo_path
from neurossl.plots.evaluation import plot_reconstruction_slices
from neurossl.plots.spectrum import plot_hf_energy, plot_radial_profiles, plot_reconstruction_spectra
from neurossl.plots.style import save_figure, set_theme

set_theme()
data_dir, splits_dir = repo_path(data_dir), repo_path(splits_dir)
figures_dir, tables_dir = repo_path(figures_dir), repo_path(tables_dir)
cache_dir = data_dir / "cache"
cfg = load_config(profile)
cutoff = cfg.objective.spectral_cutoff

# %% [markdown]
# ## The volumes
#
# Every cached scan of the split folder, pretraining and downstream partitions alike. CT volumes
# are windowed into three channels; the first (brain window) is used.

# %%
splits = read_splits(splits_dir)
index = read_index(cache_dir)
scans = index[(index["status"] == "ok") & index["scan_uid"].isin(splits["scan_uid"])]
scans = scans[["scan_uid", "subject_id", "dataset", "modality", "label"]].astype(str)
scans = scans.sort_values(["dataset", "scan_uid"]).reset_index(drop=True)
items = CachedVolumeDataset(cache_dir, scans["scan_uid"].tolist(), train=False, preprocess=cfg.preprocess)


def brain(volume: np.ndarray) -> np.ndarray:
    """``(D, H, W)`` cropped to the bounding box of its non-zero (brain) voxels."""
    return crop_to_mask(volume, volume != 0)


def volumes():
    for item in items:
        yield item["scan_uid"], item["dataset"], brain(item["image"][0].numpy())


energy, profiles = spectral_table(volumes(), cutoff=cutoff)
energy = energy.merge(scans.rename(columns={"scan_uid": "id"})[["id", "modality"]], on="id")
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
def summary(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    stats = frame.groupby(by)["hf_energy"].agg(n="size", mean="mean", median="median", std="std")
    return stats.round(4)


by_dataset = summary(energy, ["dataset"])
by_contrast = summary(energy, ["dataset", "modality"])
by_contrast = by_contrast.reset_index(level="modality")
for name, table in {"tab05_hf_energy": by_dataset, "tab05_hf_energy_by_contrast": by_contrast}.items():
    write_table(table, tables_dir / name)
    display(Markdown(f"**{name}**\n\n" + table.to_markdown()))

# %% [markdown]
# ### Same contrast, different datasets
#
# Datasets mix contrasts in different proportions (and CT has its own texture), so a
# per-dataset mean mixes contrast with anatomy. The fair comparison holds
# the contrast fixed: T1w volumes of each dataset.

# %%
fig = plot_hf_energy(energy.assign(dataset=energy["dataset"] + " " + energy["modality"]), cutoff)
fig.axes[0].set_title("High-frequency spectral energy per dataset and contrast")
fig.axes[0].tick_params(axis="x", labelrotation=30)
save_figure(fig, figures_dir / "fig05_hf_energy_by_contrast")
display(fig)

t1 = energy[energy["modality"] == "T1w"].groupby("dataset")["hf_energy"].agg(["mean", "median", "size"])
if {"glioma", "autism"} <= set(t1.index):
    g, a = t1.loc["glioma"], t1.loc["autism"]
    holds = g["mean"] > a["mean"] and g["median"] > a["median"]
    display(Markdown(
        f"On T1w volumes, glioma has mean / median high-frequency energy {g['mean']:.4f} / "
        f"{g['median']:.4f} (n={int(g['size'])}) against autism's {a['mean']:.4f} / "
        f"{a['median']:.4f} (n={int(a['size'])}): the paper's ordering glioma > autism "
        + ("**holds** for the same contrast here." if holds else "**does not hold** here.")
        + " With so few volumes per group this is an observation, not a test."))

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
pair = [name for name in ("mae", "slmae") if name in objectives]
if len(pair) < 2:
    display(Markdown("Both `mae` and `slmae` must be in `objectives` for this section; skipped."))
else:
    runs = pretraining_runs(profile, pair, data_dir, splits_dir, run_missing, device)
    downstream = set(splits.loc[splits["partition"] != "pretrain", "scan_uid"])
    chosen = (scans[scans["scan_uid"].isin(downstream) & (scans["modality"] == "T1w")]
              .groupby("dataset").head(4))
    spectra, hf_rows, examples = [], [], {}
    for uid, dataset in zip(chosen["scan_uid"], chosen["dataset"]):
        image = items[int(scans.index[scans["scan_uid"] == uid][0])]["image"]
        out = {name: reconstruct(runs[name], image, seed=0) for name in pair}
        target, mask = out["mae"]["input"], out["mae"]["mask"]
        mosaics = {"MAE": out["mae"]["mosaic"], "SL-MAE": out["slmae"]["mosaic"]}
        crop = {name: crop_to_mask(v, target != 0) for name, v in mosaics.items()}  # brain box
        spectra.append(reconstruction_spectra(brain(target), crop).assign(id=uid))
        hf_rows.append({"id": uid, "dataset": dataset,
                        **{name: high_frequency_energy(v, cutoff)
                           for name, v in {"target": brain(target), **crop}.items()}})
        examples.setdefault(dataset, (uid, target, mask, mosaics))
    spectra = pd.concat(spectra, ignore_index=True)
    mean_spectra = (spectra.assign(log_power=np.log10(spectra["power"]), log_ratio=np.log10(spectra["ratio"]))
                    .groupby(["model", "frequency"], sort=False)[["log_power", "log_ratio"]].mean()
                    .pipe(lambda d: 10 ** d).rename(columns={"log_power": "power", "log_ratio": "ratio"})
                    .reset_index())
    fig = plot_reconstruction_spectra(mean_spectra, cutoff)
    fig.suptitle(f"Spectra of MAE and SL-MAE mosaics vs their targets "
                 f"(geometric mean over {len(chosen)} T1w volumes)")
    save_figure(fig, figures_dir / "fig05_reconstruction_spectra")
    display(fig)

# %% [markdown]
# High-frequency energy (share at r ≥ cutoff) of each target and of the two mosaics of it:

# %%
if len(pair) == 2:
    hf = pd.DataFrame(hf_rows).set_index("dataset").round(4)
    write_table(hf, tables_dir / "tab05_reconstruction_hf_energy")
    display(Markdown(hf.to_markdown()))
    closer = (hf["SL-MAE"] - hf["target"]).abs() < (hf["MAE"] - hf["target"]).abs()
    display(Markdown(f"SL-MAE's mosaic is closer to the target's high-frequency energy than MAE's "
                     f"on {int(closer.sum())} of {len(hf)} volumes."))

# %% [markdown]
# ## What the reconstructions look like
#
# The middle slice of one volume per dataset: the target, the masked tubelets (red), and the
# MAE and SL-MAE mosaics, all on the target's grey scale.

# %%
if len(pair) == 2:
    for dataset, (uid, target, mask, mosaics) in examples.items():
        fig = plot_reconstruction_slices(target, mask, mosaics, title=f"{dataset}: {uid}")
        save_figure(fig, figures_dir / f"fig05_reconstruction_{dataset}")
        display(fig)
