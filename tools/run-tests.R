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
Sys.setenv(NOT_CRAN = "true")

results <- testthat::test_dir(
  "tests/testthat",
  package = "depthwise",
  load_package = "installed",
  reporter = testthat::SummaryReporter$new(show_praise = FALSE),
  stop_on_failure = FALSE
)
df <- as.data.frame(results)
passed <- sum(df$passed)
failed <- sum(df$failed) + sum(df$error)
skipped <- sum(df$skipped)
cat(sprintf("%d passed, %d failed%s\n", passed, failed,
            if (skipped > 0) sprintf(", %d skipped", skipped) else ""))
quit(status = if (failed > 0) 1 else 0)
