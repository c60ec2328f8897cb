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
# A run whose `encoder.safetensors` exists is loaded, not retrained. This notebook shows that
# every run trained (its loss fell) and what the masked autoencoders reconstruct.

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
import time

from IPython.display import Markdown, display

from neurossl.analysis.reconstruction import RECONSTRUCTING, reconstruct
from neurossl.config import load_config
from neurossl.data.catalog import read_table
from neurossl.data.dataset import CachedVolumeDataset
from neurossl.data.preprocess import slice_axis
from neurossl.evaluate.tables import write_table
from neurossl.paths import repo_path
from neurossl.plots.slices import plot_reconstructions
from neurossl.plots.style import save_figure, set_theme
from neurossl.plots.training import loss_summary, plot_collapse_monitor, plot_loss_curves
from neurossl.train.pretrain import pretrain
from neurossl.train.trainer import read_metrics

set_theme()
data, splits = repo_path(data_dir), repo_path(splits_dir)
cache = data / "cache"
figures, tables = repo_path(figures_dir), repo_path(tables_dir)
tables.mkdir(parents=True, exist_ok=True)


def objective_config(objective: str):
    """The profile's settings for one objective, as `neurossl pretrain` resolves them."""
    return load_config(profile, objective=objective, overrides=[f"train.device={device}"])


# %% [markdown]
# ## Pretraining runs
#
# Each run writes `pretrain/<objective>/` under the run folder: the resolved `config.yaml`,
# `metrics.jsonl` (one record per logged step), checkpoints and the exported encoder. The same
# run from the command line is `neurossl pretrain --objective NAME --cache CACHE --splits SPLITS`.

# %%
run_dirs = {}
for objective in objectives:
    run_dir = data / "pretrain" / objective
    encoder = run_dir / "encoder.safetensors"
    if encoder.is_file():
        print(f"{objective:<9} loaded  {encoder}")
    elif run_missing:
        start = time.perf_counter()
        pretrain(objective_config(objective), cache, splits, run_dir)
        print(f"{objective:<9} trained {encoder} in {time.perf_counter() - start:.0f} s")
    else:
        raise FileNotFoundError(
            f"{encoder} is missing and run_missing=False; run `neurossl pretrain --objective "
            f"{objective} --cache {cache} --splits {splits} --run-dir {run_dir} --profile {profile}`")
    run_dirs[objective] = run_dir
metrics = {objective: read_metrics(run_dir) for objective, run_dir in run_dirs.items()}

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
not_learning = losses.loc[~losses["loss_fell"], "objective"].tolist()
print("loss fell for every objective" if not not_learning
      else f"loss did NOT fall for: {', '.join(not_learning)} (short runs are noisy: see below)")

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
fig = plot_collapse_monitor(metrics)
if fig is not None:
    save_figure(fig, figures / "fig02_collapse_monitor")
fig

# %% [markdown]
# ## What the masked autoencoders reconstruct
#
# One T1-weighted volume of the cache, masked with the runs' own masking (75% of the
# tubelets, same random mask for both runs), encoded from the visible tubelets only and
# decoded back to voxels. The mosaic pastes the decoder's output into the masked tubelets.
# SL-MAE adds a loss on the high-frequency spectrum of the reconstruction.

# %%
reconstructing = [name for name in objectives if name in RECONSTRUCTING]
if reconstructing:
    cfg = load_config(profile)
    index = read_table(cache / "index.csv", sep=",")
    entry = index[(index["status"] == "ok") & (index["modality"] == "T1w")].iloc[0]
    image = CachedVolumeDataset(cache, [entry["scan_uid"]], train=False,
                                preprocess=cfg.preprocess)[0]["image"]
    depth_axis = slice_axis(None if entry["depth_axis"] == "" else int(entry["depth_axis"]),
                            cfg.preprocess, None, json.loads(entry["shape"]))
    results = {name: {**reconstruct(run_dirs[name], image, seed=0), "depth_axis": depth_axis}
               for name in reconstructing}
    print(f"volume {entry['scan_uid']}, model input {tuple(image.shape)}")
else:
    print("no MAE / SL-MAE run among the objectives: no reconstructions to show")

# %% [markdown]
# **Figure 2c.** An axial slice through the centre of the volume, one row per run: the input,
# what the encoder sees (masked tubelets in blue), the decoder's output and the mosaic. All
# panels of a row share the input's intensity range (z-scored intensities).

# %%
if reconstructing:
    fig = plot_reconstructions(results, plane="axial")
    save_figure(fig, figures / "fig02_reconstructions")
    display(fig)
