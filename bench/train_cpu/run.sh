#!/usr/bin/env bash
# bench/train_cpu/run.sh: one training step (forward, backward, SGD) of the
# full 3D ResNet-18 at batch 4, 3 x 16 x 112 x 112, float32, CE loss: our CPU
# backend (bench_train_cpu) beside Debian's PyTorch 1.13 on the same machine
# in the same run, alternating, ROUNDS times. PyTorch runs twice per round,
# with glibc malloc and with jemalloc (LD_PRELOAD libjemalloc2); its best is
# the baseline. Medians over all steps but each process's first (warm-up);
# peak RSS per process. Not a test: the machine is shared, check `uptime`.
# Ours runs with its defaults (oneDNN convolutions on the activation layout
# oneDNN picks on this CPU, when built with it) and prints the instruction
# set oneDNN dispatched to, the layout and the convolutions' seconds per
# direction; REF=1 adds a row with the reference vol2col + OpenBLAS
# convolutions (DFEW_TRAIN_CPU_CONV=ref), i.e. before oneDNN; LAYOUTS="ndhwc
# nCdhw8c" adds a row per layout forced with DFEW_TRAIN_CPU_LAYOUT.
# ISA=avx2 runs everything (ours and PyTorch, whose oneDNN is the same
# Debian libdnnl) with the kernels of a CPU without AVX-512: oneDNN capped
# with ONEDNN_MAX_CPU_ISA=AVX2 and OpenBLAS's Haswell kernels. On an AVX-512
# machine that is the AVX-512 machine capped to AVX2, not an AMD measurement.
# Usage: bench/train_cpu/run.sh [BUILD_DIR]
#   (env: ROUNDS=3 STEPS=3 BATCH=4 THREADS=nproc REF=0 LAYOUTS= ISA=native|avx2)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
ROUNDS=${ROUNDS:-3} STEPS=${STEPS:-3} BATCH=${BATCH:-4} THREADS=${THREADS:-$(nproc)} REF=${REF:-0}
LAYOUTS=${LAYOUTS:-} ISA=${ISA:-native}
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
PY=/usr/bin/python3
[ -x "$BUILD/bench/bench_train_cpu" ] || { echo "build first: meson compile -C $BUILD" >&2; exit 1; }
[ -f "$JEMALLOC" ] || { echo "install libjemalloc2 for the PyTorch baseline" >&2; exit 1; }
$PY -c 'import torch' 2>/dev/null || { echo "install python3-torch for the PyTorch baseline" >&2; exit 1; }
case $ISA in
native) ;;
avx2) export ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell ;;
*) echo "ISA=$ISA: use native or avx2" >&2; exit 2 ;;
esac
LOG=$(mktemp /tmp/bench_train_cpu.XXXXXX)
trap 'rm -f "$LOG"' EXIT
echo "ISA=$ISA ${ONEDNN_MAX_CPU_ISA:+(ONEDNN_MAX_CPU_ISA=$ONEDNN_MAX_CPU_ISA OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE) }$(grep -m1 'model name' /proc/cpuinfo)"
ours() { # row label, then environment assignments
  local label=$1
  shift
  env "$@" "$BUILD/bench/bench_train_cpu" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" \
    | sed "s/^/[$label] /" | tee -a "$LOG"
}
for r in $(seq "$ROUNDS"); do
  echo "round $r: $(uptime)"
  ours ours
  [ "$REF" = 1 ] && ours ours-ref DFEW_TRAIN_CPU_CONV=ref
  for l in $LAYOUTS; do ours "ours-$l" DFEW_TRAIN_CPU_LAYOUT="$l"; done
  $PY bench/train_cpu/torch_step.py --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" | sed 's/^/[torch-glibc] /' | tee -a "$LOG"
  LD_PRELOAD=$JEMALLOC $PY bench/train_cpu/torch_step.py --batch "$BATCH" --steps "$STEPS" --threads "$THREADS" \
    | sed 's/^/[torch-jemalloc] /' | tee -a "$LOG"
done
echo "end: $(uptime)"
$PY - "$LOG" <<'PY'
import re, statistics, sys
steps, rss, conv, info = {}, {}, {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"\[(\S+)\] \S+ step (\d+): ([0-9.]+) s", line)
    if m and int(m.group(2)) > 0:
        steps.setdefault(m.group(1), []).append(float(m.group(3)))
        c = re.search(r"conv fwd ([0-9.]+) bwd_d ([0-9.]+) bwd_w ([0-9.]+) s", line)
        if c:
            conv.setdefault(m.group(1), []).append([float(x) for x in c.groups()])
    m = re.match(r"\[(\S+)\] .*peak RSS (\d+) MB", line)
    if m:
        rss[m.group(1)] = max(rss.get(m.group(1), 0), int(m.group(2)))
    m = re.match(r"\[(\S+)\] (oneDNN isa: .*|conv3d: .*|torch .*oneDNN isa \S+)", line)
    if m:
        info[m.group(1)] = m.group(2).strip()
med = {k: statistics.median(v) for k, v in steps.items()}
best = min((k for k in med if k.startswith("torch")), key=lambda k: med[k])
print()
for k in info:
    print(f"{k:16} {info[k]}")
print(f"\n{'':16} {'median s/step':>14} {'steps':>6} {'peak RSS MB':>12} {'vs best torch':>14}   conv s/step fwd / bwd_d / bwd_w")
for k in ["ours", "ours-ref"] + sorted(k for k in med if k.startswith("ours-") and k != "ours-ref") + \
        ["torch-glibc", "torch-jemalloc"]:
    if k in med:
        cv = ""
        if k in conv:
            cv = " / ".join(f"{statistics.median(c[i] for c in conv[k]):.2f}" for i in range(3))
        print(f"{k:16} {med[k]:14.3f} {len(steps[k]):6d} {rss.get(k, 0):12d} {med[k] / med[best]:13.2f}x   {cv}")
low = min((k for k in rss if k.startswith("torch")), key=lambda k: rss[k])
print(f"baseline: {best}; ours / baseline = {med['ours'] / med[best]:.2f} (target <= 0.8); "
      f"peak memory ours / baseline = {rss['ours'] / rss[best]:.2f}, / the leaner PyTorch ({low}) = "
      f"{rss['ours'] / rss[low]:.2f}")
PY
