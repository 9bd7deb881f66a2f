#!/usr/bin/env bash
# The cpu-budget tables of docs/reproduction.md (issue 10): Bit XOR, main and init experiments, 3 seeds.
#   fpt reproduce main --budget cpu --tasks bit-xor --jobs 1
#   fpt reproduce init --budget cpu --tasks bit-xor --jobs 1
# The init table's pretrained row is the main table's FPT row (identical runs), linked instead of re-run.
# Runs live under runs/ (not committed); re-running resumes: finished runs are skipped. On the shared
# 2-core machine it ran under /work/heavy (one single-threaded slot): /work/heavy benchmarks/reproduce_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
results=benchmarks/results
fpt=${FPT:-.venv/bin/fpt}
for experiment in main init; do
  out=runs/cpu-$experiment
  if [ "$experiment" = init ]; then
    mkdir -p "$out/runs/bit-xor"
    ln -sfn ../../../cpu-main/runs/bit-xor/FPT__frozen_pretrained "$out/runs/bit-xor/pretrained"
  fi
  log=$results/reproduce-$experiment-cpu.txt
  { echo "\$ fpt reproduce $experiment --budget cpu --tasks bit-xor --jobs 1 --out $out"
    echo "# started $(date -u) on $(nproc) CPU cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
    $fpt reproduce "$experiment" --budget cpu --tasks bit-xor --jobs 1 --out "$out" 2>&1
    echo "# finished $(date -u)"; } >> "$log"
  mkdir -p "$results/reproduce-$experiment-cpu"
  cp "$out/results.md" "$out/results.csv" "$results/reproduce-$experiment-cpu/"
  cp -r "$out/plots" "$results/reproduce-$experiment-cpu/"
done
