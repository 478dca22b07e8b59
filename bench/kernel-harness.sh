#!/bin/bash
# Builds bench/kernel-harness.cpp against the kernels in src/ (or in the
# source directory given by DW_SRC, e.g. another checkout) and runs it with
# the arguments given. Example, mbv2_b at avx512, 2000 calls, cold outputs:
#   bash bench/kernel-harness.sh 1 56 56 144 3 1 1 2 2000 8 24 20
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${DW_SRC:-$here/../src}
exe=$(mktemp -d)/kernel-harness
"${CXX:-g++}" -std=gnu++17 -O2 -fopenmp -I"$src" -o "$exe" "$here/kernel-harness.cpp" \
  "$src/kernel_fast.cpp" "$src"/kernel_isa_*.cpp
"$exe" "$@"
