# Runs the whole depthwise test suite: installs missing dependencies, builds
# and installs the package from this checkout into a temporary library, runs
# tests/testthat, and ends with one line "N passed, N failed[, N skipped]".
# Exits with status 1 if any test failed or errored.
#
# Usage: Rscript tools/run-tests.R   (from the repository root)

if (!file.exists("DESCRIPTION") || !dir.exists("tests/testthat")) {
  stop("Run this from the root of the depthwise repository.", call. = FALSE)
}
r <- file.path(R.home("bin"), "R")
source("tools/install-deps.R", local = new.env())

lib <- tempfile("depthwise-lib-")
dir.create(lib)
status <- system2(r, c("CMD", "INSTALL", "--no-multiarch", "--preclean", paste0("--library=", shQuote(lib)), "."))
if (status != 0) {
  cat("0 passed, 1 failed\n")
  quit(status = 1)
}
.libPaths(c(lib, .libPaths()))
source("tools/test-installed.R")  # runs the suite, prints the summary line, quits
