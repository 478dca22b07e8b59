#!/usr/bin/env bash
# Builds depthwise with AddressSanitizer and UndefinedBehaviorSanitizer
# (-fsanitize=address,undefined -fno-omit-frame-pointer, GCC) and runs the
# whole test suite on that build, child R processes included. R itself is not
# instrumented, so the ASan runtime is preloaded (LD_PRELOAD), as for any
# sanitized shared library loaded into an ordinary program.
#
# Fails if a test fails or any sanitizer report appears; ends with the test
# runner's "N passed, N failed" line.
#
# Usage: bash tools/check-sanitizers.sh   (from the repository root; Linux, GCC)
set -euo pipefail
root=$(pwd)
[ -f "$root/DESCRIPTION" ] && [ -d "$root/tests/testthat" ] || {
  echo "Run this from the root of the depthwise repository." >&2; exit 1; }
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cxx=${SANITIZER_CXX:-g++}
libasan=$("$cxx" -print-file-name=libasan.so)
if [ ! -e "$libasan" ] || [ "$libasan" = "libasan.so" ]; then
  echo "libasan.so not found for $cxx (GCC's libasan, part of libgcc-*-dev)." >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    ver=$("$cxx" -dumpversion | cut -d. -f1)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "libgcc-$ver-dev" >/dev/null
    libasan=$("$cxx" -print-file-name=libasan.so)
  fi
  [ -e "$libasan" ] || exit 1
fi

# Every C++ standard R may pick compiles and links with the sanitizers; any
# undefined behaviour aborts (no recovery), so it cannot scroll past.
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cat >"$work/Makevars" <<EOF
CXX = $cxx $flags
CXX11 = $cxx $flags
CXX14 = $cxx $flags
CXX17 = $cxx $flags
CXXFLAGS = -g -O1
CXX11FLAGS = -g -O1
CXX14FLAGS = -g -O1
CXX17FLAGS = -g -O1
EOF

# Build from a clean copy, so no object file from an ordinary build is reused.
mkdir -p "$work/src" "$work/lib"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$root" ls-files -z --cached --others --exclude-standard |
    (cd "$root" && xargs -0 cp --parents -t "$work/src")
else
  cp -r "$root/." "$work/src"
  rm -f "$work"/src/src/*.o "$work"/src/src/*.so
fi
Rscript "$root/tools/install-deps.R" >"$work/deps.log" 2>&1 || { cat "$work/deps.log"; exit 1; }
echo "Building with $flags"
R_MAKEVARS_USER="$work/Makevars" R CMD INSTALL --no-multiarch --preclean --no-test-load \
  --library="$work/lib" "$work/src" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
grep -q -- "-fsanitize=address,undefined" "$work/install.log" || {
  echo "The sanitizer flags did not reach the compiler:" >&2; cat "$work/install.log" >&2; exit 1; }

# detect_leaks=0: R itself does not free everything at exit (tools/valgrind-tests.sh
# covers leaks). Freshly allocated memory is filled with 0xbe so that a read
# of uninitialised memory changes results (and the garbage tests see it).
export ASAN_OPTIONS="detect_leaks=0:malloc_fill_byte=190:max_malloc_fill_size=1073741824:log_path=$work/asan"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$work/ubsan"
export DEPTHWISE_SLOW_BUILD=sanitizers  # timing assertions off; everything else on
status=0
(cd "$root" && LD_PRELOAD="$libasan" Rscript tools/test-installed.R "$work/lib") >"$work/tests.log" 2>&1 || status=$?
reports=$(ls "$work"/asan.* "$work"/ubsan.* 2>/dev/null || true)
# Reports that went to a child's stderr instead of a log file end up in the test log.
grep -qE "runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer" "$work/tests.log" && status=1
if [ -n "$reports" ]; then
  status=1
  for f in $reports; do echo "== $f"; head -60 "$f"; done
fi
if [ "$status" -ne 0 ]; then
  grep -E "Failure|Error|runtime error|AddressSanitizer" -A20 "$work/tests.log" | head -200 || true
fi
echo "Sanitizer run: $(( $(date +%s) - start )) s, $(echo "$reports" | grep -c . || true) sanitizer report file(s)"
tail -1 "$work/tests.log"
exit "$status"
