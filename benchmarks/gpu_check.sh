#!/usr/bin/env bash
# The GPU check: one script, sized to finish in under 10 minutes on one GPU.
#   1. fpt bench on CUDA, every case: bf16 eager (with the fp32 reference interleaved, peak memory),
#      fp32 eager, bf16 compiled; GPT-2 x Bit Memory again at batch 64 (the cases' own batch is 16).
#   2. A 2-process DDP run (two GPUs, or both processes on one GPU if only one is present) against the
#      same run in one process: the same batches; each process draws its own dropout masks, so the two
#      agree in accuracy, not bit for bit (tests/test_distributed.py checks exactness without dropout).
#   3. Fashion-MNIST, frozen MiniLM, 1500 steps: test accuracy in bf16 vs fp32.
#   4. benchmarks/gpu_check_summary.py: one table (summary.md, summary.json) with samples/s, MFU against
#      the GPU's bf16 matmul rate measured in the same runs, peak memory, the DDP and accuracy pairs.
# Results go to benchmarks/results/gpu/ (or OUT_DIR); each step's command and time are in gpu_check.log.
#
# --dry-run: the same steps on the CPU with tiny sizes (one timed step, two training steps, 16 validation
# and test examples), so the script is tested where no GPU is (tests/test_gpu_check.py); with the real
# backbones it takes minutes on a 2-core CPU, mostly loading models in its ~10 processes.
# FPT_GPU_CHECK_GPT2 / FPT_GPU_CHECK_MINILM replace the backbones (the test passes tiny ones).
# Each step is announced on stderr with the time so far.
#
# Usage: benchmarks/gpu_check.sh [--dry-run] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
if [[ "${1:-}" == "--dry-run" ]]; then
  dry=1
  shift
fi
out=${1:-benchmarks/results/gpu}
python=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
gpt2=${FPT_GPU_CHECK_GPT2:-gpt2}
minilm=${FPT_GPU_CHECK_MINILM:-minilm}

if ((dry)); then
  device=cpu
  bench=(--device cpu --rounds 1 --steps 1 --warmup 0 --no-memory)
  compiled=()  # compiling on a CPU takes minutes: the dry run checks the commands, not the compiler
  train_steps=2 ddp_steps=4 val_size=16
  test_size=(--task-option test_size=16)  # not Fashion-MNIST's whole 10,000-image test split
  ddp_launch=(-m torch.distributed.run --standalone --nproc_per_node 2)
  echo "gpu_check --dry-run: about 10 processes on the CPU with tiny sizes: minutes, mostly loading models" >&2
else
  device=cuda
  bench=(--device cuda --rounds 3)
  compiled=(--compile --no-memory --reference off)
  train_steps=1500 ddp_steps=200 val_size=2000 test_size=()
  echo "gpu_check: about 10 minutes on one GPU" >&2
  gpus=$("$python" -c "import torch; print(torch.cuda.device_count())")
  if ((gpus < 1)); then
    echo "gpu_check: no CUDA GPU is visible to PyTorch; run with --dry-run on a CPU." >&2
    exit 1
  fi
  ddp_launch=(-m torch.distributed.run --standalone --nproc_per_node 2)  # one GPU: both share it (gloo)
fi
mkdir -p "$out"
log="$out/gpu_check.log"
: >"$log"
run() {
  local start=$SECONDS
  local shown="$*"
  echo "gpu_check [$(printf '%d:%02d' $((SECONDS / 60)) $((SECONDS % 60)))]: ${shown:0:160}" >&2
  echo "\$ $*" >>"$log"
  "$@" >>"$log" 2>&1
  echo "# $((SECONDS - start)) s" >>"$log"
}
fpt() { run "$python" -m fpt.cli "$@"; }
echo "# gpu_check $(date -u +%FT%TZ) dry_run=$dry device=$device" >>"$log"
"$python" -c "import torch; print('# torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" >>"$log"

# 1. throughput: GPT-2 and MiniLM cases apart, so each can take its own backbone
for family in gpt2 minilm; do
  if [[ $family == gpt2 ]]; then
    cases=(gpt2-bit-memory) backbone=$gpt2
  else
    cases=(minilm-bit-xor minilm-fashion-mnist) backbone=$minilm
  fi
  fpt bench "${cases[@]}" "${bench[@]}" --backbone "$backbone" --precision bf16 --out "$out/bench_bf16_$family.json"
  fpt bench "${cases[@]}" "${bench[@]}" --backbone "$backbone" --precision fp32 --reference off --out "$out/bench_fp32_$family.json"
  if ((${#compiled[@]})); then
    fpt bench "${cases[@]}" "${bench[@]}" --backbone "$backbone" --precision bf16 "${compiled[@]}" --out "$out/bench_bf16_compiled_$family.json"
  fi
done
fpt bench gpt2-bit-memory "${bench[@]}" --backbone "$gpt2" --batch-size 64 --precision bf16 --out "$out/bench_bf16_batch64_gpt2.json"

# 2. data parallelism: two processes vs one, same global batches
ddp=(--task bit-xor --backbone "$minilm" --steps "$ddp_steps" --eval-every "$ddp_steps" --batch-size 16
  --device "$device" --task-option val_size=$val_size --task-option test_size=$val_size --quiet)
rm -rf "$out/runs/ddp-1" "$out/runs/ddp-2"
fpt train "${ddp[@]}" --out "$out/runs/ddp-1"
run "$python" "${ddp_launch[@]}" -m fpt.cli train "${ddp[@]}" --out "$out/runs/ddp-2"

# 3. accuracy: Fashion-MNIST bf16 vs fp32 (the two runs share the device)
pids=()
for precision in bf16 fp32; do
  rm -rf "$out/runs/fashion-mnist-$precision"
  fpt train --task fashion-mnist --backbone "$minilm" --steps "$train_steps" --eval-every "$((train_steps / 2))" --seed 0 \
    --task-option val_size=$val_size "${test_size[@]}" --device "$device" --precision "$precision" \
    --out "$out/runs/fashion-mnist-$precision" --quiet &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

# 4. one table
run "$python" benchmarks/gpu_check_summary.py "$out"
cat "$out/summary.md"
