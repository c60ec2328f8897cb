#!/usr/bin/env bash
# The checks a GPU node adds to the CPU test suite, in one go, each part logged under OUT_DIR:
#   1. tests/test_cuda.py: bf16 autocast steps of every objective, SDPA's fused kernels,
#      NCCL + DDP under torchrun, resume and GPU -> CPU encoders (skipped on CPU-only machines);
#   2. `neurossl pretrain` through torchrun on one GPU (NCCL, data loading included) for a few
#      objectives, when a cache and split folder are given;
#   3. benchmarks/bench_augment.py --device cuda: the augmentation of a batch on the GPU
#      (augment.on_device) against a loader worker's per-item cost;
#   4. benchmarks/bench_pretrain.py --device cuda at the paper shape with the blocks compiled
#      (train.compile=inductor), then with activation checkpointing (peak memory);
#   5. benchmarks/bench_vs_monai.py --device cuda: neurossl's MAE against MONAI's at the paper
#      shape;
#   6. benchmarks/bench_pretrain.py --device cuda, every objective at the demo and paper shapes
#      eager (last: the longest part, and its page is rewritten after every objective).
#
#   benchmarks/gpu_checks.sh OUT_DIR [CACHE_DIR SPLITS_DIR]
#
# neurossl must be importable (`pip install -e .`, or PYTHONPATH=.). PYTHON picks the
# interpreter (default python3), STEPS the pretrain steps per objective (default 20), LIMIT the
# seconds each part may take (default 1800).
set -u -o pipefail
out=${1:?usage: benchmarks/gpu_checks.sh OUT_DIR [CACHE_DIR SPLITS_DIR]}
cache=${2:-}
splits=${3:-}
py=${PYTHON:-python3}
steps=${STEPS:-20}
limit=${LIMIT:-1800}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
status=0

section() { echo "=== $(date -u +%H:%M:%S) $*"; }

section environment
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
"$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
'cuDNN', torch.backends.cudnn.version(), 'NCCL', torch.cuda.nccl.version())"

section "CUDA tests"
timeout "$limit" "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.txt" \
  || status=1

if [[ -n "$cache" ]]; then
  mkdir -p "$out/runs"
  # mae_on_device: MAE again, the batch augmented on the GPU (augment.on_device)
  for run in mae jepa simclr mae_on_device; do
    objective=${run%_on_device}
    section "torchrun pretrain $run"
    extra=()
    [[ $run == *_on_device ]] && extra+=(--set augment.on_device=true)
    timeout "$limit" "$py" -m torch.distributed.run --standalone --nproc_per_node=1 \
      -m neurossl pretrain --objective "$objective" \
      --profile demo "${extra[@]}" --cache "$cache" --splits "$splits" \
      --run-dir "$out/runs/$run" --set train.device=cuda --set "train.max_steps=$steps" \
      --set train.log_every=1 --set train.checkpoint_every=10 >"$out/runs/$run.log" 2>&1 \
      || status=1
    tail -n 3 "$out/runs/$run.log"
  done
fi

section "augmentation benchmark"
timeout "$limit" "$py" benchmarks/bench_augment.py --device cuda --out "$out/augment_cuda.md" \
  >"$out/bench_augment.log" 2>&1 || status=1
tail -n 8 "$out/bench_augment.log"

section "pretraining benchmark, compiled blocks"
timeout "$limit" "$py" benchmarks/bench_pretrain.py --device cuda --shapes paper --compile inductor \
  --objectives mae,jepa,simclr --warmup 4 --spectral-cycles 0 --out "$out/pretrain_cuda_compile.md" \
  >"$out/bench_pretrain_compile.log" 2>&1 || status=1
tail -n 12 "$out/bench_pretrain_compile.log"

section "pretraining benchmark, activation checkpointing"
timeout "$limit" "$py" benchmarks/bench_pretrain.py --device cuda --shapes paper \
  --set train.activation_checkpointing=true --objectives jepa,simclr,dino_mim --spectral-cycles 0 \
  --out "$out/pretrain_cuda_checkpointing.md" >"$out/bench_pretrain_checkpointing.log" 2>&1 || status=1
tail -n 12 "$out/bench_pretrain_checkpointing.log"

section "MAE against MONAI"
timeout "$limit" "$py" benchmarks/bench_vs_monai.py --device cuda --out "$out/vs_monai_cuda.md" \
  >"$out/bench_vs_monai.log" 2>&1 || status=1
tail -n 3 "$out/bench_vs_monai.log"

section "pretraining benchmark"
timeout "$limit" "$py" benchmarks/bench_pretrain.py --device cuda --spectral-cycles 2 \
  --out "$out/pretrain_cuda.md" >"$out/bench_pretrain.log" 2>&1 || status=1
tail -n 40 "$out/bench_pretrain.log"

section "done, status $status"
exit $status
