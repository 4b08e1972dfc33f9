#!/usr/bin/env bash
# The README's second command, and what CI runs: installs what is missing,
# builds, runs the whole test suite, then builds again with AddressSanitizer
# and UndefinedBehaviorSanitizer and runs the suite once more.
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
  meson test -C build-asan --print-errorlogs --timeout-multiplier 3
fi
echo "test.sh: all tests passed"
