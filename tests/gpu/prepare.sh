#!/usr/bin/env bash
# tests/gpu/prepare.sh: builds, on this (GPU-less) build machine, everything
# tests/gpu/check.sh runs on a GPU machine, and packs it into gpu-carry/ at
# the repository root (ignored by git): a release build of the CUDA and CPU
# trainer backends, the GPU test programs and the GPU benchmark, plus the
# shared libraries they need that the GPU machine lacks (OpenBLAS and its
# Fortran runtime, libgomp). The GPU machine brings its own driver (libcuda),
# cuDNN and cuBLAS (pip wheels of its PyTorch, or /usr/local/cuda); the CUDA
# runtime is linked statically. The files go compressed (xz) into
# gpu-carry/dfew-gpu.tar.xz; check.sh unpacks them into a temporary folder.
# Not a test itself; it fails when a binary does not resolve its libraries
# from the carry or the carry outgrows 50 MiB.
# Usage: tests/gpu/prepare.sh        (BUILD=build-gpu by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-gpu}
CARRY=gpu-carry
STAGE=$BUILD/gpu-stage
LIMIT=$((50 * 1024 * 1024))

# The CPU backend carried is the reference one (no oneDNN: the GPU tests check
# the CUDA backend against it, and libdnnl would add 40 MB to the carry).
# (--reconfigure: a build folder from before an option existed learns it)
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Dbuildtype=release -Dcuda=enabled -Donednn=disabled
else
  meson setup --reconfigure "$BUILD" -Dbuildtype=release -Dcuda=enabled -Donednn=disabled >/dev/null
fi
targets=(workers/train/dfew-train-cpu.so workers/train/cuda/dfew-train-cuda.so tests/trainer/test_train_ref
         tests/gpu/test_cuda_layers tests/gpu/test_cuda_train tests/gpu/test_train_job bench/bench_cuda_train)
ninja -C "$BUILD" "${targets[@]}"

rm -rf "$STAGE" "$CARRY"
mkdir -p "$STAGE/bin" "$STAGE/lib" "$CARRY"
for t in "${targets[@]}"; do
  cp "$BUILD/$t" "$STAGE/bin/"
done
strip --strip-debug "$STAGE"/bin/*

# What the GPU machine provides itself: the C and C++ runtimes, the driver,
# cuDNN, cuBLAS, zlib. Everything else a binary needs is carried.
provided='^(linux-vdso|libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64|libcuda|libcudnn[a-z_]*|libcublas|libcublasLt|libz)\.so'
for b in "$STAGE"/bin/*; do
  ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r soname path; do
  if [[ ! $soname =~ $provided ]]; then
    cp -L "$path" "$STAGE/lib/$soname"
  fi
done

# every carried binary must resolve what the GPU machine lacks from the carry
# (LD_LIBRARY_PATH comes before the binaries' RUNPATH, so this is what happens there)
bad=0
for b in "$STAGE"/bin/*; do
  while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [[ $soname =~ $provided ]] && continue
    case "$path" in
      "$PWD/$STAGE/lib/"*) ;;
      *) echo "prepare.sh: $(basename "$b") resolves $soname to $path, not to the carry" >&2; bad=1 ;;
    esac
  done < <(LD_LIBRARY_PATH="$PWD/$STAGE/lib" ldd "$b")
done
[ "$bad" = 0 ] || exit 1

{
  echo "dfew GPU carry, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
  echo "nvcc: $(nvcc --version | tail -1)"
  echo "cuDNN headers: $(awk '/define CUDNN_(MAJOR|MINOR|PATCHLEVEL) / {printf "%s ", $3}' /usr/local/cuda/include/cudnn_version.h)"
  (cd "$STAGE" && find . -type f -printf '%10s  %p\n' | sort -k2)
} > "$CARRY/MANIFEST.txt"
tar -C "$STAGE" -cf - bin lib | xz -9 -T0 > "$CARRY/dfew-gpu.tar.xz"
cat "$CARRY/MANIFEST.txt"
size=$(du -sb "$CARRY" | cut -f1)
echo "prepare.sh: $CARRY is $((size / 1024)) KiB (unpacked $(du -sk "$STAGE" | cut -f1) KiB)"
if [ "$size" -gt "$LIMIT" ]; then
  echo "prepare.sh: $CARRY is over 50 MiB" >&2
  exit 1
fi
echo "prepare.sh: ready; on the GPU machine run: bash tests/gpu/check.sh   (carrying $CARRY)"
