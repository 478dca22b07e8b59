# Runs tests/testthat on the installed depthwise and ends with one line
# "N passed, N failed[, N skipped]"; exits with status 1 if any test failed
# or errored. A library given as the first argument goes first on the
# library path (the sanitizer and valgrind builds). Shared by
# tools/run-tests.R, tools/check-sanitizers.sh and tools/valgrind-tests.sh.
#
# Usage: Rscript tools/test-installed.R [library]   (from the repository root)

lib <- commandArgs(TRUE)[1]
if (!is.na(lib) && nzchar(lib)) .libPaths(c(lib, .libPaths()))
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
