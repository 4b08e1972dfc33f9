#!/usr/bin/env bash
# The README's second command, and what CI runs: installs what is missing,
# builds, runs the whole test suite, then builds again with AddressSanitizer
# and UndefinedBehaviorSanitizer and runs the suite once more, then runs the
# fuzz harnesses (tests/fuzz/run.sh) for a short time each.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
meson compile -C build
meson test -C build --print-errorlogs

if [ "${DFEW_SKIP_SANITIZERS:-0}" != 1 ]; then
  if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan -Db_sanitize=address,undefined -Dbuildtype=debug
  fi
  meson compile -C build-asan
  # the package suite (tests/package: build, install, purge the .deb) ran above;
  # it builds its own copy, so a sanitizer build adds nothing to it
  # to keep CI short the sanitizer pass leaves out what the plain pass has
  # already run and costs minutes here: the package build (tests/package),
  # the Slurm cluster tests (2.3 min under ASan; they pass there too:
  # meson test -C build-asan --suite slurm) and the trainer's AVX2-capped
  # twins (tests/trainer/meson.build)
  meson test -C build-asan --print-errorlogs --timeout-multiplier 3 --no-suite package --no-suite slurm \
    --no-suite trainer_avx2
  # libFuzzer harnesses of every parser of outside input, 20 s each under
  # ASan and UBSan (clang; skipped with a message when its fuzzer runtime
  # is missing). A longer run by hand: tests/fuzz/run.sh --seconds 600
  tests/fuzz/run.sh --seconds "${DFEW_FUZZ_SECONDS:-20}"
fi
echo "test.sh: all tests passed"
