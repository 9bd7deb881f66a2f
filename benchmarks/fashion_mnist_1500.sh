#!/usr/bin/env bash
# Done-when run: Fashion-MNIST, MiniLM pretrained, 1500 steps, seed 0, on the CPU; output to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/fashion_mnist_1500
rm -rf runs/fashion-mnist-1500-s0
{ echo "$ HF_HUB_OFFLINE=1 fpt train --task fashion-mnist --backbone minilm --init pretrained --steps 1500 --seed 0 --device cpu"
  echo "# started $(date -u) on $(nproc) CPU cores"
  HF_HUB_OFFLINE=1 .venv/bin/fpt train --task fashion-mnist --backbone minilm --init pretrained --steps 1500 --seed 0 \
    --device cpu --out runs/fashion-mnist-1500-s0 2>&1 | tr '\r' '\n' | grep -v '^fashion-mnist pretrained:' || true
  echo "# finished $(date -u)"; } > "$out.txt"
cp runs/fashion-mnist-1500-s0/summary.json "$out.summary.json"
cp runs/fashion-mnist-1500-s0/metrics.jsonl "$out.metrics.jsonl"
