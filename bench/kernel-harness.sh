#!/bin/bash
# Builds bench/kernel-harness.cpp against the kernels in src/ (or in the
# source directory given by DW_SRC, e.g. another checkout) and runs it with
# the arguments given. Example, mbv2_b at avx512, 2000 calls, cold outputs:
#   bash bench/kernel-harness.sh 1 56 56 144 3 1 1 2 2000 8 24 20
# With HARNESS_EXE=path the program is built there once and reused by later
# calls with the same path (delete it to rebuild), so that builds can be
# run alternately without compiling each time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${DW_SRC:-$here/../src}
exe=${HARNESS_EXE:-$(mktemp -d)/kernel-harness}
if [ ! -x "$exe" ]; then
  obj=$(mktemp -d)
  pids=()
  for f in "$here/kernel-harness.cpp" "$src/kernel_fast.cpp" "$src"/kernel_isa_*.cpp; do
    "${CXX:-g++}" -std=gnu++17 -O2 -fopenmp -I"$src" -c "$f" -o "$obj/$(basename "$f" .cpp).o" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  "${CXX:-g++}" -fopenmp -o "$exe" "$obj"/*.o
  rm -rf "$obj"
fi
"$exe" "$@"
