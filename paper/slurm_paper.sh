#!/bin/bash
# Example SLURM batch script: the paper's pipeline on one node of 4 GPUs, or on several nodes.
#   sbatch paper/slurm_paper.sh /data/neuro [splits/paper]             # 1 node x 4 GPUs
#   sbatch --nodes=4 paper/slurm_paper.sh /data/neuro [splits/paper]   # 4 nodes x 4 GPUs
# Run from the repository root, with neurossl installed in .venv (a CUDA build of torch:
# `make install TORCH_SPEC="torch==<version>+cu<xx> --index-url https://download.pytorch.org/whl/cu<xx>"`).
# With several nodes the repository and RUN_DIR must be on storage every node reads (the cache
# and the checkpoints are written once and read by all); the script checks this before training.
# Each pretraining run is one srun task per node running the same torchrun command; the nodes
# meet at a c10d rendezvous on the first node. A worker that dies makes torchrun restart the
# whole group (up to MAX_RESTARTS times) from the newest checkpoint, which rank 0 alone writes.
# A preempted job resubmitted with the same arguments resumes pretraining the same way and skips
# finished stages. Global batch = nodes x GPUS_PER_NODE x optim.batch_size x optim.accum_steps:
# keep it when changing the layout (paper/SCALE_OUT.md).
# Environment (optional): GPUS_PER_NODE (default: SLURM_GPUS_ON_NODE, else 4), RUN_DIR
# (runs/paper), RDZV_PORT (20000 + job id % 10000), MAX_RESTARTS (3), DRY_RUN=1 (print the
# commands, each node's for srun, and run nothing). Adapt partition, account and time to your cluster.
#SBATCH --job-name=neurossl-paper
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --mem=256G
#SBATCH --time=72:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

die() { echo "slurm_paper.sh: $*" >&2; exit 2; }

DATA=${1:?usage: sbatch [--nodes=N] paper/slurm_paper.sh DATA_DIR [SPLITS_DIR]}
SPLITS=${2:-splits/paper}
[ -d "$DATA" ] || die "DATA_DIR '$DATA' is not a folder"
for var in SLURM_JOB_ID SLURM_NNODES SLURM_JOB_NODELIST; do
    [ -n "${!var:-}" ] || die "$var is not set: submit this script with sbatch"
done
GPUS=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-4}}
RUN=${RUN_DIR:-runs/paper}
MAX_RESTARTS=${MAX_RESTARTS:-3}
BIN=.venv/bin
whole() { [[ ${!1} =~ ^[0-9]+$ ]] || die "$1 must be a whole number, got '${!1}'"; }
for var in SLURM_JOB_ID SLURM_NNODES GPUS MAX_RESTARTS; do whole "$var"; done
PORT=${RDZV_PORT:-$((20000 + 10#$SLURM_JOB_ID % 10000))}  # one per job: jobs may share a node
whole PORT
command -v scontrol >/dev/null || die "scontrol not found: run inside a SLURM allocation"
mapfile -t HOSTS < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
[ "${#HOSTS[@]}" -eq "$SLURM_NNODES" ] ||
    die "SLURM_JOB_NODELIST names ${#HOSTS[@]} hosts but SLURM_NNODES is $SLURM_NNODES"
HEAD=${HOSTS[0]}  # hosts the rendezvous; this batch script runs there too

quoted() { local line; printf -v line '%q ' "$@"; echo "${line% }"; }
# once, here (DRY_RUN: print it)
run() {
    if [ -n "${DRY_RUN:-}" ]; then quoted "$@"; else "$@"; fi
}
# the same command on every node, one srun task each (a failed node stops the others)
on_every_node() {
    if [ -n "${DRY_RUN:-}" ]; then
        for i in "${!HOSTS[@]}"; do echo "node $i (${HOSTS[$i]}): $(quoted "$@")"; done
    else
        srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 "$@"
    fi
}

run mkdir -p logs "$RUN"
run ln -sfn "$(realpath "$DATA")" "$RUN/cohort"   # the notebooks read <data>/cohort/scans.tsv

# data stages, once for all nodes: curation report, preprocessing cache, split audit (fails on leakage)
[ -f "$RUN/curation.csv" ] || run $BIN/neurossl curate "$RUN/cohort" --report "$RUN/curation.csv" \
    --profile paper --quiet
[ -f "$RUN/cache/index.csv" ] || run $BIN/neurossl preprocess "$RUN/cohort" --curation "$RUN/curation.csv" \
    --cache "$RUN/cache" --profile paper --quiet
run $BIN/neurossl splits audit "$SPLITS"
if [ "$SLURM_NNODES" -gt 1 ]; then
    on_every_node test -r "$RUN/cache/index.csv" ||
        die "$RUN/cache is not readable on every node: put RUN_DIR on shared storage"
fi

# pretraining: one torchrun per node and objective, GPUS processes each (one per GPU).
# Each restart attempt gets its own store: in the one torchrun shares, a restarted worker can read
# the dead attempt's addresses and fail to connect (neurossl/train/distributed.py)
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
for objective in mae slmae jepa vcr_jepa; do
    if [ ! -f "$RUN/pretrain/$objective/encoder.safetensors" ]; then
        on_every_node $BIN/torchrun --nnodes="$SLURM_NNODES" --nproc_per_node="$GPUS" \
            --rdzv_backend=c10d --rdzv_endpoint="$HEAD:$PORT" --rdzv_id="$SLURM_JOB_ID-$objective" \
            --max-restarts="$MAX_RESTARTS" -m neurossl pretrain --objective "$objective" \
            --profile paper --cache "$RUN/cache" --splits "$SPLITS" \
            --run-dir "$RUN/pretrain/$objective" --resume
    fi
done

# evaluation, analysis, figures and tables on this node: the notebooks load the encoders above
run $BIN/neurossl paper --profile paper --data "$RUN" --splits "$SPLITS" --out paper \
    --objective mae --objective slmae --objective jepa --objective vcr_jepa --device cuda
