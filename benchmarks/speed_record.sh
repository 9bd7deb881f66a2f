#!/usr/bin/env bash
# The CPU speed record: every `fpt bench` case, in the default precision (bf16 on a CPU with AVX-512 bf16
# or AMX, else fp32) and in fp32, in one sitting on one machine, with that machine's CPU model and flags.
#   fpt bench --rounds 3                      -> record_default.json / .txt
#   fpt bench --rounds 3 --precision fp32     -> record_fp32.json / .txt
# plus lscpu.txt (model, flags, caches) and speed_record.log (commands, commit, times). Each bench
# interleaves the default training path with the authors' reference recipe, so the speedups are
# same-minute ratios; absolute figures need a quiet machine: run it with nothing else running.
# One thread per process (OMP_NUM_THREADS=1 unless set), as the recorded figures were taken.
#
# Takes about EXPECTED_MINUTES minutes on the 2-core AVX-512 EPYC when quiet (see the message it prints).
#
# --dry-run: one timed step per path on a tiny backbone (FPT_SPEED_BACKBONE), so the script is tested
# (tests/test_speed_record.py).
#
# Usage: benchmarks/speed_record.sh [--dry-run] [OUT_DIR]
#   (default benchmarks/results/speed/record-COMMIT: each record keeps its own evidence beside the others)
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
if [[ "${1:-}" == "--dry-run" ]]; then
  dry=1
  shift
fi
out=${1:-benchmarks/results/speed/record-$(git rev-parse --short HEAD 2>/dev/null || date -u +%Y%m%dT%H%M%SZ)}
python=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if ((dry)); then
  bench=(--rounds 1 --steps 1 --warmup 0 --no-memory --backbone "${FPT_SPEED_BACKBONE:?the dry run needs a tiny backbone}")
else
  bench=(--rounds 3)
  echo "speed_record: about 25 minutes on the quiet 2-core AVX-512 EPYC (75 when shared with ~8 jobs); nothing else should run." >&2
fi
mkdir -p "$out"
log="$out/speed_record.log"
{
  echo "# speed_record $(date -u +%FT%TZ) dry_run=$dry OMP_NUM_THREADS=$OMP_NUM_THREADS"
  echo "# commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
} >"$log"
(lscpu 2>/dev/null || grep -m1 -E 'model name|flags' /proc/cpuinfo) >"$out/lscpu.txt"
for precision in default fp32; do
  flags=()
  [[ $precision == fp32 ]] && flags=(--precision fp32)
  start=$SECONDS
  echo "speed_record: fpt bench ${bench[*]} ${flags[*]}" >&2
  echo "\$ fpt bench ${bench[*]} ${flags[*]} --out $out/record_$precision.json" >>"$log"
  "$python" -m fpt.cli bench "${bench[@]}" "${flags[@]}" --out "$out/record_$precision.json" >>"$log" 2>&1
  echo "# $((SECONDS - start)) s" >>"$log"
  cat "$out/record_$precision.txt"
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)" >>"$log"
