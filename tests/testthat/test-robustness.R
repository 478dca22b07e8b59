# Robustness: sizes and 64-bit index arithmetic, interrupts, threads,
# uninitialised memory, NaN/Inf propagation, unusual input vectors (ALTREP,
# dimnames, integer), hidden copies, and the bugs other frameworks had.

fwd <- function(x, kernel, bias = NULL, strides = c(1, 1), dilation = c(1, 1), padding = "valid",
                data_format = "channels_last", activation = "linear", threads = 1L, reference = FALSE) {
  dw_forward(x, kernel, bias, as.integer(rep_len(strides, 2)), as.integer(rep_len(dilation, 2)),
             if (padding == "same") 1L else 0L, data_format == "channels_first",
             match(activation, dw_activation_names()) - 1L, threads, reference)
}

# ---- Sizes ------------------------------------------------------------------

test_that("output shapes are computed in 64 bits for inputs above 2^31 elements", {
  geometry <- function(dims, k, s = c(1, 1), d = c(1, 1), padding = "valid", m = 1, first = FALSE) {
    dw_output_geometry(as.numeric(dims), as.integer(k), as.integer(s), as.integer(d),
                       if (padding == "same") 1L else 0L, m, first)
  }
  # 2^33 input elements; every spatial size alone fits in an int.
  g <- geometry(c(2, 2^16, 2^16, 4), c(3, 3))
  expect_identical(g[1:4], c(2, 2^16 - 2, 2^16 - 2, 4))
  g <- geometry(c(2, 2^16, 2^16, 4), c(1, 5), s = c(2, 2), padding = "same", m = 3)
  expect_identical(g[1:4], c(2, 2^15, 2^15, 12))
  expect_identical(g[5:8], c(0, 0, 1, 2))  # 1x5 kernel, stride 2, even width: pad 1 left, 2 right
  g <- geometry(c(1, 8, 2^16, 2^16), c(3, 3), d = c(2, 2), padding = "same", first = TRUE)
  expect_identical(g[1:4], c(1, 8, 2^16, 2^16))
  # Sizes and steps near .Machine$integer.max.
  big <- .Machine$integer.max
  expect_identical(geometry(c(1, big, 1, 1), c(1, 1))[1:4], c(1, big, 1, 1))
  expect_identical(geometry(c(1, big, 1, 1), c(big, 1))[1:4], c(1, 1, 1, 1))
  expect_identical(geometry(c(1, big, 1, 1), c(3, 1), s = c(big, 1), padding = "same")[1:4], c(1, 1, 1, 1))
  g <- geometry(c(1, 5, 5, 1), c(3, 3), d = c(big, big), padding = "same")
  expect_identical(g[1:4], c(1, 5, 5, 1))
  expect_identical(g[5:6], c(big, big) + 0)  # (3 - 1) * dilation + 1 - 1 = 2 * big in all, split evenly
  # Larger than any R vector: a classed size error, before anything is allocated.
  expect_error(run_cpp(geometry(c(1, 2^40, 2^40, 8), c(1, 1))), class = "depthwise_error_size")
  expect_error(run_cpp(geometry(c(1, 9e15, 9e15, 9e15), c(1, 1))), class = "depthwise_error_size")
})

test_that("a layer builds and reports shapes for inputs above 2^31 elements without allocating them", {
  layer <- layer_depthwise_conv_2d(kernel_size = c(1, 5), strides = 2, padding = "same", depth_multiplier = 2)
  build(layer, c(NA, 2^16, 2^16, 3))  # 1.3e10 elements per sample
  expect_identical(dim(get_weights(layer)[[1]]), c(1L, 5L, 3L, 2L))
  g <- output_geometry(layer$config, c(4L, 65536L, 65536L, 3L))
  expect_identical(g$dims, c(4L, 32768L, 32768L, 6L))
  expect_identical(prod(as.numeric(g$dims)), 4 * 2^30 * 6)
})

test_that("outputs and weights too large for memory are size errors before any work", {
  withr::local_options(depthwise.memory_limit = 2^24)  # 16 MiB, so the test is the same everywhere
  x <- array(0, c(1, 64, 64, 4))
  # 64 x 64 x 4 x 128 doubles = 16 MiB + 64 bytes... over the limit.
  expect_error(layer_depthwise_conv_2d(x, 1, depth_multiplier = 129, use_bias = FALSE,
                                       depthwise_initializer = "ones"),
               class = "depthwise_error_size")
  expect_snapshot(layer_depthwise_conv_2d(x, 1, depth_multiplier = 129, use_bias = FALSE,
                                          depthwise_initializer = "ones", name = "big"), error = TRUE)
  # A huge kernel: refused before the weights are drawn (R used to be killed here).
  expect_error(layer_depthwise_conv_2d(x, c(1, 2^30), padding = "same"), class = "depthwise_error_size")
  expect_error(layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 2^16, input_shape = c(3, 3, 2^16)),
               class = "depthwise_error_size")
  expect_error(random_uniform(c(2^20, 2^20)), class = "depthwise_error_size")
  expect_error(random_normal(c(2^31, 2^31)), class = "depthwise_error_value")  # not a valid size at all
  expect_error(initializer_draw("ones", c(2^26, 2)), class = "depthwise_error_size")
  expect_snapshot(random_uniform(c(2^20, 2^20)), error = TRUE)
  # Under the limit, the same calls work.
  expect_identical(dim(layer_depthwise_conv_2d(x, 1, depth_multiplier = 2)), c(1L, 64L, 64L, 8L))
})

test_that("the free-memory check refuses what the system cannot give", {
  expect_error(check_allocation(2^53, "An array"), class = "depthwise_error_size")
  free <- free_memory()
  skip_if(is.na(free), "free memory is not known on this system")
  expect_gt(free, 0)
  expect_error(check_allocation(free / 8 * 2, "An array"), "of memory available", class = "depthwise_error_size")
  expect_silent(check_allocation(1e6, "An array"))
  withr::local_options(depthwise.memory_limit = "lots")
  expect_error(check_allocation(1e9, "An array"), class = "depthwise_error_type")
})

# ---- Interrupts ---------------------------------------------------------------

test_that("a long call stops promptly on an interrupt, leaks nothing, and the next call works", {
  skip_on_cran()
  skip_on_os("windows")  # no SIGINT to a child process
  skip_if_not_installed("callr")
  skip_if(nzchar(Sys.getenv("DEPTHWISE_CHILD_DEBUGGER")), "timing is meaningless under a debugger")
  child <- function() {
    library(depthwise)
    memory <- function() {
      gc()
      status <- if (file.exists("/proc/self/status")) readLines("/proc/self/status") else character()
      rss <- suppressWarnings(as.numeric(gsub("[^0-9]", "", grep("^VmRSS:", status, value = TRUE))))
      c(vcells = gc()[2, 1], rss_kib = if (length(rss)) rss else NA)
    }
    # About 2e10 multiply-adds: several seconds on one core.
    x <- array(runif(512 * 512 * 64), c(1, 512, 512, 64))
    layer <- layer_depthwise_conv_2d(kernel_size = 35, padding = "same")
    small <- array(runif(2 * 9 * 9 * 64), c(2, 9, 9, 64))
    before_small <- layer(small)
    before <- memory()
    for (round in 1:3) {
      cat("START", round, "\n")
      t0 <- Sys.time()
      outcome <- tryCatch({
        layer(x)
        "finished"
      }, interrupt = function(e) "interrupted")
      cat("END", outcome, format(as.numeric(Sys.time() - t0, units = "secs")), "\n")
    }
    after <- memory()
    cat("MEMORY", before, after, "\n")
    cat("NEXT", identical(layer(small), before_small), "\n")
  }
  p <- callr::r_bg(child, stdout = "|", stderr = "|", cmdargs = c("--slave", "--no-save", "--no-restore"))
  on.exit(p$kill(), add = TRUE)
  lines <- character()
  seen <- 0L
  # The first line after those already matched that matches `pattern`.
  wait_for <- function(pattern, seconds) {
    deadline <- Sys.time() + seconds
    repeat {
      lines <<- c(lines, p$read_output_lines())
      hit <- grep(pattern, lines)
      hit <- hit[hit > seen]
      if (length(hit)) {
        seen <<- hit[[1]]
        return(lines[[hit[[1]]]])
      }
      if (Sys.time() > deadline || !p$is_alive() && !p$is_incomplete_output()) return(NA_character_)
      p$poll_io(200)
    }
  }
  latencies <- numeric()
  for (round in 1:3) {
    expect_false(is.na(wait_for(paste("^START", round), 120)), label = paste("round", round, "started"))
    Sys.sleep(0.7)
    sent <- Sys.time()
    p$interrupt()
    end <- wait_for(paste0("^END .*"), 60)
    latencies[round] <- as.numeric(Sys.time() - sent, units = "secs")
    expect_match(end, "^END interrupted",
                 label = paste("round", round, "was interrupted; child's stderr:",
                               paste(p$read_error_lines(), collapse = "\n")))
  }
  memory_line <- wait_for("^MEMORY", 60)
  next_line <- wait_for("^NEXT", 60)
  p$wait(30000)
  expect_identical(p$get_exit_status(), 0L)
  # Prompt: the check between chunks runs every few milliseconds of work.
  # (Not under the sanitizers, whose build is many times slower.)
  if (!nzchar(Sys.getenv("DEPTHWISE_SLOW_BUILD"))) expect_lt(max(latencies), 2)
  if (nzchar(Sys.getenv("DEPTHWISE_REPORT_LATENCY"))) message("interrupt latencies (s): ", toString(round(latencies, 3)))
  m <- as.numeric(strsplit(sub("^MEMORY ", "", trimws(memory_line)), " ")[[1]])
  # R's heap is back where it was: no 128 MiB output kept alive by the
  # interrupted calls (Vcells are 8 bytes).
  expect_lt(m[3] - m[1], 1e6)
  if (!is.na(m[2]) && !is.na(m[4])) expect_lt((m[4] - m[2]) / 1024, 200)  # MiB of RSS
  expect_identical(next_line, "NEXT TRUE ")
})

# ---- Threads ------------------------------------------------------------------

test_that("results are identical at every thread count, and bad settings are errors", {
  set.seed(11)
  x <- array(rnorm(2 * 64 * 48 * 16), c(2, 64, 48, 16))  # well above the one-thread threshold
  layer <- layer_depthwise_conv_2d(kernel_size = c(3, 5), padding = "same", depth_multiplier = 2,
                                   activation = "gelu")
  build(layer, dim(x))
  withr::local_options(depthwise.num_threads = NULL)
  withr::local_envvar(DEPTHWISE_NUM_THREADS = NA)
  results <- lapply(list(1, 2, 3, 8, 1e6), function(n) {
    set_depthwise_threads(n)
    layer(x)
  })
  for (k in 2:length(results)) expect_identical(results[[k]], results[[1]])
  set_depthwise_threads(NULL)
  withr::with_envvar(c(DEPTHWISE_NUM_THREADS = "2"), expect_identical(layer(x), results[[1]]))
  # The kernels directly, past every cap, both layouts, with strides.
  kernel <- get_weights(layer)[[1]]
  xf <- aperm(x, c(1, 4, 2, 3))
  for (threads in c(2L, 3L, 7L, 64L, 100000L, .Machine$integer.max)) {
    expect_identical(fwd(x, kernel, threads = threads, padding = "same"), fwd(x, kernel, padding = "same"))
    expect_identical(fwd(xf, kernel, strides = c(2, 1), data_format = "channels_first", threads = threads),
                     fwd(xf, kernel, strides = c(2, 1), data_format = "channels_first"))
  }
  # Invalid settings: classed errors naming the setting, whatever the call size.
  for (bad in list(0, -1, 1.5, NA, "2", 2^31, c(1, 2), list(), Inf, TRUE)) {
    expect_error(set_depthwise_threads(bad), class = "depthwise_error")
  }
  for (bad in list(0, 1.5, "two", NA)) {
    withr::with_options(list(depthwise.num_threads = bad),
      expect_error(layer(x), "depthwise.num_threads", class = "depthwise_error"))
  }
  for (bad in c("abc", "0", "-1", "1.5", "1e10")) {
    withr::with_envvar(c(DEPTHWISE_NUM_THREADS = bad),
      expect_error(layer(x), "DEPTHWISE_NUM_THREADS", class = "depthwise_error"))
  }
  for (bad in list(0L, -1L, NA_integer_, 1.5, 2^31, "2", NULL)) {
    expect_error(run_cpp(fwd(x, kernel, threads = bad)), class = "depthwise_error_internal")
  }
})

test_that("no R API call sits in the code the worker threads run", {
  # R's API is not thread-safe. The pool's workers (thread_pool.cpp) run
  # run_job_units() in entry.cpp, which runs the fast kernels: none of that
  # code may call R or Rcpp. Comments are ignored.
  src <- test_path("..", "..", "src")
  skip_if(!file.exists(file.path(src, "thread_pool.cpp")), "package sources not available (installed tests)")
  r_api <- "\\b(Rf_[A-Za-z]+|R_[A-Za-z]+|REAL|INTEGER|LOGICAL|SEXP|PROTECT|Rcpp::|checkUserInterrupt|Rprintf|warning|stop)\\b"
  code_of <- function(lines) sub("//.*$", "", lines)
  worker_files <- c("thread_pool.h", "thread_pool.cpp", "kernel_fast.cpp", "kernel_impl.h", "fast_plan.h",
                    "simd.h", "kernels.h", "activation.h", "geometry.h",
                    list.files(src, pattern = "^kernel_isa_.*[.]cpp$"))
  for (f in worker_files) {
    code <- code_of(readLines(file.path(src, f), warn = FALSE))
    expect_false(any(grepl(r_api, code)), label = sprintf("an R API call in %s", f))
  }
  entry <- readLines(file.path(src, "entry.cpp"), warn = FALSE)
  first <- grep("^void run_job_units\\(", entry)
  expect_length(first, 1L)
  last <- first + which(entry[first:length(entry)] == "}")[1] - 1L
  body <- code_of(entry[first:last])
  expect_true(any(grepl("run_fast_units", body)))
  expect_false(any(grepl(r_api, body)), label = "an R API call in run_job_units()")
})

# ---- Uninitialised memory -------------------------------------------------------

robust_cases <- function() {
  set.seed(5)
  list(
    list(x = array(rnorm(2 * 9 * 11 * 3), c(2, 9, 11, 3)), k = c(3, 3), s = c(1, 1), d = c(1, 1),
         padding = "same", format = "channels_last", m = 2, act = "linear"),
    list(x = array(rnorm(1 * 10 * 7 * 4), c(1, 10, 7, 4)), k = c(1, 4), s = c(2, 2), d = c(1, 1),
         padding = "same", format = "channels_last", m = 1, act = "relu"),
    list(x = array(rnorm(3 * 2 * 8 * 9), c(3, 2, 8, 9)), k = c(2, 3), s = c(1, 1), d = c(2, 3),
         padding = "same", format = "channels_first", m = 3, act = "softmax"),
    list(x = array(rnorm(1 * 12 * 12 * 2), c(1, 12, 12, 2)), k = c(5, 5), s = c(3, 2), d = c(1, 1),
         padding = "valid", format = "channels_last", m = 1, act = "tanh"),
    list(x = array(rnorm(4 * 64 * 64 * 8), c(4, 64, 64, 8)), k = c(3, 3), s = c(1, 1), d = c(1, 1),
         padding = "same", format = "channels_last", m = 2, act = "elu")
  )
}

run_robust_case <- function(case, reference = FALSE, threads = 2L) {
  C <- dim(case$x)[if (case$format == "channels_first") 2 else 4]
  set.seed(99)
  kernel <- array(rnorm(prod(case$k) * C * case$m), c(case$k, C, case$m))
  bias <- rnorm(C * case$m)
  fwd(case$x, kernel, bias, case$s, case$d, case$padding, case$format, case$act, threads, reference)
}

# Fills freed memory with garbage: large vectors of NaN and of random bits.
churn_memory <- function(n) {
  a <- rep(NaN, n)
  b <- runif(n) * 1e300
  rm(a, b)
  invisible(gc(verbose = FALSE))
}

test_that("results do not depend on the contents of reused memory", {
  for (case in robust_cases()) {
    for (reference in c(FALSE, TRUE)) {
      first <- run_robust_case(case, reference)
      churn_memory(4 * length(first))
      second <- run_robust_case(case, reference)
      expect_identical(second, first)
    }
  }
})

test_that("results are identical when every fresh allocation starts with different garbage", {
  skip_on_cran()
  skip_if_not_installed("callr")
  skip_if(nzchar(Sys.getenv("DEPTHWISE_CHILD_DEBUGGER")), "slow under a debugger")
  # glibc's MALLOC_PERTURB_ fills each malloc()ed block (R's large vectors,
  # any C++ scratch) with the given byte; other platforms ignore it.
  child <- function(defs) {
    library(depthwise)
    env <- new.env(parent = asNamespace("depthwise"))
    sys.source(defs, envir = env)
    lapply(env$robust_cases(), function(case) {
      list(fast = env$run_robust_case(case), reference = env$run_robust_case(case, reference = TRUE))
    })
  }
  # The child needs only fwd(), robust_cases() and run_robust_case(): copy them out.
  deparse_function <- function(name, f) c(paste(name, "<-"), deparse(f))
  defs <- tempfile(fileext = ".R")
  on.exit(unlink(defs), add = TRUE)
  writeLines(c(deparse_function("fwd", fwd), deparse_function("robust_cases", robust_cases),
               deparse_function("run_robust_case", run_robust_case)), defs)
  runs <- lapply(c("165", "90"), function(perturb) {
    callr::r(child, args = list(defs), env = c(callr::rcmd_safe_env(), MALLOC_PERTURB_ = perturb),
             libpath = .libPaths())
  })
  here <- lapply(robust_cases(), function(case) {
    list(fast = run_robust_case(case), reference = run_robust_case(case, reference = TRUE))
  })
  expect_identical(runs[[1]], runs[[2]])
  expect_identical(runs[[1]], here)
})

# ---- NaN and Inf ----------------------------------------------------------------

test_that("NaN and Inf propagate, only within their own channel, in every layout and kernel", {
  elementwise <- setdiff(dw_activation_names(), c("softmax", "log_softmax"))
  configs <- expand.grid(format = c("channels_last", "channels_first"), m = 1:2,
                         padding = c("valid", "same"), geometry = c("plain", "strided", "dilated"),
                         stringsAsFactors = FALSE)
  set.seed(3)
  for (k in seq_len(nrow(configs))) {
    cfg <- configs[k, ]
    s <- if (cfg$geometry == "strided") c(2, 1) else c(1, 1)
    d <- if (cfg$geometry == "dilated") c(2, 2) else c(1, 1)
    x <- array(rnorm(2 * 9 * 8 * 3), c(2, 9, 8, 3))
    x[1, 5, 4, 2] <- NaN  # sample 1, channel 2
    x[2, 3, 3, 3] <- Inf  # sample 2, channel 3
    x[2, 7, 6, 1] <- NA   # sample 2, channel 1
    kernel <- array(runif(3 * 3 * 3 * cfg$m, 0.5, 1.5), c(3, 3, 3, cfg$m))  # no zero weights
    bias <- rnorm(3 * cfg$m)
    xin <- if (cfg$format == "channels_first") aperm(x, c(1, 4, 2, 3)) else x
    expected <- ref_depthwise(x, kernel, bias, s, d, cfg$padding)  # R's own arithmetic
    source_channel <- rep(1:3, each = cfg$m)  # input channel of each output channel
    for (reference in c(FALSE, TRUE)) {
      y <- fwd(xin, kernel, bias, s, d, cfg$padding, cfg$format, reference = reference)
      if (cfg$format == "channels_first") y <- aperm(y, c(1, 3, 4, 2))
      label <- paste(paste(names(cfg), cfg, collapse = " "), if (reference) "reference" else "fast")
      expect_identical(is.na(y), is.na(expected), label = label)
      expect_identical(is.infinite(y), is.infinite(expected), label = label)
      expect_equal(y[is.finite(y)], expected[is.finite(expected)], tolerance = 1e-12, label = label)
      # Each sample's trouble stays in the output channels of its input channel.
      expect_true(any(is.na(y[1, , , source_channel == 2])), label = label)
      expect_false(any(!is.finite(y[1, , , source_channel != 2])), label = label)
      expect_true(any(is.infinite(y[2, , , source_channel == 3])), label = label)
      expect_true(any(is.na(y[2, , , source_channel == 1])), label = label)
      expect_false(any(!is.finite(y[2, , , source_channel == 2])), label = label)
    }
    # Every element-wise activation keeps NaN as NaN, and turns Inf into
    # what the Keras formula gives (softsign(Inf) = Inf / Inf is NaN there too).
    linear <- fwd(xin, kernel, bias, s, d, cfg$padding, cfg$format)
    for (act in elementwise) {
      y <- fwd(xin, kernel, bias, s, d, cfg$padding, cfg$format, activation = act)
      expected_act <- ref_activation(act)(linear)
      expect_true(all(is.na(y[is.na(linear)])), label = act)
      expect_identical(is.na(y), is.na(expected_act), label = act)
      expect_equal(y[!is.na(y)], expected_act[!is.na(expected_act)], tolerance = 1e-12, label = act)
    }
  }
})

# ---- Unusual input vectors ---------------------------------------------------------

test_that("ALTREP, dimnames, integer and logical inputs give the same numbers as a plain double array", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3, padding = "same", depth_multiplier = 2)
  dims <- c(2L, 6L, 7L, 3L)
  n <- prod(dims)
  plain <- array(as.numeric(seq_len(n)), dims)
  expected <- layer(plain)
  compact_int <- seq_len(n)
  dim(compact_int) <- dims
  compact_real <- as.double(seq_len(n))  # a compact ALTREP double sequence
  dim(compact_real) <- dims
  named <- plain
  dimnames(named) <- list(c("a", "b"), NULL, letters[1:7], c("r", "g", "b"))
  classed <- structure(plain, class = c("my_array", "array"))
  for (x in list(compact_int, compact_real, named, plain + 0L, classed)) {
    expect_identical(layer(x), expected)
  }
  expect_identical(dimnames(named)[[4]], c("r", "g", "b"))  # the caller's array is untouched
  logical <- array(c(TRUE, FALSE, NA), dims)
  y <- layer(logical)
  expect_identical(is.na(y), is.na(layer(array(c(1, 0, NA), dims))))
  integer_na <- array(c(1L, NA, 3L), dims)
  expect_identical(layer(integer_na), layer(array(c(1, NA, 3), dims)))
})

test_that("a call never modifies its input or the layer's weights", {
  x <- array(rnorm(2 * 8 * 8 * 4), c(2, 8, 8, 4))
  x_copy <- x + 0
  layer <- layer_depthwise_conv_2d(kernel_size = 3, activation = "relu")
  y <- layer(x)
  w <- lapply(get_weights(layer), function(v) v + 0)
  y2 <- layer(x)
  expect_identical(x, x_copy)
  expect_identical(get_weights(layer), w)
  expect_identical(y, y2)
})

test_that("a forward call allocates its output and no copy of the input", {
  x <- array(runif(1 * 256 * 256 * 32), c(1, 256, 256, 32))  # 16 MiB
  layer <- layer_depthwise_conv_2d(kernel_size = 3, padding = "same")
  build(layer, dim(x))
  invisible(layer(x[, 1:8, 1:8, , drop = FALSE]))
  base <- gc(reset = TRUE)[2, 2]  # R's vector heap in use, MB
  y <- layer(x)
  peak <- gc()[2, 6]              # its peak since the reset, MB
  output_mb <- 8 * length(y) / 2^20
  # The peak above the baseline is at most the output plus 1 MB: no copy of
  # the 16 MiB input was made on the way to the kernel. (Large outputs may
  # come from the package's own allocator, which R's heap count leaves out,
  # so the output itself need not show.)
  expect_lt(peak - base, output_mb + 1)
  # The measurement does see a copy of the input when one is made.
  base <- gc(reset = TRUE)[2, 2]
  x_copy <- x + 0
  expect_gt(gc()[2, 6] - base, 15.5)
})

# ---- Bugs other frameworks had -------------------------------------------------------

test_that("1xN and Nx1 kernels with stride 2 and 'same' padding are right (tfjs returned wrong numbers)", {
  set.seed(21)
  for (n in 1:6) for (width in c(1, 2, 5, 8, 9)) for (st in list(c(2, 2), c(1, 2), c(2, 1))) {
    for (kernel_shape in list(c(1, n), c(n, 1))) {
      x <- array(rnorm(2 * width * (width + 1) * 2), c(2, width, width + 1, 2))
      kernel <- array(rnorm(prod(kernel_shape) * 2), c(kernel_shape, 2, 1))
      expected <- ref_depthwise(x, kernel, NULL, st, c(1, 1), "same")
      label <- sprintf("kernel %s, width %d, strides %s", paste(kernel_shape, collapse = "x"), width,
                       paste(st, collapse = "x"))
      expect_equal(fwd(x, kernel, strides = st, padding = "same"), expected, tolerance = 1e-12, label = label)
      expect_equal(fwd(aperm(x, c(1, 4, 2, 3)), kernel, strides = st, padding = "same",
                       data_format = "channels_first"),
                   aperm(expected, c(1, 4, 2, 3)), tolerance = 1e-12, label = label)
    }
  }
})

test_that("strides combined with dilation give the right shapes and numbers (TensorFlow once did not)", {
  # Keras refuses the combination at the layer level; the kernels support it
  # and must agree with the formula.
  set.seed(22)
  for (s in 1:3) for (d in 1:3) for (padding in c("valid", "same")) for (size in c(7, 8, 10)) {
    x <- array(rnorm(size * (size + 1) * 2), c(1, size, size + 1, 2))
    kernel <- array(rnorm(3 * 2 * 2), c(3, 2, 2, 1))
    span <- c((3 - 1) * d + 1, (2 - 1) * d + 1)
    if (padding == "valid" && any(c(size, size + 1) < span)) next
    y <- fwd(x, kernel, strides = c(s, s), dilation = c(d, d), padding = padding)
    out <- if (padding == "same") ceiling(c(size, size + 1) / s) else floor((c(size, size + 1) - span) / s) + 1
    expect_identical(dim(y)[2:3], as.integer(out))
    expect_equal(y, ref_depthwise(x, kernel, NULL, c(s, s), c(d, d), padding), tolerance = 1e-12)
  }
})

test_that("an input above 2^31 elements is computed correctly (opt-in: needs about 20 GiB)", {
  skip_if_not(identical(Sys.getenv("DEPTHWISE_TEST_HUGE"), "true"), "set DEPTHWISE_TEST_HUGE=true to run")
  withr::local_options(depthwise.memory_limit = NULL)
  n <- 46341L  # n * n > 2^31
  x <- array(0, c(1L, n, n, 1L))
  x[1, n, n, 1] <- 2       # element index n^2, beyond 2^31
  x[1, n - 1, n, 1] <- 3
  layer <- layer_depthwise_conv_2d(kernel_size = 2, strides = 3, use_bias = FALSE,
                                   depthwise_initializer = "ones")
  y <- layer(x)
  out <- (n - 2) %/% 3 + 1
  expect_identical(dim(y), c(1L, out, out, 1L))
  # The last window covers rows/cols 3 * (out - 1) + 1:2.
  last <- 3 * (out - 1) + 1:2
  expect_equal(y[1, out, out, 1], sum(x[1, last, last, 1]))
  expect_equal(sum(y), sum(vapply(seq_len(out), function(i) sum(x[1, 3 * (i - 1) + 1:2, last, 1]), 1)))
})
