#!/bin/bash
# Example SLURM batch script: your ADNI download -> the paper's Table 2 (ADNI columns), on one node
# with 4 GPUs, with the paper's released split files. The worked example in paper/README.md
# ("From an ADNI download to Table 2") explains each step and what it writes.
#   sbatch paper/slurm_adni.sh /data/ADNI /data/ADNI_collection.csv ../shared/paper-splits
# Run from the repository root, with neurossl installed in .venv (a CUDA build of torch). A job
# resubmitted with the same arguments skips finished stages and resumes pretraining.
#SBATCH --job-name=neurossl-adni
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --mem=256G
#SBATCH --time=72:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

DATA=${1:?usage: sbatch paper/slurm_adni.sh ADNI_DIR COLLECTION_CSV SPLITS_DIR}
LABELS=${2:?the IDA image collection CSV downloaded with the images}
SPLITS=${3:?the released split folder}
RUN=runs/adni
BIN=.venv/bin
GUARD=(--scans "$RUN/scans.tsv" --data-root "$DATA" --curation "$RUN/curation.csv")
mkdir -p logs "$RUN"

# 1. scans table: image IDs and subjects from the file names, labels and ages from the CSV
[ -f "$RUN/scans.tsv" ] || $BIN/neurossl scans pattern "$DATA" --dataset adni \
    --contrast FLAIR=FLAIR --contrast T2=T2w --contrast PD=PDw --contrast MPRAGE=T1w \
    --contrast SPGR=T1w --contrast T1=T1w \
    --labels "$LABELS" --on "scan_uid=Image Data ID" --label Group --age Age \
    --map CN=NC --map MCI=MCI --map AD=AD --map EMCI= --map LMCI= --map SMC= --map Patient= \
    --out "$RUN/scans.tsv"
# 2. curation with the release's ADNI rules, then the preprocessing cache (once)
[ -f "$RUN/curation.csv" ] || $BIN/neurossl curate "$DATA" --report "$RUN/curation.csv" \
    --profile paper --set curation.rule_set=adni --quiet
[ -f "$RUN/cache/index.csv" ] || $BIN/neurossl preprocess "$DATA" --scans "$RUN/scans.tsv" \
    --curation "$RUN/curation.csv" --cache "$RUN/cache" --profile paper --quiet
# 3. the split folder: leakage audit, then how much of ADNI's files this download covers
$BIN/neurossl splits audit "$SPLITS"
$BIN/neurossl scans coverage --splits "$SPLITS" --dataset adni --cache "$RUN/cache" "${GUARD[@]}" \
    --out "$RUN" --min-coverage 0

# 4. pretraining on the ADNI pretraining split: one torchrun job per objective, one process per GPU
for objective in mae slmae; do
    if [ ! -f "$RUN/pretrain/$objective/encoder.safetensors" ]; then
        $BIN/torchrun --standalone --nproc_per_node=4 -m neurossl pretrain --objective "$objective" \
            --profile paper --cache "$RUN/cache" --splits "$SPLITS" --set "train.datasets=[adni]" \
            "${GUARD[@]}" --run-dir "$RUN/pretrain/$objective" --resume
    fi
done

# 5. fine-tuning on the five folds of both ADNI tasks, then Table 2 (fine-tuned AUC, mean ± std)
if [ ! -f "$RUN/eval/results.csv" ]; then
    $BIN/neurossl evaluate --encoder "$RUN/pretrain/mae" --encoder "$RUN/pretrain/slmae" \
        --mode finetune --task adni_nc_vs_ad --task adni_nc_vs_mci --profile paper \
        --cache "$RUN/cache" --splits "$SPLITS" "${GUARD[@]}" --out "$RUN/eval.tmp"
    mv "$RUN/eval.tmp" "$RUN/eval"
fi
$BIN/neurossl report --results "$RUN/eval" --out "$RUN/tables" --profile paper
