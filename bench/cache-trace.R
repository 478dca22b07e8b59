# Runs channels_last suite shapes under bench/run.R's rotation rule (each
# shape at 1 and 2 threads, 0.25 s per case per round, 3 rounds, the order
# shifted each round) and prints every call of one case in the first round
# with what the output cache did during it: hits (h; s of them served by a
# piece split off a larger block), blocks joined on return (j), misses (m,
# a fresh block), the minor (c) and full (f) collections the allocator
# asked for (R's own collections show only as a change in the cached
# blocks), and the cache's blocks after it. Then the pooled median of every case.
#
#   Rscript bench/cache-trace.R ["k5 1"] [shapes]
#
# The case is "<shape> <threads>"; shapes is a comma-separated subset of
# bench/shapes.csv (default: mbv2_b,big_batch,k5,dil2,large), run in that
# file's order. This is not the bench's whole rotation (run.R also runs
# channels_first, the other shapes and the R call floor between these),
# so the cache's contents differ from the bench's. Uses the depthwise
# installed in the library path (R_LIBS to pick another build).
suppressMessages(library(depthwise))
args <- commandArgs(TRUE)
trace_case <- if (length(args) >= 1) args[1] else "k5 1"
wanted <- strsplit(if (length(args) >= 2) args[2] else "mbv2_b,big_batch,k5,dil2,large", ",")[[1]]
here <- if (file.exists("bench/shapes.csv")) "bench" else if (file.exists("shapes.csv")) "." else
  stop("run from the repository root or from bench/", call. = FALSE)
shapes <- utils::read.csv(file.path(here, "shapes.csv"), stringsAsFactors = FALSE)
unknown <- setdiff(wanted, shapes$name)
if (length(unknown)) stop("unknown shape(s): ", paste(unknown, collapse = ", "), call. = FALSE)
picked <- shapes$name[shapes$name %in% wanted]
if (!trace_case %in% paste(rep(picked, each = 2), 1:2)) {
  stop("no case \"", trace_case, "\" among these shapes (add its shape to the second argument)", call. = FALSE)
}
cache_stats <- getFromNamespace("dw_output_cache", "depthwise")
if (cache_stats()[["enabled"]] == 0) stop("this build has no output cache (not Linux)", call. = FALSE)
now <- function() as.numeric(Sys.time())

cases <- list()
for (nm in picked) {
  sh <- shapes[shapes$name == nm, ]
  x <- array(stats::runif(sh$N * sh$H * sh$W * sh$C, -1, 1), c(sh$N, sh$H, sh$W, sh$C))
  layer <- layer_depthwise_conv_2d(kernel_size = sh$k, strides = sh$s, padding = sh$pad,
                                   dilation_rate = sh$d, depth_multiplier = sh$M)
  layer(x)
  for (th in 1:2) {
    cases[[paste(nm, th)]] <- local({
      x <- x; layer <- layer; th <- th
      list(threads = th, fn = function() layer(x))
    })
  }
}

show_call <- function(us, before, after) {
  d <- after - before
  # Builds before session 16 neither split nor join blocks.
  pieces <- if ("splits" %in% names(d)) sprintf(" s%d j%d", d[["splits"]], d[["joins"]]) else ""
  cat(sprintf("%8.0f us  h%d%s m%d c%d f%d  cached %d blocks, %.0f MB; live %d\n", us, d[["hits"]], pieces,
              d[["misses"]], d[["collections"]], d[["full_collections"]], after[["cached_blocks"]],
              after[["cached_bytes"]] / 2^20, after[["live_blocks"]]))
}

# As bench/run.R's time_calls(): 2 warm-up calls, then calls until 0.25 s
# and at least 20 calls (or 1 s and 3 calls).
time_calls <- function(f, trace) {
  for (w in 1:2) f()
  t <- numeric(0)
  start <- now()
  repeat {
    before <- if (trace) cache_stats()
    t0 <- now()
    f()
    t <- c(t, now() - t0)
    if (trace) show_call(1e6 * t[length(t)], before, cache_stats())
    spent <- now() - start
    if (length(t) >= 20 && spent >= 0.25) break
    if (length(t) >= 3 && spent >= 1) break
  }
  t
}

n <- length(cases)
times <- list()
for (r in 1:3) {
  order <- ((seq_len(n) - 1L + (r - 1L) * max(1L, n %/% 3L)) %% n) + 1L
  for (i in order) {
    nm <- names(cases)[i]
    set_depthwise_threads(cases[[i]]$threads)
    trace <- r == 1 && nm == trace_case
    if (trace) cat("round 1,", nm, "\n")
    t <- time_calls(cases[[i]]$fn, trace)
    times[[nm]] <- c(times[[nm]], t)
  }
}
set_depthwise_threads(NULL)
for (nm in names(times)) cat(sprintf("%-12s pooled median %8.0f us over %d calls\n", nm, 1e6 * stats::median(times[[nm]]), length(times[[nm]])))
