#!/usr/bin/env bash
# The methods comparison (issue 15) at the cpu budget, one task (and optionally another backbone):
#   [JOBS=N] benchmarks/methods_cpu.sh [TASK] [BACKBONE]     (default: bit-xor minilm, 1 run at a time)
# runs  fpt reproduce methods --budget cpu --tasks TASK [--backbone BACKBONE]: FPT, output-only, LN-tuning,
# LoRA, FPT+LoRA, IA3, ORCA-align + FPT, ORCA-align + full fine-tuning, full fine-tuning; 3 seeds, each
# method's lr chosen on seed 0's validation (the budget: fpt/experiments/methods.py). Runs live under runs/
# (not committed); re-running resumes. The table, plots and each run's config/summary/metrics/align files are
# kept in benchmarks/results/methods-cpu[-TASK][-BACKBONE]/ (Bit XOR's predates the per-task names).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
task=${1:-bit-xor}
backbone=${2:-minilm}
jobs=${JOBS:-1}
fpt=${FPT:-.venv/bin/fpt}
python=${PYTHON:-.venv/bin/python}
suffix=$([ "$task" = bit-xor ] && echo "" || echo "-$task")$([ "$backbone" = minilm ] && echo "" || echo "-$backbone")
out=runs/methods-cpu$suffix
results=benchmarks/results/methods-cpu$suffix
mkdir -p "$results"
log=$results/log.txt
{ echo "\$ fpt reproduce methods --budget cpu --tasks $task --backbone $backbone --jobs $jobs --out $out"
  echo "# started $(date -u) on $(nproc --all) CPU cores ($(lscpu | sed -n 's/^Model name: *//p')), OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, commit $(git rev-parse --short HEAD)"; } >> "$log"
$fpt reproduce methods --budget cpu --tasks "$task" --backbone "$backbone" --jobs "$jobs" --out "$out" >> "$log" 2>&1
echo "# finished $(date -u)" >> "$log"
# the table, plots and every run's evidence (config, summary, curve, alignment; never checkpoints), from which
# `fpt reproduce methods --budget cpu --tasks $task --backbone $backbone --out $results --tabulate-only` rebuilds it
$python -m fpt.experiments.evidence "$out" "$results"
