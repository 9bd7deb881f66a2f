#!/usr/bin/env bash
# Fashion-MNIST, MiniLM, bf16 vs fp32 at a longer step budget than precision_accuracy.sh (whose
# 600 steps stop mid-climb), the two runs side by side. Usage: precision_fashion_mnist.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # see precision_accuracy.sh
steps=${1:-1500}
out=benchmarks/results/precision_accuracy
mkdir -p "$out"
for precision in fp32 bf16; do
  name=fashion-mnist-$steps-$precision
  rm -rf "runs/precision-$name"
  { echo "$ fpt train --task fashion-mnist --backbone minilm --steps $steps --eval-every $((steps / 2)) --seed 0 --task-option val_size=2000 --device cpu --precision $precision"
    echo "# started $(date -u), load $(cut -d' ' -f1-3 /proc/loadavg), OMP_NUM_THREADS=$OMP_NUM_THREADS"
    HF_HUB_OFFLINE=1 .venv/bin/fpt train --task fashion-mnist --backbone minilm --steps "$steps" --eval-every $((steps / 2)) \
      --seed 0 --task-option val_size=2000 --device cpu --precision $precision --out "runs/precision-$name" --quiet
    echo "# finished $(date -u)"; cp "runs/precision-$name/metrics.jsonl" "$out/$name.metrics.jsonl"; } > "$out/$name.txt" 2>&1 &
done
wait
.venv/bin/python - "$out" "$steps" <<'PY'
import json, sys
from pathlib import Path
out, steps = Path(sys.argv[1]), sys.argv[2]
s = {p: json.loads(Path(f"runs/precision-fashion-mnist-{steps}-{p}/summary.json").read_text()) for p in ("fp32", "bf16")}
row = {"task": "fashion-mnist", "steps": int(steps), "seed": 0, **{f"{p}_test_accuracy": s[p]["test_accuracy"] for p in s},
       "difference_points": round(100 * (s["bf16"]["test_accuracy"] - s["fp32"]["test_accuracy"]), 2)}
(out / f"fashion-mnist-{steps}-summary.json").write_text(json.dumps(row, indent=2) + "\n")
print(json.dumps(row, indent=2))
PY
