#!/usr/bin/env bash
# bench/train_cpu/run.sh: one training step (forward, backward, SGD) of the
# full 3D ResNet-18 at batch 4, 3 x 16 x 112 x 112, float32, CE loss: our CPU
# backend (bench_train_cpu) beside Debian's PyTorch 1.13 on the same machine
# in the same run, alternating, ROUNDS times. PyTorch runs twice per round,
# with glibc malloc and with jemalloc (LD_PRELOAD libjemalloc2); its best is
# the baseline. Medians over all steps but each process's first (warm-up);
# peak RSS per process. Not a test: the machine is shared, check `uptime`.
# Ours runs with its default convolutions (oneDNN, channels-last, when built
# with it); REF=1 adds a row with the reference vol2col + OpenBLAS ones
# (DFEW_TRAIN_CPU_CONV=ref), i.e. before oneDNN.
# Usage: bench/train_cpu/run.sh [BUILD_DIR]   (env: ROUNDS=3 STEPS=3 BATCH=4 THREADS=2 REF=0)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
ROUNDS=${ROUNDS:-3} STEPS=${STEPS:-3} BATCH=${BATCH:-4} THREADS=${THREADS:-$(nproc)} REF=${REF:-0}
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
PY=/usr/bin/python3
[ -x "$BUILD/bench/bench_train_cpu" ] || { echo "build first: meson compile -C $BUILD" >&2; exit 1; }
[ -f "$JEMALLOC" ] || { echo "install libjemalloc2 for the PyTorch baseline" >&2; exit 1; }
$PY -c 'import torch' 2>/dev/null || { echo "install python3-torch for the PyTorch baseline" >&2; exit 1; }
LOG=$(mktemp /tmp/bench_train_cpu.XXXXXX)
trap 'rm -f "$LOG"' EXIT
for r in $(seq "$ROUNDS"); do
  echo "round $r: $(uptime)"
  "$BUILD/bench/bench_train_cpu" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" | sed 's/^/[ours] /' | tee -a "$LOG"
  if [ "$REF" = 1 ]; then
    DFEW_TRAIN_CPU_CONV=ref "$BUILD/bench/bench_train_cpu" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" \
      | sed 's/^/[ours-ref] /' | tee -a "$LOG"
  fi
  $PY bench/train_cpu/torch_step.py --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" | sed 's/^/[torch-glibc] /' | tee -a "$LOG"
  LD_PRELOAD=$JEMALLOC $PY bench/train_cpu/torch_step.py --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" \
    | sed 's/^/[torch-jemalloc] /' | tee -a "$LOG"
done
$PY - "$LOG" <<'PY'
import re, statistics, sys
steps, rss = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"\[(\S+)\] \S+ step (\d+): ([0-9.]+) s", line)
    if m and int(m.group(2)) > 0:
        steps.setdefault(m.group(1), []).append(float(m.group(3)))
    m = re.match(r"\[(\S+)\] .*peak RSS (\d+) MB", line)
    if m:
        rss[m.group(1)] = max(rss.get(m.group(1), 0), int(m.group(2)))
med = {k: statistics.median(v) for k, v in steps.items()}
best = min((k for k in med if k.startswith("torch")), key=lambda k: med[k])
print(f"\n{'':16} {'median s/step':>14} {'steps':>6} {'peak RSS MB':>12} {'vs best torch':>14}")
for k in ("ours", "ours-ref", "torch-glibc", "torch-jemalloc"):
    if k in med:
        print(f"{k:16} {med[k]:14.3f} {len(steps[k]):6d} {rss.get(k, 0):12d} {med[k] / med[best]:13.2f}x")
low = min((k for k in rss if k.startswith("torch")), key=lambda k: rss[k])
print(f"baseline: {best}; ours / baseline = {med['ours'] / med[best]:.2f} (target <= 1.0, stretch 0.8); "
      f"peak memory ours / baseline = {rss['ours'] / rss[best]:.2f}, / the leaner PyTorch ({low}) = "
      f"{rss['ours'] / rss[low]:.2f}")
PY
