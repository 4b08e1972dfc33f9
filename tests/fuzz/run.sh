#!/usr/bin/env bash
# Builds dfew's libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang, ASan
# and UBSan, directly against the sources they need (the main build is gcc),
# and runs each for a while from its seed corpus (tests/fuzz/corpus/NAME/),
# one per core at a time (FUZZ_JOBS=N for another count).
#
#   tests/fuzz/run.sh                      every harness, 20 s each (CI)
#   tests/fuzz/run.sh --seconds 600        a longer run by hand
#   tests/fuzz/run.sh --seconds 60 config  one harness (or several)
#   tests/fuzz/run.sh --build-only
#
# Work files go to build-fuzz/ (objects, the inputs each run found in
# build-fuzz/corpus/NAME, crashes in build-fuzz/crashes/); the seed corpora
# in the tree are only read. A crash fails the run and names its input: copy
# it into tests/fuzz/corpus/NAME/ as a regression input once it is fixed.
# Without clang's fuzzer runtime (Debian: clang, libclang-rt-14-dev) it says
# so and exits 0, so that scripts/test.sh goes on; with DFEW_REQUIRE_FUZZ=1
# (CI: .ci/run) it fails instead, with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=20
build_only=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
all=(votes clips config xlsx dfew_names proto ctlreq faces clipu8)
[ ${#names[@]} -eq 0 ] && names=("${all[@]}")

CC=${FUZZ_CC:-clang}
out=build-fuzz
mkdir -p "$out/obj" "$out/bin" "$out/crashes"
probe="$out/probe.c"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$probe"
if ! command -v "$CC" >/dev/null || ! "$CC" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/probe" 2>/dev/null; then
  why="$CC with its fuzzer runtime is missing (Debian: apt-get install clang libclang-rt-14-dev, or scripts/setup-deps.sh)"
  if [ "${DFEW_REQUIRE_FUZZ:-0}" = 1 ]; then
    echo "fuzz: FAILED: $why; DFEW_REQUIRE_FUZZ=1 asks for the harnesses to run" >&2
    exit 1
  fi
  echo "fuzz: SKIPPED: $why; the harnesses were not run (DFEW_REQUIRE_FUZZ=1 makes this an error)"
  exit 0
fi

# What the meson build generates, made here so the script needs no build tree.
cat >"$out/dfew_build.h" <<EOF
#pragma once
#define DFEW_BINDIR "/usr/local/bin"
#define DFEW_DATADIR "/usr/local/share/dfew"
#define DFEW_TRAINDIR "/usr/local/lib/dfew/train"
#define DFEW_VERSION "fuzz"
EOF
mapfile -t schema < <(grep -o "'[0-9]\{4\}_[a-z_]*\.sql'" schema/meson.build | tr -d "'" | sed 's|^|schema/|')
python3 schema/embed_schema.py "$out/schema_sql.c" "${schema[@]}"

flags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize-recover=undefined -I"$out" -Ilib -Imedia -Ictl -I.)
pkgs="sqlite3 libavformat libavcodec libavutil libswscale libzip expat"
read -r -a cflags_pkg <<<"$(pkg-config --cflags $pkgs)"
read -r -a libs <<<"$(pkg-config --libs $pkgs) -lm"
sources=(lib/*.c media/clipfmt.c ctl/xlsx.c "$out/schema_sql.c")
objs=()
for src in "${sources[@]}"; do
  obj="$out/obj/$(echo "$src" | tr '/' '_').o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find lib media/clipfmt.h ctl/xlsx.h -newer "$obj" -name '*.h' | head -1)" ]; then
    "$CC" "${flags[@]}" "${cflags_pkg[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
for n in "${names[@]}"; do
  [ -f "tests/fuzz/fuzz_$n.c" ] || { echo "run.sh: no harness tests/fuzz/fuzz_$n.c (known: ${all[*]})" >&2; exit 2; }
  "$CC" "${flags[@]}" "${cflags_pkg[@]}" -fsanitize=fuzzer "tests/fuzz/fuzz_$n.c" "${objs[@]}" "${libs[@]}" \
    -o "$out/bin/fuzz_$n"
done
echo "fuzz: built ${names[*]} in $out/bin"
[ "$build_only" = 1 ] && exit 0

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# one harness per core at a time (each is single-threaded); reports in order
jobs=${FUZZ_JOBS:-$(nproc)}
fuzz_one() {
  local n=$1 dict=() log="$out/fuzz_$1.log"
  mkdir -p "$out/corpus/$n" "tests/fuzz/corpus/$n"
  [ -f "tests/fuzz/$n.dict" ] && dict=(-dict="tests/fuzz/$n.dict")
  local rc=0
  "$out/bin/fuzz_$n" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$out/crashes/$n-" "${dict[@]}" "$out/corpus/$n" "tests/fuzz/corpus/$n" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$out/fuzz_$n.rc"
}
running=0
for n in "${names[@]}"; do
  rm -f "$out/fuzz_$n.rc"
  fuzz_one "$n" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait
failed=()
for n in "${names[@]}"; do
  log="$out/fuzz_$n.log"
  if [ "$(cat "$out/fuzz_$n.rc" 2>/dev/null)" = 0 ]; then
    echo "fuzz: $n: $(grep -o '#[0-9]*.*DONE.*' "$log" | tail -1 || true) no crash in ${seconds} s" \
         "($(ls "$out/corpus/$n" | wc -l) new inputs)"
  else
    failed+=("$n")
    echo "fuzz: $n FAILED; the log is $log:"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written|artifact' "$log" | head -20
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} harness(es) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#names[@]} harness(es) ran ${seconds} s each without a crash"
