#!/usr/bin/env bash
# Done-when check: ListOps generated offline by the LRA recipe, then a short `fpt train --task listops`,
# with the brackets in the vocabulary. A small copy (200/20/20) keeps the run to minutes on a busy
# 2-core CPU; the full 96000/2000/2000 generation is recorded in listops_generate.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=runs/listops-data-small
out=benchmarks/results/listops_short.txt
rm -rf "$root" runs/listops-short
{ echo "$ fpt data generate listops --data-dir $root --train 200 --val 20 --test 20"
  HF_HUB_OFFLINE=1 .venv/bin/fpt data generate listops --data-dir "$root" --train 200 --val 20 --test 20
  echo "$ fpt train --task listops --data-dir $root --backbone minilm --layers 2 --steps 10 --batch-size 4 --eval-every 5 --device cpu --quiet"
  HF_HUB_OFFLINE=1 .venv/bin/fpt train --task listops --data-dir "$root" --backbone minilm --layers 2 --steps 10 \
    --batch-size 4 --eval-every 5 --seed 0 --device cpu --out runs/listops-short --quiet 2>&1
  echo "$ grep -A3 'input_dim' runs/listops-short/config.yaml  # vocabulary: <pad> ] [MAX [MIN [MED [SM [FIRST [LAST 0-9 ( )"
  grep -A1 "input_dim" runs/listops-short/config.yaml
  .venv/bin/python -c "from fpt.data.listops import VOCAB; print('vocabulary:', ' '.join(VOCAB))"
} > "$out" 2>&1
cat "$out"
