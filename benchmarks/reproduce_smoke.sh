#!/usr/bin/env bash
# Done-when runs of the reproduction suite on the CPU (issue 4); tables and evidence kept in benchmarks/results/.
# Retired from docs/reproduction.md (issue 22: superseded by the cpu budget); this script re-records them.
#   1. fpt reproduce init --budget smoke --tasks bit-xor,bit-memory --seeds 3
#   2. fpt reproduce convergence --budget smoke --tasks bit-xor --seeds 3
#   3. fpt reproduce main --budget smoke --tasks bit-xor --seeds 2 (FPT vs full transformer vs LSTMs)
#   4. a minilm Bit XOR run trained to 100% validation accuracy, and its attention map (JSON + PNG)
# Runs live under runs/ (not committed); re-running resumes: finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
results=benchmarks/results
run() {  # run COMMAND..., log it with its output to $log
  { echo "\$ $*"; echo "# started $(date -u) on $(nproc) CPU cores"; "$@" 2>&1; echo "# finished $(date -u)"; } >> "$log"
}
keep() {  # keep SWEEP_DIR NAME: the tables, plots and every run's evidence (fpt.experiments.evidence)
  .venv/bin/python -m fpt.experiments.evidence "$1" "$results/$2"
}

log=$results/reproduce-init-smoke.txt; : > "$log"
run .venv/bin/fpt reproduce init --budget smoke --tasks bit-xor,bit-memory --seeds 3 --jobs 2 --out runs/reproduce-init-smoke
keep runs/reproduce-init-smoke reproduce-init-smoke

log=$results/reproduce-convergence-smoke.txt; : > "$log"
run .venv/bin/fpt reproduce convergence --budget smoke --tasks bit-xor --seeds 3 --jobs 2 --out runs/reproduce-convergence-smoke
keep runs/reproduce-convergence-smoke reproduce-convergence-smoke

log=$results/reproduce-main-smoke.txt; : > "$log"
run .venv/bin/fpt reproduce main --budget smoke --tasks bit-xor --seeds 2 --jobs 2 --out runs/reproduce-main-smoke
keep runs/reproduce-main-smoke reproduce-main-smoke

log=$results/attention/bit-xor-minilm.txt; mkdir -p "$results/attention"; : > "$log"
[ -f runs/attention-xor-minilm/summary.json ] || run .venv/bin/fpt train --task bit-xor --backbone minilm --steps 400 \
  --eval-every 25 --target-accuracy 1.0 --seed 0 --out runs/attention-xor-minilm --quiet
cp runs/attention-xor-minilm/summary.json "$results/attention/bit-xor-minilm.summary.json"
run .venv/bin/fpt attention runs/attention-xor-minilm --example 0 --format json --out "$results/attention/bit-xor-minilm.json"
run .venv/bin/fpt attention runs/attention-xor-minilm --example 0 --layer 0 --out "$results/attention/bit-xor-minilm-layer0.png"
run .venv/bin/fpt attention runs/attention-xor-minilm --example 0 --out "$results/attention/bit-xor-minilm-all-layers.png"
