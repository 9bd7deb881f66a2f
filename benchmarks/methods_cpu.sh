#!/usr/bin/env bash
# The methods comparison (issue 15) at the cpu budget: FPT, output-only, LN-tuning, LoRA, FPT+LoRA, IA3,
# ORCA-align + FPT, ORCA-align + full fine-tuning, full fine-tuning; frozen MiniLM; 3 seeds each.
#   fpt reproduce methods --budget cpu --tasks TASKS   (default TASKS: bit-xor; the budget's settings:
#   fpt/experiments/methods.py). Runs live under runs/ (not committed); re-running resumes.
# Tables, plots and each run's summary/metrics/align files are copied to benchmarks/results/methods-cpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
tasks=${1:-bit-xor}
out=runs/reproduce-methods-cpu
results=benchmarks/results/methods-cpu
mkdir -p "$results"
log=$results/log.txt
{ echo "\$ fpt reproduce methods --budget cpu --tasks $tasks --out $out"; echo "# started $(date -u) on $(nproc) CPU cores"; } >> "$log"
.venv/bin/fpt reproduce methods --budget cpu --tasks "$tasks" --out "$out" >> "$log" 2>&1
echo "# finished $(date -u)" >> "$log"
cp "$out/results.md" "$out/results.csv" "$out/runs.jsonl" "$results/"
cp -r "$out/plots" "$results/"
(cd "$out" && find runs \( -name summary.json -o -name metrics.jsonl -o -name align.jsonl \) -exec cp --parents {} "../../$results" \;)
