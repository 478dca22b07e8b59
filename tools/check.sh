#!/usr/bin/env bash
# Builds the package tarball and runs R CMD check --as-cran on it, offline.
# Fails if the check reports any ERROR or WARNING; prints the NOTEs.
# Usage: bash tools/check.sh   (from the repository root)
set -euo pipefail
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
R CMD build --no-manual "$root" >build.log 2>&1 || { cat build.log; exit 1; }
tarball=$(ls depthwise_*.tar.gz)
echo "built $tarball ($(du -k "$tarball" | cut -f1) KiB)"
# Network checks (CRAN incoming, URLs) are off: CI and developers are offline.
export _R_CHECK_CRAN_INCOMING_REMOTE_=false
export _R_CHECK_SYSTEM_CLOCK_=FALSE
export _R_CHECK_LIMIT_CORES_=TRUE
status=0
R CMD check --as-cran --no-manual "$tarball" >check.log 2>&1 || status=$?
grep -E "^\* checking|^Status|NOTE|WARNING|ERROR" check.log | grep -vE "\.\.\. OK$" || true
if [ "$status" -ne 0 ] || grep -qE "^Status:.*(ERROR|WARNING)" check.log; then
  echo "R CMD check failed; full log follows" >&2
  cat check.log >&2
  for f in depthwise.Rcheck/00install.out depthwise.Rcheck/tests/testthat.Rout.fail; do
    [ -f "$f" ] && { echo "== $f" >&2; tail -80 "$f" >&2; }
  done
  exit 1
fi
grep -A30 -E "^\* checking.*NOTE$" check.log || true
echo "R CMD check: $(grep '^Status' check.log)"
