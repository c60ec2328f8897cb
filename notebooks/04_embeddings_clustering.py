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
objectives = None         # None: every registered objective (neurossl.objectives.OBJECTIVES)
run_missing = True        # run a stage whose outputs are missing; False: stop with a clear error

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from neurossl.analysis.clustering import (by_dataset_analysis, clustering_by_dataset, dataset_scores,
                                          per_dataset_analyses)
from neurossl.analysis.features import downstream_scans, exported_encoders, pooled_features
from neurossl.analysis.stages import stage_analyses, stage_encoders, stage_table, task_test_scans
from neurossl.analysis.summaries import nmi_summary
from neurossl.config import load_config
from neurossl.evaluate.backbones import random_twin, resolve_encoder
from neurossl.evaluate.feature_store import cache_feature_store
from neurossl.runtime.device import resolve_device
from neurossl.evaluate.tables import write_table
from neurossl.objectives import OBJECTIVES
from neurossl.paths import repo_path
from neurossl.pipeline import TABLE7_TASK
from neurossl.plots.embeddings import embedding_grids, plot_per_dataset_embeddings, plot_stage_embeddings
from neurossl.plots.style import save_figure, save_figures, set_theme

set_theme()
objectives = list(objectives or OBJECTIVES)
cfg = load_config(profile)
data_dir, splits_dir = repo_path(data_dir), repo_path(splits_dir)
figures_dir, tables_dir = repo_path(figures_dir), repo_path(tables_dir)
cache_dir = data_dir / "cache"

# %% [markdown]
# ## Features of every downstream scan
#
# Evaluation-mode items (no augmentation, fixed slice axis and centre crop), so the features are
# deterministic. The random twin copies the architecture of the first encoder listed. Features
# that evaluation already computed are read from the cache's feature store (`<cache>/features`,
# keyed by each encoder's weights and the scans' cache keys); the rest are encoded here and kept.

# %%
runs = exported_encoders(data_dir, objectives)
scans = downstream_scans(cache_dir, splits_dir, modalities=cfg.train.scan_modalities)
encoders = {name: resolve_encoder(run) for name, run in runs.items()}
encoders["random"] = random_twin(encoders[objectives[0]])
store = cache_feature_store(cache_dir)  # what evaluation computed is read, not encoded again
features = {name: pooled_features(spec, cache_dir, scans["scan_uid"].tolist(), cfg,
                                  batch_size=cfg.evaluate.batch_size, device=resolve_device(device),
                                  store=store)
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
analyses = per_dataset_analyses(features, scans)
scores = dataset_scores(analyses)
all_scans = by_dataset_analysis(features, scans)
table = clustering_by_dataset(scores)
write_table(table, tables_dir / "tab04_clustering")
display(Markdown(table.to_markdown()))

# %%
display(Markdown(nmi_summary(scores)))

# %% [markdown]
# ## 2-D embeddings of all downstream scans
#
# Rows are encoders (the random twin last), columns colour the same points by diagnostic label
# and by dataset. Labels of different datasets are different classes (NC/MCI/AD, glioma grades,
# ASD/TD). Clusters that follow the dataset colouring but not the label colouring mean the
# features encode acquisition and anatomy more than disease.

# %%
grids = embedding_grids(all_scans, scans)
save_figures(grids, figures_dir)
display(*grids.values())

# %% [markdown]
# ## Per-dataset t-SNE, coloured by label
#
# The projections behind the per-dataset scores above: one column per dataset, one row per
# encoder, each dataset embedded on its own.

# %%
fig = plot_per_dataset_embeddings(analyses, scans)
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
test_scans = task_test_scans(TABLE7_TASK, cache_dir, splits_dir)
stages = stage_analyses(stage_encoders(encoders, data_dir / "eval", TABLE7_TASK), test_scans, cache_dir,
                        cfg, batch_size=cfg.evaluate.batch_size, device=resolve_device(device),
                        store=store)
table7 = stage_table(stages).round(4)
write_table(table7, tables_dir / "tab04_table7_pretrained_vs_finetuned")
display(Markdown(f"{len(test_scans)} test scans of `{TABLE7_TASK}`\n\n" + table7.to_markdown()))

# %%
fig = plot_stage_embeddings(stages, test_scans["label"].to_numpy())
save_figure(fig, figures_dir / "fig04_tsne_pretrained_vs_finetuned")
fig
