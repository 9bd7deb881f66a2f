#!/usr/bin/env bash
# The cpu-budget tables of docs/reproduction.md (issue 10): 3 seeds, one task, main first:
#   [ROWS=fpt,full] benchmarks/reproduce_cpu.sh [TASK] [EXPERIMENT...]   (default: bit-xor main init ablation)
# ROWS (optional) runs only those rows now (fpt reproduce --rows); the same command without ROWS later runs the rest.
# runs  fpt reproduce EXPERIMENT --budget cpu --tasks TASK --jobs 1 --out runs/cpu-EXPERIMENT[-TASK]
# and keeps its table, plots and every run's evidence in benchmarks/results/reproduce-EXPERIMENT-cpu[-TASK]/
# (fpt.experiments.evidence); the log, with start and end times, machine and commit, beside it (.txt).
# The init table's pretrained row and the ablation table's fpt row are the main table's FPT row (identical
# runs: frozen pretrained backbone, fpt policy, the same lr grid), linked instead of re-run.
# ListOps (TASK listops or "listops (paper tokenizer)") reads the budget's reduced copy in runs/data-cpu,
# generated first if missing (the command is fpt.experiments.methods.CPU_LISTOPS's; a copy made otherwise is
# refused by fpt reproduce, not replaced here).
# Runs live under runs/ (not committed); re-running resumes: finished runs are skipped. On the shared
# 2-core machine it ran under /work/heavy (one single-threaded slot): /work/heavy benchmarks/reproduce_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
task=${1:-bit-xor}
shift || true
experiments=${*:-main init ablation}
slug=$(printf %s "$task" | tr -c 'A-Za-z0-9.+-' '_' | sed 's/^_*//; s/_*$//')  # the sweep's folder name
suffix=$([ "$task" = bit-xor ] && echo "" || echo "-$slug")  # Bit XOR's tables predate the per-task names
results=benchmarks/results
fpt=${FPT:-.venv/bin/fpt}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$results"
if [[ $task == listops* ]] && [ ! -e runs/data-cpu/listops ]; then
  generate=$($python -c "from fpt.experiments.methods import CPU_LISTOPS; print(CPU_LISTOPS.command())")
  { echo "\$ $generate"
    echo "# started $(date -u), commit $(git rev-parse --short HEAD)"
    $fpt ${generate#fpt } 2>&1
    echo "# finished $(date -u)"; } >> "$results/reproduce-data-cpu-listops.txt"
fi
for experiment in $experiments; do
  out=runs/cpu-$experiment$suffix
  linked=$([ "$experiment" = init ] && echo pretrained || ([ "$experiment" = ablation ] && echo fpt) || true)
  if [ -n "$linked" ]; then  # the target made first, so init or ablation may also run before main
    mkdir -p "$out/runs/$slug" "runs/cpu-main$suffix/runs/$slug/FPT__frozen_pretrained"
    ln -sfn "../../../cpu-main$suffix/runs/$slug/FPT__frozen_pretrained" "$out/runs/$slug/$linked"
  fi
  log=$results/reproduce-$experiment-cpu$suffix.txt
  rows=(${ROWS:+--rows "$ROWS"})
  { echo "\$ fpt reproduce $experiment --budget cpu --tasks \"$task\" ${rows[*]} --jobs 1 --out $out"
    echo "# started $(date -u) on $(nproc --all) CPU cores ($(lscpu | sed -n 's/^Model name: *//p')), OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, commit $(git rev-parse --short HEAD)"
    $fpt reproduce "$experiment" --budget cpu --tasks "$task" "${rows[@]}" --jobs 1 --out "$out" 2>&1
    echo "# finished $(date -u)"; } >> "$log"
  # the table, its plots and every run's evidence (config, summary, curve; never checkpoints), from which
  # `fpt reproduce $experiment --budget cpu --tasks "$task" --out $results/... --tabulate-only` rebuilds it
  $python -m fpt.experiments.evidence "$out" "$results/reproduce-$experiment-cpu$suffix"
done
