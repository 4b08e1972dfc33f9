#!/usr/bin/env bash
# Installs every Debian 12 package dfew needs to build, run and test. Idempotent:
# packages already present are skipped, so a second run does nothing.
set -euo pipefail

PKGS=(
  # build
  meson ninja-build pkg-config gcc g++
  # runtime libraries
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
  libuv1-dev libsqlite3-dev libcurl4-openssl-dev
  libdlib-dev libdlib-data libopenblas-dev
  # dfewctl import reads the DFEW release's annotation.xlsx (a zip of XML)
  libzip-dev libexpat1-dev
  # the CPU trainer's convolutions (optional at build time: meson -Donednn)
  libdnnl-dev
  # tools and real data used by the demo and the tests
  sqlite3 ffmpeg forensics-samples-files python3 python3-numpy procps
  # a second Fleiss' kappa to check ours against (tests/integration/test_labels.py)
  python3-statsmodels
  # an independent .xlsx writer for the annotation.xlsx import test
  python3-openpyxl
  # man pages (docs/mkman.py; test_docs renders them as lintian does) and the
  # bash completion's install directory (bash-completion.pc)
  man-db bash-completion
  # the Debian package (packaging/debian; tests/package/test_deb.py)
  dpkg-dev debhelper lintian
  # dfew-web: its HTTP library; its tests drive Debian's headless chromium
  # through the DevTools protocol (python3-websocket)
  libmicrohttpd-dev chromium python3-websocket
  # libFuzzer harnesses (tests/fuzz/run.sh): clang with its fuzzer runtime
  clang libclang-rt-14-dev
  # the Slurm executor's tests and benchmark: a one-node cluster (tests/slurm/cluster.sh)
  slurm-wlm slurmctld slurmd slurm-client munge
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
