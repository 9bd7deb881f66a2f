#!/usr/bin/env bash
# bf16 (the default on CPUs with AVX-512 bf16/AMX) vs fp32: same task, seed and step budget.
# Bit XOR (MiniLM, 300 steps) and Fashion-MNIST (MiniLM, 600 steps, 2000 validation examples,
# full 10000-example test split). Output: benchmarks/results/precision_accuracy/.
set -euo pipefail
cd "$(dirname "$0")/.."
# One thread per process: on a shared 2-core machine (load ~12 when recorded) two OpenMP threads
# spin against each other and a step takes 3-30x longer. Accuracy does not depend on it.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
out=benchmarks/results/precision_accuracy
mkdir -p "$out"
run() {  # name, then fpt train flags
  local name=$1; shift
  rm -rf "runs/precision-$name"
  { echo "$ fpt train $* --out runs/precision-$name"; echo "# started $(date -u), load $(cut -d' ' -f1-3 /proc/loadavg)"
    HF_HUB_OFFLINE=1 .venv/bin/fpt train "$@" --out "runs/precision-$name" --quiet
    echo "# finished $(date -u)"; } > "$out/$name.txt" 2>&1
  cp "runs/precision-$name/metrics.jsonl" "$out/$name.metrics.jsonl"
}
for precision in fp32 bf16; do
  run "bit-xor-$precision" --task bit-xor --backbone minilm --steps 300 --eval-every 100 --seed 0 --device cpu --precision $precision
done
for precision in fp32 bf16; do
  run "fashion-mnist-$precision" --task fashion-mnist --backbone minilm --steps 600 --eval-every 300 --seed 0 \
    --task-option val_size=2000 --device cpu --precision $precision
done
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = []
for task in ("bit-xor", "fashion-mnist"):
    s = {p: json.loads(Path(f"runs/precision-{task}-{p}/summary.json").read_text()) for p in ("fp32", "bf16")}
    rows.append({"task": task, **{f"{p}_test_accuracy": s[p]["test_accuracy"] for p in s},
                 "difference_points": round(100 * (s["bf16"]["test_accuracy"] - s["fp32"]["test_accuracy"]), 2),
                 **{f"{p}_wall_seconds": s[p]["wall_seconds"] for p in s}, "steps": s["fp32"]["steps"], "seed": 0})
(out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
print(json.dumps(rows, indent=2))
PY
