# Peak memory of one forward call on the `large` benchmark shape
# (1 x 512 x 512 x 32, kernel 3, padding "same"): how much it takes beyond
# its input, in R's vector heap (gc()'s "max used") and in the process's
# resident memory (peak RSS, VmHWM, reset through /proc/self/clear_refs;
# Linux only). A forward call should take its 64 MiB output plus a small,
# bounded scratch space, and no copy of the 64 MiB input; with the output
# cache holding a block of the right size (the usual case in a loop), not
# even the output's 64 MiB.
#
# Usage: Rscript tools/peak-memory.R   (from the repository root; installs
# this checkout into a temporary library first)

if (!file.exists("DESCRIPTION")) stop("Run this from the root of the depthwise repository.", call. = FALSE)
lib <- tempfile("depthwise-lib-")
dir.create(lib)
r <- file.path(R.home("bin"), "R")
if (system2(r, c("CMD", "INSTALL", "--no-multiarch", "--preclean", paste0("--library=", shQuote(lib)), "."),
            stdout = FALSE, stderr = FALSE) != 0) {
  stop("R CMD INSTALL failed", call. = FALSE)
}

measure <- function(lib, threads, warm_cache) {
  .libPaths(c(lib, .libPaths()))
  library(depthwise)
  status <- function(field) {
    line <- grep(paste0("^", field, ":"), readLines("/proc/self/status"), value = TRUE)
    as.numeric(gsub("[^0-9]", "", line)) / 1024  # MiB
  }
  set_depthwise_threads(threads)
  x <- random_uniform(c(1, 512, 512, 32), seed = 1)
  layer <- layer_depthwise_conv_2d(kernel_size = 3, padding = "same")
  build(layer, dim(x))
  invisible(layer(x))  # warm up: code pages, OpenMP thread pool
  invisible(gc())
  # The warm-up output's block is now in the output cache, ready to be
  # reused (no new memory at all); emptied, the call maps fresh memory.
  if (!warm_cache) depthwise:::dw_output_cache(release = TRUE)
  resettable <- tryCatch({
    writeLines("5", "/proc/self/clear_refs")
    TRUE
  }, error = function(e) FALSE, warning = function(w) FALSE)
  rss_before <- status("VmRSS")
  heap_before <- gc(reset = TRUE)[2, 2]
  t0 <- proc.time()[["elapsed"]]
  y <- layer(x)
  seconds <- proc.time()[["elapsed"]] - t0
  heap_peak <- gc()[2, 6]
  rss_peak <- status("VmHWM")
  c(threads = get_depthwise_threads(), input_mib = 8 * length(x) / 2^20, output_mib = 8 * length(y) / 2^20,
    heap_extra_mib = heap_peak - heap_before, rss_extra_mib = rss_peak - rss_before,
    resettable = resettable, seconds = seconds)
}

if (!file.exists("/proc/self/status")) stop("This measurement reads /proc (Linux).", call. = FALSE)
cases <- expand.grid(threads = c(1, 2), warm_cache = c(FALSE, TRUE))
rows <- lapply(seq_len(nrow(cases)), function(i) {
  c(callr::r(measure, list(lib, cases$threads[i], cases$warm_cache[i])), warm_cache = cases$warm_cache[i])
})
for (m in rows) {
  cat(sprintf(paste0("threads %d, output cache %s: input %.1f MiB, output %.1f MiB; peak above the state before the call: ",
                     "R heap +%.1f MiB, resident memory +%.1f MiB%s; %.3f s\n"),
              as.integer(m[["threads"]]), if (m[["warm_cache"]]) "warm" else "empty",
              m[["input_mib"]], m[["output_mib"]], m[["heap_extra_mib"]],
              m[["rss_extra_mib"]], if (m[["resettable"]]) "" else " (peak RSS not resettable: an upper bound)",
              m[["seconds"]]))
}
