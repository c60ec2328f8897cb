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
# # 04 · Embeddings and clustering
#
# What do the encoders' features look like before any label is used? Every scan of the
# downstream partitions is encoded by each frozen encoder and by the random twin (the same ViT
# with random weights); the final tokens are mean-pooled into one vector per scan. The paper
# then asks two questions, answered here per dataset with that dataset's own diagnostic labels:
#
# - **silhouette** of the true labels: do scans of the same class sit closer together than scans
#   of different classes (−1 to 1; 0 = no structure)?
# - **NMI** between k-means clusters (k = number of classes) and the labels: does unsupervised
#   clustering recover the diagnosis (0 to 1)?
#
# Both are computed in the raw feature space and in 2-D t-SNE and UMAP projections. The scatter
# plots show the projections of all downstream scans together, coloured by label and by dataset.
#
# On the demo cohort a dataset holds tens of scans, several contrasts per subject and a weak
# synthetic disease signal, so the scores are noisy and small; a contrast (T1w vs FLAIR)
# separates scans far more than a diagnosis does, which the "by dataset" panels make visible.

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
import pandas as pd
from IPython.display import Markdown, display
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

from neurossl.analysis.embeddings import analyse_encoders, clustering_table
from neurossl.analysis.stages import finetuned_encoders, stage_analyses, stage_table, task_test_scans
from neurossl.analysis.features import downstream_scans, pooled_features, pretraining_runs
from neurossl.config import load_config
from neurossl.evaluate.backbones import random_twin, resolve_encoder
from neurossl.runtime.device import resolve_device
from neurossl.evaluate.tables import write_table
from neurossl.paths import repo_path
from neurossl.plots.embeddings import plot_embedding, plot_embedding_grid, plot_stage_embeddings
from neurossl.plots.style import save_figure, set_theme

set_theme()
data_dir, splits_dir = repo_path(data_dir), repo_path(splits_dir)
figures_dir, tables_dir = repo_path(figures_dir), repo_path(tables_dir)
cache_dir = data_dir / "cache"
cfg = load_config(profile)

# %% [markdown]
# ## Features of every downstream scan
#
# Evaluation-mode items (no augmentation, fixed slice axis and centre crop), so the features are
# deterministic. The random twin copies the architecture of the first encoder listed.

# %%
runs = pretraining_runs(profile, objectives, data_dir, splits_dir, run_missing, device)
scans = downstream_scans(cache_dir, splits_dir)
encoders = {name: resolve_encoder(run) for name, run in runs.items()}
encoders["random"] = random_twin(encoders[objectives[0]])
features = {name: pooled_features(spec, cache_dir, scans["scan_uid"].tolist(), cfg.preprocess,
                                  batch_size=cfg.evaluate.batch_size, device=resolve_device(device))
            for name, spec in encoders.items()}
scans.groupby(["dataset", "modality", "label"]).size().unstack(fill_value=0)

# %% [markdown]
# The table counts the scans per dataset, contrast and label that enter the analysis.
#
# ## Clustering scores per dataset
#
# For each dataset, every encoder's features of that dataset's scans are scored against its
# labels (silhouette and NMI in the raw space, and after t-SNE and UMAP). An SSL encoder helps
# only where it beats the random twin's row.

# %%
analyses, frames = {}, []
with threadpool_limits(1):  # t-SNE / UMAP / k-means threads only thrash on a shared CPU
    for dataset, rows in scans.groupby("dataset", sort=True):
        if rows["label"].nunique() < 2:
            continue
        by_encoder = {name: (f[rows.index], rows["label"].to_numpy()) for name, f in features.items()}
        analyses[dataset] = analyse_encoders(by_encoder)
        frames.append(clustering_table(analyses[dataset]).assign(dataset=dataset))
    all_scans = analyse_encoders({name: (f, scans["dataset"].to_numpy()) for name, f in features.items()})
scores = pd.concat(frames, ignore_index=True)
table = scores.pivot_table(index=["dataset", "encoder"], columns="space",
                           values=["silhouette", "nmi"], sort=False)
table = table.reindex(columns=["raw", "tsne", "umap"], level=1)
table.columns = [f"{metric} ({space})" for metric, space in table.columns]
table = table.round(3).reset_index(level="encoder")
write_table(table, tables_dir / "tab04_clustering")
display(Markdown(table.to_markdown()))

# %%
raw = scores[scores["space"] == "raw"].set_index(["dataset", "encoder"])["nmi"]
lines = []
for dataset, nmi in raw.groupby(level="dataset"):
    nmi = nmi.droplevel("dataset")
    ssl = nmi.drop("random")
    lines.append(f"- **{dataset}**: raw-space NMI of the SSL encoders {ssl.min():.3f}–{ssl.max():.3f} "
                 f"(best `{ssl.idxmax()}`), random twin {nmi['random']:.3f}.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 2-D embeddings of all downstream scans
#
# Rows are encoders (the random twin last), columns colour the same points by diagnostic label
# and by dataset. Labels of different datasets are different classes (NC/MCI/AD, glioma grades,
# ASD/TD). Clusters that follow the dataset colouring but not the label colouring mean the
# features encode acquisition and anatomy more than disease.

# %%
labels, datasets = scans["label"].to_numpy(), scans["dataset"].to_numpy()
for method in ("tsne", "umap"):
    coords = {name: a.coords[method] for name, a in all_scans.items()}
    fig = plot_embedding_grid(coords, labels, datasets, method=method, label_name="label")
    save_figure(fig, figures_dir / f"fig04_{method}_all")
    display(fig)

# %% [markdown]
# ## Per-dataset t-SNE, coloured by label
#
# The projections behind the per-dataset scores above: one column per dataset, one row per
# encoder, each dataset embedded on its own.

# %%
fig = Figure(figsize=(4.6 * len(analyses) + 1.5, 3.6 * len(features)), layout="constrained")
axes = fig.subplots(len(features), len(analyses), squeeze=False)
for col, (dataset, analysis) in enumerate(analyses.items()):
    labels_of = scans.loc[scans["dataset"] == dataset, "label"].to_numpy()
    for row, (name, result) in enumerate(analysis.items()):
        plot_embedding(result.coords["tsne"], labels_of, "label", f"{dataset}: {name}", axes[row, col],
                       method="tsne", legend=row == 0)
fig.suptitle("t-SNE per dataset, coloured by diagnostic label")
save_figure(fig, figures_dir / "fig04_tsne_per_dataset")
fig

# %% [markdown]
# With a handful of scans per class, silhouettes and NMIs near zero are the expected outcome on
# the demo cohort for every encoder, pretrained or random; the paper's separations need its full
# cohorts.

# %% [markdown]
# ## Pretrained and fine-tuned encoders on the NC vs AD test set (paper Table 7, Figure 4)
#
# The paper embeds the held-out ADNI NC vs AD test set with MAE, SL-MAE, JEPA and VCR-JEPA before
# and after fine-tuning and scores the diagnostic labels' clustering in the raw embedding space and
# in the t-SNE plane. Here: the first fold's test partition, the pretrained encoders above, and the
# encoders `neurossl evaluate --mode finetune` saved after fine-tuning on that fold
# (`evaluate.export_finetuned`, in `<data>/eval/finetuned/`). An encoder without a fine-tuned copy
# shows its pretrained row only.

# %%
table7_task = "cognition_nc_vs_ad"
test_scans = task_test_scans(table7_task, cache_dir, splits_dir)
paper_four = [name for name in ("mae", "slmae", "jepa", "vcr_jepa") if name in encoders]
stage_encoders = {"pretrained": {name: encoders[name] for name in paper_four},
                  "fine-tuned": finetuned_encoders(data_dir / "eval", table7_task, paper_four)}
with threadpool_limits(1):
    stages = stage_analyses(stage_encoders, test_scans, cache_dir, cfg.preprocess,
                            batch_size=cfg.evaluate.batch_size, device=resolve_device(device))
table7 = stage_table(stages).round(4)
write_table(table7, tables_dir / "tab04_table7_pretrained_vs_finetuned")
display(Markdown(f"{len(test_scans)} test scans of `{table7_task}`\n\n" + table7.to_markdown()))

# %%
fig = plot_stage_embeddings(stages, test_scans["label"].to_numpy())
save_figure(fig, figures_dir / "fig04_tsne_pretrained_vs_finetuned")
fig

