#!/usr/bin/env bash
# tests/gpu/check.sh: every GPU test of the CUDA trainer backend and the GPU
# benchmark, in one go, on a GPU machine (H100 / H200, CUDA 13 driver,
# PyTorch in python3). Runs from the repository root with the binaries that
# tests/gpu/prepare.sh packed into gpu-carry/ on the build machine; needs
# nothing else from this repository's build. Each step has its own timeout and
# the whole run a budget (DFEW_GPU_BUDGET_S, default 450 s), a failing step
# does not stop the others, and the benchmark comes last.
#
# Steps: the CPU backend against the PyTorch reference files (proves the
# carried build runs there), the CUDA backend against the same files (fp32),
# dfew-worker's train job (--backend auto picks CUDA; resume from a CUDA
# checkpoint; close to the CPU backend's loss),
# every CUDA layer against the CPU layer (again with every convolution forced
# through the channels-first fallback), the CUDA backend against the CPU
# backend (gradients, ten SGD steps, checkpoints, TF32/bf16, a learning run),
# the layer and reference-file tests again with convolutions through cuDNN's
# graph API (DFEW_CUDA_CONV_API=graph, steps *_graph; with DFEW_GPU_EXPLORE=1
# also the CPU-parity tests and memcheck),
# compute-sanitizer memcheck over the layer test when time allows, then the
# benchmark: bench_cuda_train (legacy and graph API) and bench_torch_r3d18.py
# on the same GPU.
#
# Writes check.log (everything), summary.txt (PASS/FAIL per step, worst
# errors, the benchmark table) and results.json into $OUT when set, else into
# gpu-report/. Exit status: 0 when every step passed, 1 otherwise.
# DFEW_GPU_STEPS=name,name runs only those steps (e.g. train_job: dfew-worker's
# train job on CUDA, for a short GPU session).
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
START=$(date +%s)
BUDGET=${DFEW_GPU_BUDGET_S:-450}
BENCH_RESERVE=${DFEW_GPU_BENCH_RESERVE_S:-200}
REPORT=${OUT:-$ROOT/gpu-report}
mkdir -p "$REPORT"
LOG=$REPORT/check.log
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dfew-gpu.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
STEPS=$WORK/steps.tsv
: > "$STEPS"
BENCH_JSON=$WORK/bench.jsonl
: > "$BENCH_JSON"

elapsed() { echo $(( $(date +%s) - START )); }
say() { printf '[check %4ss] %s\n' "$(elapsed)" "$*"; }

# ---------------------------------------------------------------- unpack the carry
CARRY=$ROOT/gpu-carry/dfew-gpu.tar.xz
if [ ! -f "$CARRY" ]; then
  say "no $CARRY: run tests/gpu/prepare.sh on the build machine and carry gpu-carry/"
  echo "FAIL no carry" > "$REPORT/summary.txt"
  exit 1
fi
if ! tar -xJf "$CARRY" -C "$WORK" 2>/dev/null; then
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$CARRY" "$WORK" || {
    say "cannot unpack $CARRY"; exit 1; }
fi
BIN=$WORK/bin
say "carry: $(head -1 "$ROOT/gpu-carry/MANIFEST.txt" 2>/dev/null)"

# ---------------------------------------------------------------- libraries
# cuDNN, cuBLAS (and NVRTC, which some cuDNN engines load) from the pip wheels
# of the machine's PyTorch, then from /usr/local/cuda.
libdirs=()
while IFS= read -r d; do
  [ -n "$d" ] && libdirs+=("$d")
done < <(python3 - <<'EOF' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
seen = []
for r in roots:
    for lib in sorted(glob.glob(os.path.join(r, "**", "lib*.so*"), recursive=True)):
        d = os.path.dirname(lib)
        if d not in seen:
            seen.append(d)
print("\n".join(seen))
EOF
)
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && libdirs+=("$d")
done
LDP=$WORK/lib
for d in "${libdirs[@]}"; do LDP=$LDP:$d; done
export LD_LIBRARY_PATH=$LDP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for l in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libcuda.so.1; do
  found=""
  IFS=: read -ra parts <<< "$LD_LIBRARY_PATH"
  for d in "${parts[@]}"; do
    if [ -e "$d/$l" ]; then found=$d/$l; break; fi
  done
  [ -z "$found" ] && found=$(ldconfig -p 2>/dev/null | awk -v l="$l" '$1 == l {print $NF; exit}')
  say "library $l: ${found:-NOT FOUND}"
done
for b in "$BIN"/*; do
  miss=$(ldd "$b" 2>&1 | awk '/not found/ {print $1}' | tr '\n' ' ')
  [ -n "$miss" ] && say "WARNING: $(basename "$b") does not find: $miss"
done

# OpenBLAS (the CPU backend) picks its kernels from the CPU model and falls
# back to slow SSE3 ones on a model it does not know, as virtual machines
# report: name the kernels from the CPU's features (as host.c does).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
  if [[ $flags == *avx512f* && $flags == *avx512bw* && $flags == *avx512dq* && $flags == *avx512vl* ]]; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif [[ $flags == *avx2* && $flags == *fma* ]]; then
    export OPENBLAS_CORETYPE=Haswell
  fi
fi
say "CPU: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
say "GPU: $(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,temperature.gpu,clocks.sm \
  --format=csv,noheader 2>&1 | head -2 | tr '\n' ' ')"
say "python3: $(command -v python3) $(timeout 60 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 | tail -1)"
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
[ "${DFEW_GPU_SANITIZER:-1}" = 0 ] && SANITIZER=

# ---------------------------------------------------------------- steps
# run_step NAME TIMEOUT RESERVE CMD...: runs CMD with min(TIMEOUT, what the
# budget leaves after RESERVE seconds kept for later steps); output to the
# log and to $WORK/NAME.out; one row in $STEPS.
# selected NAME: does DFEW_GPU_STEPS (when set) name the step?
selected() {
  [ -z "${DFEW_GPU_STEPS:-}" ] || [[ ",$DFEW_GPU_STEPS," == *",$1,"* ]]
}
run_step() {
  local name=$1 max=$2 reserve=$3
  shift 3
  selected "$name" || return
  local left=$(( BUDGET - $(elapsed) - reserve ))
  local t=$(( max < left ? max : left ))
  if [ "$t" -lt 15 ]; then
    say "=== $name: NOT RUN (budget spent)"
    printf '%s\tNOT RUN\t-\t0\tbudget spent\n' "$name" >> "$STEPS"
    return
  fi
  say "=== $name (timeout ${t}s): $*"
  local t0
  t0=$(date +%s)
  timeout --kill-after=10 "$t" "$@" > >(tee "$WORK/$name.out") 2>&1
  local rc=$?
  sleep 1 # let tee finish
  local secs=$(( $(date +%s) - t0 )) status
  case $rc in
    0) status=PASS ;;
    77) status=SKIP ;;
    124 | 137) status=TIMEOUT ;;
    *) status=FAIL ;;
  esac
  local key
  key=$(grep -E 'worst|checks|mismatches|skipped|FAIL|ERROR SUMMARY|clips/s' "$WORK/$name.out" 2>/dev/null | tail -3 | tr '\t\n' '  ' | cut -c1-300)
  say "=== $name: $status (exit $rc, ${secs}s)"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$key" >> "$STEPS"
}

# wanted NAME: is an optional step to run (DFEW_GPU_EXPLORE=1, or NAME in DFEW_GPU_STEPS)?
wanted() {
  [ "${DFEW_GPU_EXPLORE:-0}" = 1 ] || [[ ",${DFEW_GPU_STEPS:-}," == *",$1,"* ]]
}

REFDIR=$ROOT/tests/trainer
run_step cpu_ref 90 "$((BENCH_RESERVE + 180))" "$BIN/test_train_ref" "$REFDIR"
run_step cuda_ref 120 "$((BENCH_RESERVE + 140))" "$BIN/test_train_ref" "$REFDIR" "$BIN/dfew-train-cuda.so"
# dfew-worker's train job: --backend auto picks CUDA, a fold resumes from its CUDA checkpoint
run_step train_job 90 "$((BENCH_RESERVE + 120))" "$BIN/test_train_job" "$BIN" "$WORK"
run_step cuda_layers 90 "$((BENCH_RESERVE + 120))" "$BIN/test_cuda_layers"
run_step cuda_layers_ncdhw 60 "$((BENCH_RESERVE + 100))" env DFEW_CUDA_CONV_NCDHW=1 "$BIN/test_cuda_layers"
# convolutions through cuDNN's graph API (DFEW_CUDA_CONV_API=graph, not yet the
# default): every layer and the reference files (the CPU-parity tests and a
# sanitizer run with it too under DFEW_GPU_EXPLORE=1, or by name in
# DFEW_GPU_STEPS: cuda_train_graph, sanitizer_layers_graph)
run_step cuda_layers_graph 90 "$((BENCH_RESERVE + 100))" env DFEW_CUDA_CONV_API=graph "$BIN/test_cuda_layers"
run_step cuda_ref_graph 90 "$((BENCH_RESERVE + 100))" env DFEW_CUDA_CONV_API=graph "$BIN/test_train_ref" "$REFDIR" \
  "$BIN/dfew-train-cuda.so"
# PyTorch's own TF32 / bf16 gradient drift from fp32: the yardstick for ours
if run_step torch_precision 90 "$BENCH_RESERVE" python3 "$ROOT/tests/gpu/torch_grad_precision.py"; then :; fi
TP=$(grep -h '^{' "$WORK/torch_precision.out" 2>/dev/null | tail -1)
TORCH_TF32=$(printf '%s' "$TP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tf32"])' 2>/dev/null)
TORCH_BF16=$(printf '%s' "$TP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bf16"])' 2>/dev/null)
run_step cuda_train 240 "$BENCH_RESERVE" env DFEW_TORCH_GRAD_NMSE_TF32="$TORCH_TF32" \
  DFEW_TORCH_GRAD_NMSE_BF16="$TORCH_BF16" "$BIN/test_cuda_train" "$WORK"
if wanted cuda_train_graph; then
  # the CPU-parity tests with graph-API convolutions (about as long as cuda_train)
  run_step cuda_train_graph 240 "$((BENCH_RESERVE + 60))" env DFEW_CUDA_CONV_API=graph \
    DFEW_TORCH_GRAD_NMSE_TF32="$TORCH_TF32" DFEW_TORCH_GRAD_NMSE_BF16="$TORCH_BF16" "$BIN/test_cuda_train" "$WORK"
fi
if [ -n "$SANITIZER" ]; then
  # heuristic algorithm choice: cudnnFind's timing runs are slow under the sanitizer
  run_step sanitizer_layers 120 "$BENCH_RESERVE" env DFEW_CUDA_CONV_FIND=0 "$SANITIZER" --tool memcheck \
    --leak-check no --error-exitcode 9 "$BIN/test_cuda_layers"
  if wanted sanitizer_layers_graph; then
    # the graph API's plans (first usable engine in heuristic order, not timed)
    run_step sanitizer_layers_graph 120 "$BENCH_RESERVE" env DFEW_CUDA_CONV_API=graph DFEW_CUDA_CONV_FIND=0 \
      "$SANITIZER" --tool memcheck --leak-check no --error-exitcode 9 "$BIN/test_cuda_layers"
  fi
elif selected sanitizer_layers; then
  printf 'sanitizer_layers\tNOT RUN\t-\t0\tno compute-sanitizer\n' >> "$STEPS"
fi

# ---------------------------------------------------------------- benchmark (last)
BENCH_ARGS=(--batch 24 --frames 16 --size 112 --warmup 3 --steps 6 --rounds 3)
run_step bench_cuda 150 80 env DFEW_CUDA_VERBOSE=1 DFEW_CUDA_PROFILE=1 "$BIN/bench_cuda_train" --precisions fp32,tf32,bf16 "${BENCH_ARGS[@]}"
grep -h '^{' "$WORK/bench_cuda.out" >> "$BENCH_JSON" 2>/dev/null
run_step bench_cuda_graph 150 80 env DFEW_CUDA_CONV_API=graph DFEW_CUDA_VERBOSE=1 DFEW_CUDA_PROFILE=1 \
  "$BIN/bench_cuda_train" --precisions fp32,tf32,bf16 "${BENCH_ARGS[@]}"
grep -h '^{' "$WORK/bench_cuda_graph.out" >> "$BENCH_JSON" 2>/dev/null
# fp32 convolution policies side by side (their numbers stay in the log)
# (channels-last fp32 has no transform kernels in cuDNN's legacy API: "fast"
# alone changed nothing on an H200; channels-first with transforms did)
if wanted explore_layers_fp32_fast_ncdhw; then
  run_step explore_layers_fp32_fast_ncdhw 60 120 env DFEW_CUDA_FP32_CONV=fast DFEW_CUDA_CONV_NCDHW=1 \
    "$BIN/test_cuda_layers"
fi
if wanted explore_bench_fp32_fast_ncdhw; then
  run_step explore_bench_fp32_fast_ncdhw 60 80 env DFEW_CUDA_FP32_CONV=fast DFEW_CUDA_CONV_NCDHW=1 DFEW_CUDA_VERBOSE=1 \
    DFEW_CUDA_PROFILE=1 "$BIN/bench_cuda_train" --precisions fp32 "${BENCH_ARGS[@]}"
  grep -h '^{' "$WORK/explore_bench_fp32_fast_ncdhw.out" >> "$BENCH_JSON" 2>/dev/null
fi
# the graph API with PyTorch's fp32 engine set (FFT / Winograd allowed, tensor
# cores not): the like-for-like fp32 comparison with bench_torch; its layer
# test first (the same fp32 bounds)
if wanted explore_layers_fp32_graph_fast; then
  run_step explore_layers_fp32_graph_fast 60 120 env DFEW_CUDA_CONV_API=graph DFEW_CUDA_FP32_CONV=fast \
    "$BIN/test_cuda_layers"
fi
if wanted explore_bench_fp32_graph_fast; then
  run_step explore_bench_fp32_graph_fast 90 80 env DFEW_CUDA_CONV_API=graph DFEW_CUDA_FP32_CONV=fast \
    DFEW_CUDA_VERBOSE=1 DFEW_CUDA_PROFILE=1 "$BIN/bench_cuda_train" --precisions fp32 "${BENCH_ARGS[@]}"
  grep -h '^{' "$WORK/explore_bench_fp32_graph_fast.out" >> "$BENCH_JSON" 2>/dev/null
fi
run_step bench_torch 200 0 env PYTHONUNBUFFERED=1 python3 "$ROOT/bench/bench_torch_r3d18.py" \
  --precisions fp32,tf32,bf16 --formats "${DFEW_GPU_TORCH_FORMATS:-channels_last_3d,contiguous}" "${BENCH_ARGS[@]}"
grep -h '^{' "$WORK/bench_torch.out" >> "$BENCH_JSON" 2>/dev/null

# ---------------------------------------------------------------- summary
python3 - "$STEPS" "$BENCH_JSON" "$REPORT/summary.txt" "$REPORT/results.json" "$(elapsed)" <<'EOF'
import json, sys
steps_path, bench_path, summary_path, results_path, elapsed = sys.argv[1:6]
steps = []
for line in open(steps_path):
    f = line.rstrip("\n").split("\t")
    if len(f) >= 5:
        steps.append({"step": f[0], "status": f[1], "exit": f[2], "seconds": int(f[3]), "key": f[4]})
bench = []
for line in open(bench_path):
    try:
        bench.append(json.loads(line))
    except ValueError:
        pass
out = []
out.append("dfew GPU check: %s in %s s" % ("ALL PASSED" if steps and all(s["status"] == "PASS" for s in steps) else
                                          "SOME STEPS DID NOT PASS", elapsed))
out.append("")
out.append("%-30s %-8s %6s  %s" % ("step", "status", "secs", "last lines (worst errors)"))
for s in steps:
    out.append("%-30s %-8s %6s  %s" % (s["step"], s["status"], s["seconds"], s["key"][:160]))
out.append("")
gib = 2.0 ** 30
# the main table: the default convolution policy; the others are listed below it
ours = {b["precision"]: b for b in bench
        if b.get("impl") == "dfew-cuda" and "error" not in b and b.get("variant", "legacy") == "legacy"}
torch_best = {}
for b in bench:
    if b.get("impl") == "pytorch" and "error" not in b:
        p = b["precision"]
        if p not in torch_best or b["clips_per_s"] > torch_best[p]["clips_per_s"]:
            torch_best[p] = b
dev = next((b.get("device") for b in bench if b.get("device")), "?")
out.append("benchmark: r3d_18, batch 24, 3 x 16 x 112 x 112, SGD, CE; clips/s = median of rounds; device %s" % dev)
out.append("%-6s %12s %12s %-18s %7s %14s %14s %16s" % ("prec", "dfew clips/s", "torch clips/s", "torch format",
                                                       "ratio", "dfew dev GiB", "torch dev GiB",
                                                       "torch alloc GiB"))
for p in ("fp32", "tf32", "bf16"):
    o, t = ours.get(p), torch_best.get(p)
    oc = "%.1f" % o["clips_per_s"] if o else "-"
    tc = "%.1f" % t["clips_per_s"] if t else "-"
    ratio = "%.2f" % (o["clips_per_s"] / t["clips_per_s"]) if o and t else "-"
    om = "%.2f" % (o["mem_used_delta_bytes"] / gib) if o else "-"
    tm = "%.2f" % (t.get("mem_used_delta_bytes", 0) / gib) if t else "-"
    ta = "%.2f" % (t.get("mem_peak_allocated_bytes", 0) / gib) if t else "-"
    out.append("%-6s %12s %12s %-18s %7s %14s %14s %16s" % (p, oc, tc, t["memory_format"] if t else "-", ratio, om,
                                                          tm, ta))
for b in bench:
    if b.get("impl") == "pytorch" and "error" not in b:
        out.append("  pytorch %-5s %-16s %.1f clips/s" % (b["precision"], b["memory_format"], b["clips_per_s"]))
    if "error" in b:
        out.append("  %s %s: ERROR %s" % (b.get("impl"), b.get("precision"), b["error"]))
for b in bench:
    v = b.get("variant", "legacy")
    if b.get("impl") == "dfew-cuda" and "error" not in b and v != "legacy":
        t = torch_best.get(b["precision"])
        out.append("  dfew-cuda %-5s %-16s %.1f clips/s, ratio %s, device +%.2f GiB" % (
            b["precision"], v, b["clips_per_s"], "%.2f" % (b["clips_per_s"] / t["clips_per_s"]) if t else "-",
            b["mem_used_delta_bytes"] / gib))
for p, o in ours.items():
    out.append("  dfew-cuda %-5s own allocations %.2f GiB (params %.2f, activations %.2f, workspace %.2f)" % (
        p, o["mem_own_bytes"] / gib, o["param_bytes"] / gib, o["activation_bytes"] / gib,
        o["workspace_bytes"] / gib))
text = "\n".join(out) + "\n"
open(summary_path, "w").write(text)
json.dump({"steps": steps, "bench": bench, "elapsed_s": int(elapsed)}, open(results_path, "w"), indent=1)
print(text)
EOF
say "report in $REPORT (check.log, summary.txt, results.json)"
sleep 1 # lets tee write the last lines into check.log
if grep -qv $'\tPASS\t' "$STEPS"; then
  exit 1
fi
exit 0
