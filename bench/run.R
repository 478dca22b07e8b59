# Benchmark of layer_depthwise_conv_2d() on the shape suite of the speed issue.
#
#   Rscript bench/run.R            (from the repository root; ~5 minutes)
#   Rscript bench/run.R --quick    (one round, shorter budgets: a smoke run)
#   Rscript bench/run.R --no-install  (use the depthwise already installed)
#
# Installs this checkout into a temporary library, then times a built layer
# called on an R array (returning an R array, in double) at 1 and 2 threads,
# beside the package's C++ reference kernel and a vectorised plain-R
# implementation, and prints a markdown report (also written to
# bench/RESULTS.md): microseconds, GFLOP/s, GB/s, % of the double-precision
# roofline, and ratios to the peer numbers recorded in bench/peers.csv.
#
# Method: every case is timed in several interleaved rounds (the case order
# rotates each round); a round calls the layer until it has >= 20 calls and
# >= 0.25 s (or >= 3 calls for slow cases). The reported time is the median
# of all calls pooled; "spread" is max/min of the per-round medians (the
# noise indicator). Machine limits (FMA peak, triad bandwidth per cache
# level) are in bench/machine.csv, measured by the anchor harness on this
# machine kind; the roofline uses the anchors' rule: max(flops / FMA peak,
# bytes / triad bandwidth of the level the in+out+weights bytes fit in).

args <- commandArgs(TRUE)
quick <- "--quick" %in% args
here <- if (file.exists("bench/run.R")) "bench" else if (file.exists("run.R")) "." else
  stop("Run from the repository root: Rscript bench/run.R", call. = FALSE)
root <- normalizePath(file.path(here, ".."))

if (!"--no-install" %in% args) {
  lib <- tempfile("depthwise-bench-lib-")
  dir.create(lib)
  status <- system2(file.path(R.home("bin"), "R"),
                    c("CMD", "INSTALL", "--no-multiarch", "--preclean", "--no-test-load",
                      paste0("--library=", shQuote(lib)), shQuote(root)),
                    stdout = FALSE, stderr = FALSE)
  if (status != 0) stop("installing the package failed", call. = FALSE)
  .libPaths(c(lib, .libPaths()))
}
suppressPackageStartupMessages(library(depthwise))
dw_forward <- getFromNamespace("dw_forward", "depthwise")
dw_isa <- getFromNamespace("dw_isa", "depthwise")

shapes <- read.csv(file.path(here, "shapes.csv"), stringsAsFactors = FALSE)
peers <- read.csv(file.path(here, "peers.csv"), stringsAsFactors = FALSE)
machine <- read.csv(file.path(here, "machine.csv"))

rounds <- if (quick) 1L else 3L
budget <- if (quick) 0.1 else 0.25

# ------------------------------------------------------------------ helpers
now <- function() as.numeric(Sys.time())
load_avg <- function() {
  if (file.exists("/proc/loadavg")) paste(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3], collapse = " ") else "?"
}

out_size <- function(n, k, s, d, pad) {
  span <- (k - 1) * d + 1
  if (pad == "same") ceiling(n / s) else (n - span) %/% s + 1
}

geometry <- function(sh) {
  oh <- out_size(sh$H, sh$k, sh$s, sh$d, sh$pad)
  ow <- out_size(sh$W, sh$k, sh$s, sh$d, sh$pad)
  elems <- sh$N * sh$H * sh$W * sh$C + sh$N * oh * ow * sh$C * sh$M + sh$k^2 * sh$C * sh$M
  list(oh = oh, ow = ow, flops = 2 * sh$k^2 * sh$N * oh * ow * sh$C * sh$M, bytes = 8 * elems)
}

roofline <- function(flops, bytes, threads) {
  m <- machine[machine$threads == threads, ]
  tier <- if (bytes <= 32 * 1024 * threads) c("L1", m$triad_l1) else
    if (bytes <= 1024^2 * threads) c("L2", m$triad_l2) else
    if (bytes <= 16 * 1024^2) c("L3", m$triad_l3) else
    if (bytes <= 48 * 1024^2) c("L3/16M", m$triad_l3_16m) else c("DRAM", m$triad_dram)
  t_fma <- flops / (m$fma_gflops_f64 * 1e9)
  t_bw <- bytes / (as.numeric(tier[2]) * 1e9)
  list(seconds = max(t_fma, t_bw), bound = if (t_fma >= t_bw) "FMA" else paste("BW", tier[1]))
}

make_input <- function(sh, format = "channels_last") {
  set.seed(1)
  dims <- if (format == "channels_first") c(sh$N, sh$C, sh$H, sh$W) else c(sh$N, sh$H, sh$W, sh$C)
  array(runif(prod(dims), -1, 1), dims)
}

make_layer <- function(sh, format = "channels_last") {
  layer <- layer_depthwise_conv_2d(
    kernel_size = sh$k, strides = sh$s, padding = sh$pad, dilation_rate = sh$d,
    depth_multiplier = sh$M, data_format = format,
    depthwise_initializer = "glorot_uniform", bias_initializer = "random_normal"
  )
  build(layer, c(sh$N, if (format == "channels_first") c(sh$C, sh$H, sh$W) else c(sh$H, sh$W, sh$C)))
  layer
}

time_calls <- function(f, budget, min_reps = 20L, max_reps = 20000L, warmup = 2L) {
  for (w in seq_len(warmup)) f()
  t <- numeric(0)
  start <- now()
  repeat {
    t0 <- now()
    f()
    t <- c(t, now() - t0)
    spent <- now() - start
    if (length(t) >= max_reps) break
    if (length(t) >= min_reps && spent >= budget) break
    if (length(t) >= 3L && spent >= 4 * budget) break
  }
  t
}

# Runs every case `rounds` times, rotating the order; returns per case the
# pooled times and the per-round medians.
run_cases <- function(cases, rounds, budget) {
  res <- lapply(cases, function(cs) list(times = numeric(0), round_meds = numeric(0)))
  n <- length(cases)
  for (r in seq_len(rounds)) {
    order <- ((seq_len(n) - 1L + (r - 1L) * max(1L, n %/% rounds)) %% n) + 1L
    for (i in order) {
      cs <- cases[[i]]
      set_depthwise_threads(cs$threads)
      t <- time_calls(cs$fn, budget)
      res[[i]]$times <- c(res[[i]]$times, t)
      res[[i]]$round_meds <- c(res[[i]]$round_meds, stats::median(t))
    }
  }
  set_depthwise_threads(NULL)
  res
}

# Plain R: zero-pad, then one vectorised multiply-add of a shifted slice per
# kernel tap and depth multiplier (channels_last).
plain_r_depthwise <- function(x, kernel, bias, s, d, pad) {
  dims <- dim(x)
  N <- dims[1]; H <- dims[2]; W <- dims[3]; C <- dims[4]
  k <- dim(kernel)[1]; M <- dim(kernel)[4]
  oh <- out_size(H, k, s, d, pad); ow <- out_size(W, k, s, d, pad)
  span <- (k - 1) * d + 1
  pt <- if (pad == "same") max((oh - 1) * s + span - H, 0) %/% 2 else 0
  pl <- if (pad == "same") max((ow - 1) * s + span - W, 0) %/% 2 else 0
  hp <- max(H + pt, (oh - 1) * s + span); wp <- max(W + pl, (ow - 1) * s + span)
  xp <- array(0, c(N, hp, wp, C))
  xp[, pt + seq_len(H), pl + seq_len(W), ] <- x
  y <- array(0, c(N, oh, ow, C * M))
  for (m in seq_len(M)) {
    acc <- array(0, c(N, oh, ow, C))
    for (a in seq_len(k)) for (b in seq_len(k)) {
      rows <- (seq_len(oh) - 1) * s + (a - 1) * d + 1
      cols <- (seq_len(ow) - 1) * s + (b - 1) * d + 1
      acc <- acc + xp[, rows, cols, , drop = FALSE] * rep(kernel[a, b, , m], each = N * oh * ow)
    }
    y[, , , (seq_len(C) - 1) * M + m] <- acc + rep(bias[(seq_len(C) - 1) * M + m], each = N * oh * ow)
  }
  y
}

fmt_us <- function(s) {
  us <- s * 1e6
  ifelse(us >= 1000, formatC(us, format = "f", digits = 0, big.mark = ","),
         ifelse(us >= 100, formatC(us, format = "f", digits = 0), formatC(us, format = "f", digits = 1)))
}
fmt <- function(v, digits = 1) ifelse(is.na(v), "–", formatC(as.numeric(v), format = "f", digits = digits))
md_table <- function(df) {
  c(paste0("| ", paste(names(df), collapse = " | "), " |"),
    paste0("|", paste(ifelse(vapply(df, is.numeric, TRUE), "---:", "---"), collapse = "|"), "|"),
    apply(df, 1, function(r) paste0("| ", paste(r, collapse = " | "), " |")))
}

report <- character(0)
say <- function(...) {
  line <- paste0(...)
  report <<- c(report, line)
  cat(line, "\n", sep = "")
}

load_before <- load_avg()
started <- Sys.time()

# ------------------------------------------------------------------ the suite
inputs <- list()
layers <- list()
for (i in seq_len(nrow(shapes))) {
  sh <- shapes[i, ]
  for (format in c("channels_last", "channels_first")) {
    key <- paste(sh$name, format)
    inputs[[key]] <- make_input(sh, format)
    layers[[key]] <- make_layer(sh, format)
  }
}

suite_cases <- list()
for (i in seq_len(nrow(shapes))) {
  sh <- shapes[i, ]
  for (format in c("channels_last", "channels_first")) {
    key <- paste(sh$name, format)
    for (th in 1:2) {
      suite_cases[[paste(key, th)]] <- local({
        layer <- layers[[key]]; x <- inputs[[key]]
        list(threads = th, fn = function() layer(x))
      })
    }
  }
}

# Equal-work pairs for depth_multiplier: M = 2 with C channels vs M = 1 with 2C.
mult_pairs <- data.frame(
  name = c("mult2", "mbv2_b_m2", "k5_m2"),
  N = c(4, 1, 8), H = c(32, 56, 28), W = c(32, 56, 28), C = c(64, 72, 120), k = c(3, 3, 5),
  s = 1, pad = c("valid", "same", "same"), d = 1, M = 2, stringsAsFactors = FALSE
)
mult_cases <- list()
for (i in seq_len(nrow(mult_pairs))) {
  for (variant in c("M2", "M1")) {
    sh <- mult_pairs[i, ]
    if (variant == "M1") { sh$C <- sh$C * 2; sh$M <- 1 }
    for (format in c("channels_last", "channels_first")) {
      x <- make_input(sh, format); layer <- make_layer(sh, format)
      mult_cases[[paste(mult_pairs$name[i], variant, format)]] <- local({
        x <- x; layer <- layer
        list(threads = 1L, fn = function() layer(x))
      })
    }
  }
}

# Scaling: 3x3 'same' on 56 x 56 x 32 while N grows, and on N = 1, C = 32
# while the image grows.
scale_shapes <- rbind(
  data.frame(series = "batch", N = c(1, 2, 4, 8, 16, 32, 64), H = 56, W = 56, C = 32),
  data.frame(series = "image", N = 1, H = c(16, 32, 64, 128, 256, 512, 1024), W = c(16, 32, 64, 128, 256, 512, 1024), C = 32)
)
scale_shapes$k <- 3; scale_shapes$s <- 1; scale_shapes$pad <- "same"; scale_shapes$d <- 1; scale_shapes$M <- 1
scale_cases <- list()
for (i in seq_len(nrow(scale_shapes))) {
  sh <- scale_shapes[i, ]
  x <- make_input(sh); layer <- make_layer(sh)
  scale_cases[[paste(sh$series, i)]] <- local({
    x <- x; layer <- layer
    list(threads = 1L, fn = function() layer(x))
  })
}

# The floor of a layer call in R: a 1x1 kernel on a 1 x 1 x 1 x 1 array
# (argument checks, dispatch, allocation, no arithmetic to speak of).
floor_layer <- layer_depthwise_conv_2d(kernel_size = 1)
build(floor_layer, c(1, 1, 1, 1))
floor_x <- array(0.5, c(1, 1, 1, 1))
suite_cases[["floor"]] <- list(threads = 1L, fn = function() floor_layer(floor_x))

cat("timing", length(suite_cases), "suite cases x", rounds, "rounds ...\n")
suite_res <- run_cases(suite_cases, rounds, budget)
cat("timing depth_multiplier and scaling cases ...\n")
mult_res <- run_cases(mult_cases, rounds, budget)
scale_res <- run_cases(scale_cases, rounds, budget)

# Baselines (1 thread, one round, fewer calls): C++ reference kernel and plain R.
cat("timing the reference kernel and plain R ...\n")
base_res <- list()
for (i in seq_len(nrow(shapes))) {
  sh <- shapes[i, ]
  key <- paste(sh$name, "channels_last")
  layer <- layers[[key]]; x <- inputs[[key]]
  w <- get_weights(layer)
  pad_code <- if (sh$pad == "same") 1L else 0L
  ref_fn <- function() dw_forward(x, w[[1]], w[[2]], c(sh$s, sh$s), c(sh$d, sh$d), pad_code, FALSE, 0L, 1L, TRUE)
  plain_fn <- function() plain_r_depthwise(x, w[[1]], w[[2]], sh$s, sh$d, sh$pad)
  # The three agree (checked once per shape, outside the timing).
  y <- layer(x)
  stopifnot(max(abs(ref_fn() - y)) <= 1e-12 * max(1, abs(y)),
            max(abs(plain_fn() - y)) <= 1e-12 * max(1, abs(y)))
  # channels_first takes other kernels (direct, packed, prefetching beyond
  # the cache); check them against the reference too.
  key_cf <- paste(sh$name, "channels_first")
  w_cf <- get_weights(layers[[key_cf]])
  y_cf <- layers[[key_cf]](inputs[[key_cf]])
  ref_cf <- dw_forward(inputs[[key_cf]], w_cf[[1]], w_cf[[2]], c(sh$s, sh$s), c(sh$d, sh$d), pad_code,
                       TRUE, 0L, 1L, TRUE)
  stopifnot(max(abs(ref_cf - y_cf)) <= 1e-12 * max(1, abs(y_cf)))
  b <- if (quick) 0.05 else 0.3
  base_res[[sh$name]] <- list(
    reference = stats::median(time_calls(ref_fn, b, min_reps = 3L, warmup = 0L)),
    plain_r = stats::median(time_calls(plain_fn, b, min_reps = 3L, warmup = 0L))
  )
}
load_after <- load_avg()

# ------------------------------------------------------------------ report
med <- function(res) stats::median(res$times)
spread <- function(res) if (length(res$round_meds) > 1) max(res$round_meds) / min(res$round_meds) else NA

say("# depthwise benchmark results")
say("")
say(sprintf("Generated by `Rscript bench/run.R` on %s (%s). R %s, depthwise %s, kernels: %s (CPU has %s).",
            format(started, "%Y-%m-%d %H:%M"), if (quick) "quick run" else "full run",
            paste(R.version$major, R.version$minor, sep = "."), utils::packageVersion("depthwise"),
            dw_isa()[["active"]], dw_isa()[["detected"]]))
say(sprintf("Load average before / after: %s / %s (the machine has 2 cores shared with other jobs).",
            load_before, load_after))
say("")
say("Each time is the median µs of one call of a built layer on an R array (double in, new double array out), ",
    "pooled over ", rounds, " interleaved rounds; spread = max/min of the round medians. ",
    "GB/s counts input + output + weights once. Roofline = max(flops / FMA peak, bytes / triad bandwidth ",
    "of the cache level those bytes fit in), from bench/machine.csv. Peer columns are the recorded medians ",
    "in bench/peers.csv (PyTorch float32 channels_last, best float64 peer = min of PyTorch float64 and naive C++).")
say("")

# ------------------------------------------------------------------ targets
# One row per (target, shape, threads): ours, the time the target needs, met
# or not, the margin (needed / ours, >= 1 is met) and what limits it. The
# limits are measured, not asserted: the roofline's bound and how much of it
# the call reaches, the machine's own 2T / 1T ratio for that bound (from
# bench/machine.csv), and the floor of any layer call in R (timed above).
floor_s <- med(suite_res[["floor"]])
# `ours` and `needed` are seconds (or ratios, with `show = fmt2`); for the
# speed-up target bigger is better, so its margin is ours / needed.
fmt2 <- function(v) fmt(v, 2)
target_row <- function(target, shape, threads, ours, needed, limit, applies = TRUE, show = fmt_us,
                       higher_is_better = FALSE) {
  margin <- if (higher_is_better) ours / needed else needed / ours
  data.frame(target = target, shape = shape, T = threads, ours = show(ours), needed = show(needed),
             met = if (!applies) "n/a" else if (margin >= 1) "yes" else "**no**",
             margin = fmt(floor(margin * 100) / 100, 2), `what limits it` = limit,  # a miss never shows 1.00
             check.names = FALSE, stringsAsFactors = FALSE)
}
bound_use <- function(g, rf, t, threads) {
  m <- machine[machine$threads == threads, ]
  if (rf$bound == "FMA") {
    sprintf("FMA: %.0f of %.0f GFLOP/s", g$flops / t / 1e9, m$fma_gflops_f64)
  } else {
    sprintf("%s: %.0f of %.0f GB/s", rf$bound, g$bytes / t / 1e9, g$bytes / rf$seconds / 1e9)
  }
}
floor_share <- function(t) sprintf("R call floor %s µs (%.0f %% of ours)", fmt_us(floor_s), 100 * floor_s / t)
targets_section <- function() {
  rows <- list()
  add <- function(...) rows[[length(rows) + 1]] <<- target_row(...)
  for (i in seq_len(nrow(shapes))) {
    sh <- shapes[i, ]; g <- geometry(sh); pr <- peers[peers$name == sh$name, ]
    best64 <- min(pr$torch_f64_best, pr$naive_f64) * 1e-6
    for (th in 1:2) {
      t <- med(suite_res[[paste(sh$name, "channels_last", th)]]); rf <- roofline(g$flops, g$bytes, th)
      need <- best64 / 10
      add("10x best f64", sh$name, th, t, need,
          if (need < floor_s) paste("needs less than the", floor_share(t)) else
            if (need < rf$seconds) sprintf("needs less than the roofline (%s µs)", fmt_us(rf$seconds)) else
              bound_use(g, rf, t, th))
    }
  }
  for (i in seq_len(nrow(shapes))) {
    sh <- shapes[i, ]; g <- geometry(sh); pr <- peers[peers$name == sh$name, ]
    beat <- sh$name %in% c("large", "big_batch")
    for (th in 1:2) {
      t <- med(suite_res[[paste(sh$name, "channels_last", th)]]); rf <- roofline(g$flops, g$bytes, th)
      torch <- (if (th == 1) pr$torch_f32_cl_1t else pr$torch_f32_cl_2t) * 1e-6
      compute <- roofline(g$flops, g$bytes, 1)$bound == "FMA"
      add(if (beat) "faster than torch f32" else "1.5x torch f32 (compute-bound)", sh$name, th,
          t, if (beat) torch else 1.5 * torch,
          paste0(bound_use(g, rf, t, th), if (!beat && !compute) "; bandwidth-bound by the roofline rule" else ""),
          applies = beat || compute)
    }
  }
  for (i in seq_len(nrow(shapes))) {
    sh <- shapes[i, ]
    if (sh$name == "seed") next
    g <- geometry(sh)
    t1 <- med(suite_res[[paste(sh$name, "channels_last", 1)]])
    t2 <- med(suite_res[[paste(sh$name, "channels_last", 2)]])
    for (th in 1:2) {
      t <- if (th == 1) t1 else t2; rf <- roofline(g$flops, g$bytes, th)
      add("50 % of roofline", sh$name, th, t, 2 * rf$seconds,
          paste0(bound_use(g, rf, t, th), if (floor_s / t > 0.05) paste0("; ", floor_share(t)) else ""))
    }
    # The best 2T speed-up this machine allows the shape: its roofline's own
    # 2T / 1T ratio, applied to all but the R call floor.
    cap <- roofline(g$flops, g$bytes, 1)$seconds / roofline(g$flops, g$bytes, 2)$seconds
    attainable <- t1 / (floor_s + (t1 - floor_s) / cap)
    add("2T >= 1.8x 1T", sh$name, 2, t1 / t2, 1.8,
        sprintf("the roofline's 2T / 1T is %.2f; with the R call floor serial, %.2f at best", cap, attainable),
        show = fmt2, higher_is_better = TRUE)
  }
  seed <- med(suite_res[["seed channels_last 1"]])
  add("seed <= 25 µs", "seed", 1, seed, 25e-6, floor_share(seed))
  for (i in seq_len(nrow(shapes))) {
    sh <- shapes[i, ]
    for (th in 1:2) {
      tl <- med(suite_res[[paste(sh$name, "channels_last", th)]])
      tf <- med(suite_res[[paste(sh$name, "channels_first", th)]])
      add("channels_first <= 1.5x channels_last", sh$name, th, tf, 1.5 * tl,
          sprintf("channels_last %s µs", fmt_us(tl)))
    }
  }
  for (i in seq_len(nrow(mult_pairs))) {
    for (format in c("channels_last", "channels_first")) {
      t2 <- med(mult_res[[paste(mult_pairs$name[i], "M2", format)]])
      t1 <- med(mult_res[[paste(mult_pairs$name[i], "M1", format)]])
      add("M = 2 <= 1.5x M = 1, equal work", paste(mult_pairs$name[i], format), 1, t2, 1.5 * t1,
          sprintf("M = 1 with 2C: %s µs", fmt_us(t1)))
    }
  }
  df <- do.call(rbind, rows)
  df <- df[order(match(df$target, unique(df$target))), ]
  missed <- df[df$met == "**no**", ]
  c("## Targets of the speed issue",
    "",
    sprintf(paste0("%d of %d rows met, %d missed, %d not applicable. `ours` and `needed` are µs, except for the ",
                   "2T speed-up (a ratio); `margin` = needed / ours (>= 1 is met). The R call floor is the median ",
                   "call of a built 1x1 layer on a 1 x 1 x 1 x 1 array: %s µs. Bounds and bandwidths are the ",
                   "roofline's (bench/machine.csv). Missed rows:"),
            sum(df$met == "yes"), nrow(df), nrow(missed), sum(df$met == "n/a"), fmt_us(floor_s)),
    "",
    if (nrow(missed)) md_table(missed) else "(none)",
    "",
    "<details><summary>All rows</summary>",
    "",
    md_table(df),
    "",
    "</details>",
    "")
}
for (l in targets_section()) say(l)

rows <- list()
for (i in seq_len(nrow(shapes))) {
  sh <- shapes[i, ]; g <- geometry(sh); pr <- peers[peers$name == sh$name, ]
  best64 <- min(pr$torch_f64_best, pr$naive_f64) * 1e-6
  for (th in 1:2) {
    r <- suite_res[[paste(sh$name, "channels_last", th)]]
    t <- med(r); rf <- roofline(g$flops, g$bytes, th)
    torch <- (if (th == 1) pr$torch_f32_cl_1t else pr$torch_f32_cl_2t) * 1e-6
    rows[[length(rows) + 1]] <- data.frame(
      shape = sh$name, T = th, `µs` = fmt_us(t), `mean µs` = fmt_us(mean(r$times)), spread = fmt(spread(r), 2),
      `GFLOP/s` = fmt(g$flops / t / 1e9), `GB/s` = fmt(g$bytes / t / 1e9),
      `roofline µs` = fmt_us(rf$seconds), bound = rf$bound, `% roofline` = fmt(100 * rf$seconds / t, 0),
      `÷ torch f32` = fmt(t / torch, 2), `÷ XNNPACK 1T` = fmt(t / (pr$xnnpack_1t * 1e-6), 2),
      `× best f64` = fmt(best64 / t, 1),
      check.names = FALSE, stringsAsFactors = FALSE)
  }
}
say("## Suite, channels_last (the layout of the peers' NHWC numbers)")
say("")
say("`÷ torch f32`: our time / PyTorch float32 channels_last at the same thread count (< 1 = faster). ",
    "`÷ XNNPACK 1T`: our time / XNNPACK's (TensorFlow.js WebAssembly backend, float32, one thread; ",
    "it has no 2T number, so both rows divide by the same time). `× best f64`: best float64 peer time / our time. `mean µs`: the mean of the same calls, which also ",
    "carries the occasional call that maps fresh output memory or asks R for a collection so that dead ",
    "outputs' memory can be reused (see the vignette's section on threads and speed).")
say("")
for (l in md_table(do.call(rbind, rows))) say(l)
say("")

rows <- list()
for (i in seq_len(nrow(shapes))) {
  sh <- shapes[i, ]; g <- geometry(sh)
  t1 <- med(suite_res[[paste(sh$name, "channels_last", 1)]])
  t2 <- med(suite_res[[paste(sh$name, "channels_last", 2)]])
  f1 <- med(suite_res[[paste(sh$name, "channels_first", 1)]])
  f2 <- med(suite_res[[paste(sh$name, "channels_first", 2)]])
  rows[[length(rows) + 1]] <- data.frame(
    shape = sh$name, `2T speed-up (last)` = fmt(t1 / t2, 2),
    `first 1T µs` = fmt_us(f1), `first 2T µs` = fmt_us(f2),
    `first ÷ last 1T` = fmt(f1 / t1, 2), `first ÷ last 2T` = fmt(f2 / t2, 2),
    `first 2T speed-up` = fmt(f1 / f2, 2), `first spread` = fmt(max(spread(suite_res[[paste(sh$name, "channels_first", 1)]]), spread(suite_res[[paste(sh$name, "channels_first", 2)]])), 2),
    check.names = FALSE, stringsAsFactors = FALSE)
}
say("## Threads and channels_first")
say("")
say("Calls below 2^18 multiply-adds run on one thread whatever the setting (seed), so their 2T time is a 1T time.")
say("")
for (l in md_table(do.call(rbind, rows))) say(l)
say("")

rows <- list()
for (i in seq_len(nrow(mult_pairs))) {
  for (format in c("channels_last", "channels_first")) {
    t2 <- med(mult_res[[paste(mult_pairs$name[i], "M2", format)]])
    t1 <- med(mult_res[[paste(mult_pairs$name[i], "M1", format)]])
    rows[[length(rows) + 1]] <- data.frame(
      pair = mult_pairs$name[i], format = format,
      `M=2, C µs` = fmt_us(t2), `M=1, 2C µs` = fmt_us(t1), `M2 ÷ M1` = fmt(t2 / t1, 2),
      check.names = FALSE, stringsAsFactors = FALSE)
  }
}
say("## depth_multiplier at equal work (1 thread)")
say("")
for (l in md_table(do.call(rbind, rows))) say(l)
say("")

rows <- list()
for (i in seq_len(nrow(scale_shapes))) {
  sh <- scale_shapes[i, ]; g <- geometry(sh)
  t <- med(scale_res[[paste(sh$series, i)]])
  macs <- g$flops / 2
  rows[[length(rows) + 1]] <- data.frame(
    series = sh$series, shape = sprintf("%dx%dx%dx%d", sh$N, sh$H, sh$W, sh$C),
    `N·H·W·C·k²` = format(macs, big.mark = ",", scientific = FALSE), `µs` = fmt_us(t),
    `ns per 1k MAC` = fmt(t * 1e9 / (macs / 1000), 2), `GFLOP/s` = fmt(g$flops / t / 1e9),
    check.names = FALSE, stringsAsFactors = FALSE)
}
say("## Scaling (1 thread, 3x3 'same', channels_last)")
say("")
say("Cost per multiply-add should stay flat as the work grows; it rises where the data leave a cache level.")
say("")
for (l in md_table(do.call(rbind, rows))) say(l)
say("")
plot_scaling <- function(file) {
  macs <- vapply(seq_len(nrow(scale_shapes)), function(i) geometry(scale_shapes[i, ])$flops / 2, numeric(1))
  us <- vapply(seq_len(nrow(scale_shapes)), function(i) med(scale_res[[paste(scale_shapes$series[i], i)]]) * 1e6,
               numeric(1))
  ns_per_k <- us * 1e3 / (macs / 1000)
  series <- unique(scale_shapes$series)
  cols <- c(batch = "#1b6ca8", image = "#d1495b")
  grDevices::png(file, width = 1100, height = 480, res = 110)
  on.exit(grDevices::dev.off())
  graphics::par(mfrow = c(1, 2), mar = c(4.5, 4.5, 3, 1))
  # Linear cost is a line of slope 1 on log-log axes; the dashed one goes
  # through the median cost per multiply-add.
  graphics::plot(macs, us, log = "xy", type = "n", xlab = "multiply-adds (N*H*W*C*kh*kw)",
                 ylab = "µs per call (median)", main = "Time per call")
  graphics::abline(a = log10(stats::median(us / macs)), b = 1, lty = 2, col = "grey50")
  for (s in series) {
    k <- scale_shapes$series == s
    graphics::lines(macs[k], us[k], type = "b", pch = 19, col = cols[[s]])
  }
  graphics::legend("topleft", c("N grows (56x56x32)", "H = W grows (N = 1, C = 32)", "linear in the work"),
                   col = c(cols, "grey50"), lty = c(1, 1, 2), pch = c(19, 19, NA), bty = "n")
  graphics::plot(macs, ns_per_k, log = "x", type = "n", ylim = c(0, max(ns_per_k) * 1.1),
                 xlab = "multiply-adds (N*H*W*C*kh*kw)", ylab = "ns per 1000 multiply-adds",
                 main = "Cost per unit of work (flat = linear)")
  for (s in series) {
    k <- scale_shapes$series == s
    graphics::lines(macs[k], ns_per_k[k], type = "b", pch = 19, col = cols[[s]])
  }
}
if (!quick) {
  plot_scaling(file.path(here, "scaling.png"))
  say("The same numbers as a curve: `bench/scaling.png` (left: µs against work on log-log axes, ",
      "where linear cost is a line of slope 1; right: ns per 1000 multiply-adds).")
  say("")
}

rows <- list()
for (i in seq_len(nrow(shapes))) {
  sh <- shapes[i, ]
  t <- med(suite_res[[paste(sh$name, "channels_last", 1)]])
  b <- base_res[[sh$name]]
  rows[[length(rows) + 1]] <- data.frame(
    shape = sh$name, `layer µs` = fmt_us(t), `C++ reference µs` = fmt_us(b$reference),
    `plain R µs` = fmt_us(b$plain_r), `× reference` = fmt(b$reference / t, 1),
    `× plain R` = fmt(b$plain_r / t, 1), check.names = FALSE, stringsAsFactors = FALSE)
}
say("## Baselines (1 thread, channels_last)")
say("")
say("The C++ reference kernel (the oracle, one loop nest) and a vectorised plain-R version ",
    "(one shifted-slice multiply-add per tap); all three agree to 1e-12 on every shape.")
say("")
for (l in md_table(do.call(rbind, rows))) say(l)
say("")

say(sprintf("Total run time %.0f s.", as.numeric(difftime(Sys.time(), started, units = "secs"))))
if (!quick) writeLines(report, file.path(here, "RESULTS.md"))
