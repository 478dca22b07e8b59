#!/usr/bin/env bash
# Runs the whole test suite under valgrind memcheck, child R processes (the
# fuzz test's) included, and summarises every process's report. Fails unless
# there are 0 memcheck errors and 0 bytes definitely lost.
#
# Usage: bash tools/valgrind-tests.sh   (from the repository root; Linux)
#   DEPTHWISE_FUZZ_N=200 bash tools/valgrind-tests.sh   for a shorter run
# Takes a while: everything runs 20-50 times slower under valgrind.
set -euo pipefail
root=$(pwd)
[ -f "$root/DESCRIPTION" ] && [ -d "$root/tests/testthat" ] || {
  echo "Run this from the root of the depthwise repository." >&2; exit 1; }
start=$(date +%s)
if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null; }
  fi
  command -v valgrind >/dev/null || { echo "valgrind is not installed." >&2; exit 1; }
fi
work=$(mktemp -d)
# DEPTHWISE_VALGRIND_LOGS=dir keeps every process's full log there.
trap '[ -n "${DEPTHWISE_VALGRIND_LOGS:-}" ] && mkdir -p "$DEPTHWISE_VALGRIND_LOGS" && cp "$work"/vg/*.log "$DEPTHWISE_VALGRIND_LOGS"/ 2>/dev/null; rm -rf "$work"' EXIT

mkdir -p "$work/src" "$work/lib" "$work/vg"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$root" ls-files -z --cached --others --exclude-standard |
    (cd "$root" && xargs -0 cp --parents -t "$work/src")
else
  cp -r "$root/." "$work/src"
  rm -f "$work"/src/src/*.o "$work"/src/src/*.so
fi
Rscript "$root/tools/install-deps.R" >"$work/deps.log" 2>&1 || { cat "$work/deps.log"; exit 1; }
R CMD INSTALL --no-multiarch --preclean --library="$work/lib" "$work/src" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; exit 1; }

# One log per process (%p). Leaks are reported in full but only definite
# ones count as errors: R keeps much of its heap reachable at exit by design.
vg="valgrind --tool=memcheck --suppressions=$root/tools/valgrind.supp --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=30 --log-file=$work/vg/%p.log"
export DEPTHWISE_CHILD_DEBUGGER="$vg"     # the fuzz test's child runs under valgrind too
export DEPTHWISE_SLOW_BUILD=valgrind      # timing assertions off
export DEPTHWISE_FUZZ_TIMEOUT=${DEPTHWISE_FUZZ_TIMEOUT:-7200}
status=0
(cd "$root" && R -d "$vg" --vanilla --slave -f tools/test-installed.R --args "$work/lib") >"$work/tests.log" 2>&1 || status=$?

# Only the R processes' logs matter (valgrind also follows nothing else, as
# children are started through R's own front end with -d).
errors=0; lost=0; procs=0
for f in "$work"/vg/*.log; do
  grep -q "ERROR SUMMARY" "$f" || continue
  procs=$((procs + 1))
  e=$(grep "ERROR SUMMARY" "$f" | tail -1 | sed -E 's/.*ERROR SUMMARY: ([0-9,]+) errors.*/\1/' | tr -d ,)
  l=$(grep "definitely lost:" "$f" | tail -1 | sed -E 's/.*definitely lost: ([0-9,]+) bytes.*/\1/' | tr -d , || true)
  errors=$((errors + e)); lost=$((lost + ${l:-0}))
  if [ "$e" != 0 ] || [ "${l:-0}" != 0 ]; then
    echo "== $(basename "$f"): $e errors, ${l:-0} bytes definitely lost"
    # (a leak with indirect losses reads "N (D direct, I indirect) bytes in")
    grep -E "^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|[0-9,]+ (\([^)]*\) )?bytes in)" -A24 "$f" | head -200 || true
  fi
done
for f in "$work"/vg/*.log; do
  grep -q "ERROR SUMMARY" "$f" || continue
  cmd=$(grep -m1 "Command:" "$f" | sed -E 's/.*Command: //; s/ -f .*(test-installed\.R|callr-scr).*/ (\1)/')
  leaks=$(grep -E "(definitely|indirectly|possibly) lost:|still reachable:" "$f" |
    sed -E 's/^==[0-9]+== +//; s/ in [0-9,]+ blocks//' | paste -sd ';' - | sed 's/;/; /g')
  echo "  $(basename "$f" .log): $cmd: $(grep "ERROR SUMMARY" "$f" | tail -1 | sed -E 's/.*ERROR SUMMARY: ([0-9,]+ errors).*/\1/'); ${leaks:-no leak summary}"
done
echo "valgrind memcheck: $procs R process(es), $errors error(s), $lost bytes definitely lost"
echo "Valgrind run: $(( $(date +%s) - start )) s"
if [ "$status" -ne 0 ]; then grep -E "Failure|Error" -A15 "$work/tests.log" | head -100 || true; fi
[ "$errors" -eq 0 ] && [ "$lost" -eq 0 ] || status=1
tail -1 "$work/tests.log"
exit "$status"
