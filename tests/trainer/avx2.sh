#!/bin/sh
# avx2.sh: runs a trainer test program with the kernels a CPU without AVX-512
# gets (AMD's EPYC, older Intel): OpenBLAS's Haswell kernels and oneDNN capped
# at AVX2, so that a build machine with AVX-512 tests those too. Not a CPU
# emulator: on a CPU without AVX2 and FMA it skips (exit 77, meson's SKIP).
# Usage: avx2.sh PROGRAM [ARGS...]
if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
    echo "skipped: this CPU has no AVX2 and FMA"
    exit 77
fi
# OpenBLAS reads OPENBLAS_CORETYPE when it loads; oneDNN 2.x reads
# ONEDNN_MAX_CPU_ISA (and its older name DNNL_MAX_CPU_ISA) at its first use.
OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 exec "$@"
