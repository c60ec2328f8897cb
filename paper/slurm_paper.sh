#!/bin/bash
# Example SLURM batch script: the paper's pipeline on one node with 4 GPUs.
#   sbatch paper/slurm_paper.sh /data/neuro [splits/paper]
# Run from the repository root, with neurossl installed in .venv (a CUDA build of torch:
# `make install TORCH_SPEC="torch==<version>+cu<xx> --index-url https://download.pytorch.org/whl/cu<xx>"`).
# Adapt the partition, account and time to your cluster; a preempted job resubmitted with the
# same arguments resumes pretraining from the newest checkpoint and skips finished stages.
#SBATCH --job-name=neurossl-paper
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --mem=256G
#SBATCH --time=72:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

DATA=${1:?usage: sbatch paper/slurm_paper.sh DATA_DIR [SPLITS_DIR]}
SPLITS=${2:-splits/paper}
RUN=runs/paper
BIN=.venv/bin
mkdir -p logs "$RUN"
ln -sfn "$(realpath "$DATA")" "$RUN/cohort"   # the notebooks read <data>/cohort/scans.tsv

# data stages: curation report, preprocessing cache (once), split audit (fails on leakage)
[ -f "$RUN/curation.csv" ] || $BIN/neurossl curate "$RUN/cohort" --report "$RUN/curation.csv" \
    --profile paper --quiet
[ -f "$RUN/cache/index.csv" ] || $BIN/neurossl preprocess "$RUN/cohort" --curation "$RUN/curation.csv" \
    --cache "$RUN/cache" --profile paper --quiet
$BIN/neurossl splits audit "$SPLITS"

# pretraining: one torchrun job per objective, 4 processes (one per GPU)
for objective in mae slmae jepa vcr_jepa; do
    if [ ! -f "$RUN/pretrain/$objective/encoder.safetensors" ]; then
        $BIN/torchrun --standalone --nproc_per_node=4 -m neurossl pretrain --objective "$objective" \
            --profile paper --cache "$RUN/cache" --splits "$SPLITS" \
            --run-dir "$RUN/pretrain/$objective" --resume
    fi
done

# evaluation, analysis, figures and tables: the notebooks load the encoders trained above
$BIN/neurossl paper --profile paper --data "$RUN" --splits "$SPLITS" --out paper \
    --objective mae --objective slmae --objective jepa --objective vcr_jepa --device cuda
