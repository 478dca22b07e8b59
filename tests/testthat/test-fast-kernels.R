# The optimised kernels (src/kernel_impl.h) on every path they have, at
# every instruction set this CPU can run, against the reference kernel and
# the plain-R loop.

fast_run <- function(x, kernel, bias, strides = c(1, 1), dilation = c(1, 1), padding = "same",
                     data_format = "channels_last", activation = "linear", threads = 1L,
                     reference = FALSE) {
  code <- match(activation, dw_activation_names()) - 1L
  dw_forward(x, kernel, bias, as.integer(rep_len(strides, 2)), as.integer(rep_len(dilation, 2)),
             if (padding == "same") 1L else 0L, data_format == "channels_first", code,
             as.integer(threads), reference)
}

# Instruction sets to exercise: the baseline always, plus what the CPU has.
isa_levels <- function() {
  detected <- dw_isa()[["detected"]]
  c("baseline", if (detected %in% c("avx2", "avx512")) "avx2", if (detected == "avx512") "avx512")
}

with_isa <- function(isa, code) {
  old <- dw_set_isa(isa)
  on.exit(dw_set_isa(old), add = TRUE)
  force(code)
}

make_case <- function(dims, kh, kw, C, M, seed) {
  set.seed(seed)
  list(x = array(rnorm(prod(dims)), dims),
       kernel = array(rnorm(kh * kw * C * M), c(kh, kw, C, M)),
       bias = rnorm(C * M))
}

# Each row is a path: kernel size (3x3 / 5x5 tiles, general fallback),
# strides and dilation (specialised pairs and others), depth multiplier,
# batch, layout (channels_last in place / strided copy, including input
# rows that 'valid' leaves unread: cl_*_odd_valid / small planes of
# one to eight vectors per column (five and more with 32 registers only),
# masked at both ends: cl_tiny_*, cl_small_*, and one too narrow for its
# padding; columns of 128 doubles and more, whose tiles prefetch the next
# columns, with batches of whole vectors, whose column ends run as whole
# steps: cl_*_long; outputs of 128 KB and more with line-aligned columns
# of 96 doubles and more, stored non-temporally from the first whole line:
# cl_*_stream; channels_first
# direct with affine, mapped or permuted lanes, narrower than a vector or
# not, or packed; tiles over border rows, whose padding rows are skipped,
# up to tiles with padding at both ends; outputs of 128 KB and more, stored
# non-temporally: cf_*_stream), partial vectors and tiny outputs.
path_cases <- read.table(header = TRUE, stringsAsFactors = FALSE, text = "
name                     fmt   N  H   W   C  kh kw sh sw dh dw M pad
cl_3x3_same              last  1  23  19  5  3  3  1  1  1  1  1 same
cl_3x3_valid_batch       last  4  10  10  12 3  3  1  1  1  1  1 valid
cl_3x3_batch3_odd        last  3  17  9   2  3  3  1  1  1  1  1 same
cl_5x5_same              last  2  14  21  3  5  5  1  1  1  1  1 same
cl_3x3_dil2              last  4  20  18  3  3  3  1  1  2  2  1 same
cl_5x5_dil2              last  1  25  24  2  5  5  1  1  2  2  1 valid
cl_3x3_stride2           last  1  29  30  4  3  3  2  2  1  1  1 same
cl_3x3_stride2_batch     last  3  16  17  2  3  3  2  2  1  1  1 same
cl_5x5_stride2           last  2  23  22  2  5  5  2  2  1  1  1 same
cl_3x3_stride_rows3      last  2  19  13  2  3  3  3  1  1  1  1 same
cl_3x3_s2_n1_even_same   last  1  28  12  3  3  3  2  2  1  1  1 same
cl_3x3_s2_n1_odd_valid   last  1  27  11  2  3  3  2  2  1  1  1 valid
cl_5x5_s2_n1_same        last  1  23  14  2  5  5  2  2  1  1  1 same
cl_1x1_s2_n1             last  1  9   9   2  1  1  2  2  1  1  1 same
cl_2x2_s2_n1_odd_valid   last  1  27  10  2  2  2  2  2  1  1  1 valid
cl_4x4_s2_n1_odd_valid   last  1  5   9   2  4  4  2  1  1  1  1 valid
cl_3x3_stride_cols2      last  1  13  21  2  3  3  1  2  1  1  1 valid
cl_3x3_m2                last  4  12  12  3  3  3  1  1  1  1  2 valid
cl_3x3_m3                last  1  11  9   2  3  3  1  1  1  1  3 same
cl_general_7x7           last  2  15  16  2  7  7  1  1  1  1  1 same
cl_general_2x4           last  3  9   11  3  2  4  1  1  1  1  2 same
cl_general_1x1           last  2  6   5   3  1  1  1  1  1  1  1 valid
cl_general_3x3_s2d2      last  1  21  21  2  3  3  2  2  2  2  1 same
cl_tiny_1x1_out          last  3  3   3   4  3  3  1  1  1  1  1 valid
cl_tiny_short_cols       last  1  2   9   3  3  3  1  1  1  1  1 same
cl_small_7x7_same        last  1  7   7   6  3  3  1  1  1  1  1 same
cl_small_batch2_valid    last  2  5   9   3  3  3  1  1  1  1  1 valid
cl_small_5x5_dil2        last  1  8   10  2  5  5  1  1  2  2  1 same
cl_small_5x5_batch2      last  2  4   11  2  5  5  1  1  1  1  1 same
cl_small_m2_batch4       last  4  2   6   3  3  3  1  1  1  1  2 same
cl_small_wide            last  1  6   40  2  3  3  1  1  1  1  1 same
cl_small_vn1             last  1  3   8   2  3  3  1  1  1  1  1 same
cl_small_vn3_dil2        last  1  10  9   2  3  3  1  1  2  2  1 same
cl_small_vn3_5x5         last  1  12  11  2  5  5  1  1  1  1  1 same
cl_small_vn4             last  1  14  13  3  3  3  1  1  1  1  1 same
cl_small_vn4_batch2_full last  2  8   7   2  3  3  1  1  1  1  1 same
cl_small_batch5_general  last  5  3   6   2  3  3  1  1  1  1  1 same
cl_small_vn5             last  1  17  11  2  3  3  1  1  1  1  1 same
cl_small_vn6_5x5         last  1  22  9   2  5  5  1  1  1  1  1 same
cl_small_vn7_dil2        last  1  28  7   2  3  3  1  1  2  2  1 same
cl_small_vn8_batch2      last  2  16  5   3  3  3  1  1  1  1  1 same
cl_small_vn8_5x5_dil2    last  3  10  12  2  5  5  1  1  2  2  1 same
cl_small_vn7_valid_m2    last  2  16  9   2  3  3  1  1  1  1  2 valid
cl_5x5_batch4_long       last  4  40  13  2  5  5  1  1  1  1  1 same
cl_3x3_batch8_dil2_long  last  8  20  11  2  3  3  1  1  2  2  1 same
cl_5x5_cols2_long        last  2  70  20  2  5  5  1  2  1  1  1 same
cl_5x5_m2_batch4_long    last  4  33  9   2  5  5  1  1  1  1  2 same
cl_3x3_stream_valid_m2   last  2  50  10  12 3  3  1  1  1  1  2 valid
cl_3x3_stream_n1_same    last  1  104 9   20 3  3  1  1  1  1  1 same
cl_3x3_stream_dil2       last  4  30  12  16 3  3  1  1  2  2  1 same
cl_3x3_stream_s2_copy    last  2  112 20  16 3  3  2  2  1  1  1 same
cl_3x3_stream_cols2      last  1  120 30  16 3  3  1  2  1  1  1 same
cf_3x3_direct            first 1  13  12  70 3  3  1  1  1  1  1 same
cf_3x3_direct_tail       first 1  9   11  66 3  3  1  1  1  1  1 same
cf_3x3_small_block       first 4  10  10  12 3  3  1  1  1  1  1 valid
cf_5x5_direct            first 2  12  13  35 5  5  1  1  1  1  1 same
cf_3x3_stride2           first 1  17  18  20 3  3  2  2  1  1  1 same
cf_3x3_dil2              first 4  15  14  16 3  3  1  1  2  2  1 same
cf_5x5_stride2           first 1  15  15  9  5  5  2  2  1  1  1 same
cf_5x5_dil2              first 2  19  16  40 5  5  1  1  2  2  1 same
cf_3x3_dil2_rows_only    first 1  23  12  70 3  3  1  1  2  1  1 valid
cf_3x3_m2_affine         first 4  9   8   5  3  3  1  1  1  1  2 valid
cf_5x5_m2_batch8_offset  first 8  10  9   6  5  5  1  1  1  1  2 same
cf_3x3_m3_batch4_s2      first 4  11  9   7  3  3  2  2  1  1  3 same
cf_3x3_m2_batch4_dil2    first 4  13  12  6  3  3  1  1  2  2  2 same
cf_3x3_m2_mapped         first 1  9   8   37 3  3  1  1  1  1  2 same
cf_3x3_m3_mapped_batch3  first 3  7   9   5  3  3  1  1  1  1  3 same
cf_3x3_m2_permuted_tail  first 1  11  10  9  3  3  1  1  1  1  2 same
cf_5x5_m4_permuted       first 1  12  11  5  5  5  1  1  1  1  4 same
cf_3x3_m2_batch2_s2      first 2  13  12  7  3  3  2  2  1  1  2 same
cf_3x3_m3_dil2_narrow    first 1  14  13  1  3  3  1  1  2  2  3 same
cf_3x3_m2_batch5_packed  first 5  8   9   3  3  3  1  1  1  1  2 valid
cf_general_7x7_m2        first 1  12  12  6  7  7  1  1  1  1  2 same
cf_general_7x7           first 1  12  13  9  7  7  1  1  1  1  1 same
cf_general_2x3_s3        first 2  11  10  6  2  3  3  1  1  1  1 same
cf_packed_large_image    first 1  70  66  3  3  3  1  1  1  1  1 same
cf_packed_5x5            first 2  68  64  2  5  5  1  1  1  1  1 same
cf_tiny_1x1_out          first 2  3   3   7  3  3  1  1  1  1  1 valid
cf_3x3_both_borders      first 2  3   5   20 3  3  1  1  1  1  1 same
cf_5x5_dil2_short        first 1  6   7   12 5  5  1  1  2  2  1 same
cf_5x5_s2_short          first 3  5   6   10 5  5  2  2  1  1  1 same
cf_3x3_s2_border_tiles   first 1  12  9   40 3  3  2  2  1  1  1 same
cf_3x3_stream            first 2  30  30  16 3  3  1  1  1  1  1 same
cf_5x5_stream_dil2       first 1  24  26  64 5  5  1  1  2  2  1 same
cf_3x3_stream_m2_offset  first 4  26  24  16 3  3  1  1  1  1  2 same
cf_3x3_cold_m2_perm      first 1  41  50  20 3  3  1  1  1  1  2 same
")

case_input <- function(row) {
  dims <- if (row$fmt == "first") c(row$N, row$C, row$H, row$W) else c(row$N, row$H, row$W, row$C)
  make_case(dims, row$kh, row$kw, row$C, row$M, seed = nchar(row$name) * 97 + row$H)
}

run_case <- function(row, inp, ..., reference = FALSE) {
  fast_run(inp$x, inp$kernel, inp$bias, c(row$sh, row$sw), c(row$dh, row$dw), row$pad,
           if (row$fmt == "first") "channels_first" else "channels_last", ..., reference = reference)
}

test_that("every fast path matches the reference kernel at every instruction set", {
  checked <- 0L
  for (k in seq_len(nrow(path_cases))) {
    row <- path_cases[k, ]
    inp <- case_input(row)
    expected <- run_case(row, inp, reference = TRUE)
    for (isa in isa_levels()) {
      got <- with_isa(isa, run_case(row, inp))
      label <- paste(row$name, isa)
      expect_identical(dim(got), dim(expected), label = label)
      expect_lt(scale_rel_diff(got, expected), 1e-12, label = label)
      checked <- checked + 1L
    }
  }
  expect_equal(checked, nrow(path_cases) * length(isa_levels()))
})

test_that("the reference kernel agrees with the plain-R formula on the path cases", {
  # Ties the C++ oracle used above to the formula itself (small cases only).
  for (name in c("cl_3x3_stride2", "cl_3x3_m2", "cf_3x3_m2_mapped", "cf_3x3_dil2", "cl_general_2x4")) {
    row <- path_cases[path_cases$name == name, ]
    inp <- case_input(row)
    fmt <- if (row$fmt == "first") "channels_first" else "channels_last"
    expected <- ref_depthwise(inp$x, inp$kernel, inp$bias, c(row$sh, row$sw), c(row$dh, row$dw), row$pad, fmt)
    expect_equal(run_case(row, inp), expected, tolerance = 1e-12, label = name)
  }
})

test_that("results are identical at 1, 2, 3 and 4 threads on every layout", {
  for (name in c("cl_3x3_same", "cl_3x3_stride2", "cl_5x5_same", "cl_small_wide", "cl_3x3_stream_n1_same",
                 "cf_3x3_direct", "cf_3x3_stream", "cf_3x3_stream_m2_offset", "cf_3x3_cold_m2_perm", "cf_5x5_dil2",
                 "cf_3x3_m2_mapped", "cf_3x3_m2_permuted_tail", "cf_5x5_m2_batch8_offset", "cf_packed_large_image",
                 "cl_general_7x7")) {
    row <- path_cases[path_cases$name == name, ]
    inp <- case_input(row)
    one <- run_case(row, inp, threads = 1L)
    for (th in 2:4) expect_identical(run_case(row, inp, threads = th), one, label = paste(name, th))
  }
  # Few planes and big ones: the work is split into column bands.
  set.seed(7)
  x <- array(rnorm(1 * 300 * 260 * 2), c(1, 300, 260, 2))
  kernel <- array(rnorm(9 * 2), c(3, 3, 2, 1))
  one <- fast_run(x, kernel, NULL, threads = 1L)
  for (th in 2:4) expect_identical(fast_run(x, kernel, NULL, threads = th), one)
  expect_lt(scale_rel_diff(one, fast_run(x, kernel, NULL, reference = TRUE)), 1e-12)
  xf <- aperm(x, c(1, 4, 2, 3))
  one <- fast_run(xf, kernel, NULL, data_format = "channels_first", threads = 1L)
  for (th in 2:4) expect_identical(fast_run(xf, kernel, NULL, data_format = "channels_first", threads = th), one)
  # channels_last again, with columns of whole lines, stored non-temporally.
  x <- array(rnorm(1 * 256 * 200 * 2), c(1, 256, 200, 2))
  bias <- c(0.5, -0.25)
  one <- fast_run(x, kernel, bias, threads = 1L)
  for (th in 2:4) expect_identical(fast_run(x, kernel, bias, threads = th), one)
  expect_lt(scale_rel_diff(one, fast_run(x, kernel, bias, reference = TRUE)), 1e-12)
})

test_that("channels_first row bands change tile heights, not results", {
  # Few output columns: at 2 threads and more the rows are split into
  # bands, so a row's tile height depends on the thread count, and with it
  # which loop takes each lane group (30 groups here: 28 in steps of 4 and
  # 2 alone at height 4, 6 steps of 5 at height 3). Every loop must add the
  # taps in the same order.
  for (k in c(3, 5)) {
    set.seed(11 + k)
    x <- array(rnorm(2 * 60 * 130 * 5), c(2, 60, 130, 5))
    kernel <- array(rnorm(k * k * 60), c(k, k, 60, 1))
    bias <- rnorm(60)
    one <- fast_run(x, kernel, bias, data_format = "channels_first", threads = 1L)
    for (th in 2:4) {
      # (As vectors: waldo fails to print a difference of these arrays.)
      expect_identical(c(fast_run(x, kernel, bias, data_format = "channels_first", threads = th)), c(one),
                       label = paste0(k, "x", k, ", ", th, " threads"))
    }
    ref <- fast_run(x, kernel, bias, data_format = "channels_first", reference = TRUE)
    expect_lt(scale_rel_diff(one, ref), 1e-12)
  }
})

test_that("fused and span activations match the reference, NaN and -0 included", {
  row <- path_cases[path_cases$name == "cl_3x3_same", ]
  inp <- case_input(row)
  inp$x[1, 5, 5, 2] <- NaN
  inp$x[1, 9, 3, 1] <- -Inf
  small <- path_cases[path_cases$name == "cl_small_7x7_same", ]
  small_inp <- case_input(small)
  small_inp$x[1, 4, 4, 2] <- NaN
  small_inp$x[1, 2, 6, 1] <- -Inf
  for (fmt in c("last", "first", "small")) {
    if (fmt == "small") {
      row <- small
      inp <- small_inp
    }
    row$fmt <- if (fmt == "first") "first" else "last"
    x <- if (fmt == "first") aperm(inp$x, c(1, 4, 2, 3)) else inp$x
    for (act in c("relu", "relu6", "tanh", "silu", "softmax")) {
      expected <- run_case(row, list(x = x, kernel = inp$kernel, bias = inp$bias), activation = act, reference = TRUE)
      for (isa in isa_levels()) {
        got <- with_isa(isa, run_case(row, list(x = x, kernel = inp$kernel, bias = inp$bias), activation = act))
        label <- paste(fmt, act, isa)
        expect_identical(is.nan(got), is.nan(expected), label = label)
        expect_gt(sum(is.nan(expected)), 0)
        # Infinities exactly, finite values to 1e-12 of the output's scale.
        inf <- is.infinite(expected)
        expect_identical(got[inf], expected[inf], label = label)
        ok <- is.finite(expected)
        expect_true(all(is.finite(got[ok])), label = label)
        expect_lt(max(abs(got[ok] - expected[ok])) / max(1, max(abs(expected[ok]))), 1e-12, label = label)
      }
    }
  }
  # relu keeps -0 as the reference does (v < 0 is false for -0).
  x <- array(0, c(1, 4, 4, 1))
  k <- array(0, c(3, 3, 1, 1))
  y <- fast_run(x, k, -0, activation = "relu", padding = "valid")
  expect_identical(1 / y, 1 / fast_run(x, k, -0, activation = "relu", padding = "valid", reference = TRUE))
})

test_that("span activations stay inside the lanes of each channels_first work unit", {
  # A pixel block of 400 lanes over 64 rows is split into lane chunks (a
  # chunk's column strip is kept under 512 KiB: two chunks of 200 lanes
  # here), each its own work unit. An activation applied per pixel once
  # reached past the unit's lanes into its neighbour's, activating them
  # twice (sigmoid: up to 0.5 off) and racing with the thread computing
  # them. Dilation 2 runs its tiles over every other row: the same there.
  case <- make_case(c(1, 400, 64, 8), 3, 3, 400, 1, seed = 23)
  for (dil in 1:2) {
    for (act in c("sigmoid", "tanh", "elu")) {
      expected <- fast_run(case$x, case$kernel, case$bias, dilation = dil, data_format = "channels_first",
                           activation = act, reference = TRUE)
      for (isa in isa_levels()) {
        for (th in 1:2) {
          got <- with_isa(isa, fast_run(case$x, case$kernel, case$bias, dilation = dil,
                                        data_format = "channels_first", activation = act, threads = th))
          expect_lt(scale_rel_diff(got, expected), 1e-12, label = paste(act, dil, isa, th))
        }
      }
    }
  }
})

test_that("non-finite weights give the reference result (padding must not meet 0 * Inf)", {
  x <- array(1, c(1, 5, 5, 2))
  kernel <- array(1, c(3, 3, 2, 1))
  kernel[1, 1, 1, 1] <- Inf
  y <- fast_run(x, kernel, NULL)
  expect_identical(y, fast_run(x, kernel, NULL, reference = TRUE))
  # The top-left output only meets the Inf weight through padding.
  expect_equal(y[1, 1, 1, 1], 4)
  expect_equal(y[1, 3, 3, 1], Inf)
  # Any position and kind: the check reads the weights four vectors at a
  # time, then a vector at a time, the last one partial (18 weights: 16 in
  # the first loop and 2 after at 4 lanes; 8 blocks of 2 at 2 lanes). Weight
  # 6 is tap (3, 2) of channel 1, weight 18 tap (3, 3) of channel 2; the
  # outputs below meet them only through padding.
  for (isa in isa_levels()) {
    for (pos in 1:18) {
      for (value in c(-Inf, NaN)) {
        kernel <- array(1, c(3, 3, 2, 1))
        kernel[pos] <- value
        label <- paste(isa, pos, value)
        y <- with_isa(isa, fast_run(x, kernel, NULL))
        expect_identical(y, fast_run(x, kernel, NULL, reference = TRUE), label = label)
        if (pos %in% c(6, 18)) {
          corner <- if (pos == 6) y[1, 5, 3, 1] else y[1, 5, 5, 2]
          expect_equal(corner, if (pos == 6) 6 else 4, label = label)
        }
      }
    }
  }
})

test_that("large outputs come from the recycling allocator and behave as R vectors", {
  skip_if(dw_output_cache()[["enabled"]] == 0, "no custom output allocator on this platform")
  case <- make_case(c(1, 64, 64, 8), 3, 3, 8, 1, seed = 11)  # output 256 KiB
  x <- case$x
  kernel <- case$kernel
  expected <- fast_run(x, kernel, NULL, reference = TRUE)
  before <- dw_output_cache()
  ys <- lapply(1:5, function(i) fast_run(x, kernel, NULL))
  after <- dw_output_cache()
  expect_gte(after[["live_blocks"]], before[["live_blocks"]] + 5)
  for (y in ys) expect_lt(scale_rel_diff(y, expected), 1e-12)
  # Copies, modification and serialisation work as for any vector.
  y <- ys[[1]]
  z <- y
  z[1] <- 42
  expect_false(identical(y[1], 42))
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  saveRDS(y, path)
  expect_identical(readRDS(path), y)
  # Once unreachable and collected, blocks return to the cache and are reused.
  rm(ys, y, z)
  invisible(gc())
  collected <- dw_output_cache()
  expect_lt(collected[["live_blocks"]], after[["live_blocks"]])
  expect_gte(collected[["cached_blocks"]], 1)
  y2 <- fast_run(x, kernel, NULL)
  expect_gt(dw_output_cache()[["hits"]], collected[["hits"]])
  expect_lt(scale_rel_diff(y2, expected), 1e-12)
  # Releasing the cache gives the blocks back.
  expect_equal(dw_output_cache(release = TRUE)[["cached_blocks"]], 0)
})

test_that("a loop that drops its outputs grows the pool instead of collecting", {
  skip_if(dw_output_cache()[["enabled"]] == 0, "no custom output allocator on this platform")
  case_of <- function(h) make_case(c(1, h, h, 4), 3, 3, 4, 1, seed = h)
  first <- case_of(80)   # 200 KB outputs
  small <- case_of(64)   # 128 KB
  other <- case_of(72)   # 162 KB: no cached block fits
  run <- function(case) fast_run(case$x, case$kernel, NULL)
  invisible(gc())  # blocks of earlier tests' dead outputs come back, then go
  dw_output_cache(release = TRUE)
  on.exit(dw_output_cache(release = TRUE), add = TRUE)
  # Misses with no hits collect after 4 in a row; that collection also
  # starts the count of bytes handed out afresh (earlier tests' calls
  # could otherwise be near the point where any miss collects).
  before_first <- dw_output_cache()
  held_first <- lapply(1:5, function(i) run(first))
  expect_gte(dw_output_cache()[["collections"]], before_first[["collections"]] + 1)
  ys <- lapply(1:50, function(i) run(small))
  rm(ys)
  invisible(gc())
  # 50 hits since the last collection the allocator asked for (outputs
  # kept: dropped, their blocks could come back at one of R's own
  # collections, join and serve the misses below) ...
  smalls <- lapply(1:50, function(i) run(small))
  before <- dw_output_cache()
  # ... let a run of 10 misses (outputs held: none can come back) map
  # fresh blocks, up to a quarter of the hits, rather than collect after 4.
  held <- lapply(1:10, function(i) run(other))
  after <- dw_output_cache()
  expect_equal(after[["misses"]] - before[["misses"]], 10)
  expect_equal(after[["collections"]], before[["collections"]])
  # After a release (the hits are forgotten) 10 misses collect twice.
  dw_output_cache(release = TRUE)
  held <- c(held, lapply(1:10, function(i) run(other)))
  expect_gte(dw_output_cache()[["collections"]], after[["collections"]] + 2)
  expect_lt(scale_rel_diff(held[[20]], fast_run(other$x, other$kernel, NULL, reference = TRUE)), 1e-12)
})

test_that("outputs promoted to an older generation come back through a full collection", {
  skip_if(dw_output_cache()[["enabled"]] == 0, "no custom output allocator on this platform")
  case <- make_case(c(1, 200, 200, 16), 3, 3, 16, 1, seed = 12)  # output 5 MiB
  x <- case$x
  kernel <- case$kernel
  expected <- fast_run(x, kernel, NULL, reference = TRUE)
  # Earlier tests' dead outputs come back and go first: joined, their
  # blocks could serve the outputs below, which must miss.
  invisible(gc())
  dw_output_cache(release = TRUE)
  old_estimate <- dw_output_cache()[["full_gc_ms"]]
  on.exit(dw_output_cache(full_gc_ms = old_estimate), add = TRUE)
  # Three outputs survive a full collection, so they sit in the oldest
  # generation, where minor collections do not look; then two are dropped.
  ys <- lapply(1:3, function(i) fast_run(x, kernel, NULL))
  invisible(gc())
  ys[1:2] <- list(NULL)
  # With a full collection estimated to cost more than fresh pages, misses
  # map new blocks; after a few in a row a minor collection runs, which
  # cannot see the dropped outputs, and nothing more happens ...
  dw_output_cache(full_gc_ms = 1e6)
  before <- dw_output_cache()
  kept <- lapply(1:5, function(i) fast_run(x, kernel, NULL))
  after_fresh <- dw_output_cache()
  expect_equal(after_fresh[["full_collections"]], before[["full_collections"]])
  expect_gte(after_fresh[["misses"]], before[["misses"]] + 4)
  expect_gte(after_fresh[["collections"]], before[["collections"]] + 1)
  expect_gt(after_fresh[["fault_ns_per_byte"]], 0)
  # ... and estimated to cost less, the next collection point also runs a
  # full collection, and a dropped block is reused.
  dw_output_cache(full_gc_ms = 0)
  kept <- c(kept, lapply(1:5, function(i) fast_run(x, kernel, NULL)))
  after_reuse <- dw_output_cache()
  expect_gte(after_reuse[["full_collections"]], after_fresh[["full_collections"]] + 1)
  expect_gte(after_reuse[["hits"]], after_fresh[["hits"]] + 1)
  for (y in kept) expect_lt(scale_rel_diff(y, expected), 1e-12)
  rm(kept, y)
  # A full collection that frees nothing (every output still held) is not
  # repeated at every collection point.
  invisible(gc())
  dw_output_cache(release = TRUE, full_gc_ms = 0)
  before <- dw_output_cache()
  held <- lapply(1:16, function(i) fast_run(x, kernel, NULL))
  after <- dw_output_cache()
  expect_gte(after[["collections"]] - before[["collections"]], 3)
  expect_gte(after[["full_collections"]] - before[["full_collections"]], 1)
  expect_lt(after[["full_collections"]] - before[["full_collections"]],
            after[["collections"]] - before[["collections"]])
  expect_lt(scale_rel_diff(held[[16]], expected), 1e-12)
  dw_output_cache(release = TRUE)
})

test_that("a larger cached block is split for smaller outputs and joined again when they return", {
  skip_if(dw_output_cache()[["enabled"]] == 0, "no custom output allocator on this platform")
  big <- make_case(c(1, 200, 200, 16), 3, 3, 16, 1, seed = 13)  # output 5 MiB
  small <- make_case(c(1, 64, 64, 8), 3, 3, 8, 1, seed = 14)    # 256 KiB
  run <- function(case) fast_run(case$x, case$kernel, NULL)
  expected_big <- fast_run(big$x, big$kernel, NULL, reference = TRUE)
  expected_small <- fast_run(small$x, small$kernel, NULL, reference = TRUE)
  invisible(gc())
  dw_output_cache(release = TRUE)
  on.exit(dw_output_cache(release = TRUE), add = TRUE)
  y <- run(big)
  rm(y)
  invisible(gc())
  start <- dw_output_cache()
  expect_equal(start[["cached_blocks"]], 1)
  # No cached block is near 256 KiB: the first pages of the 5 MiB one serve
  # it (a hit, not fresh pages) and the rest stays cached; twice.
  y_first <- run(small)
  y_second <- run(small)
  split <- dw_output_cache()
  expect_equal(split[["splits"]] - start[["splits"]], 2)
  expect_equal(split[["hits"]] - start[["hits"]], 2)
  expect_equal(split[["misses"]], start[["misses"]])
  expect_equal(split[["cached_blocks"]], 1)
  expect_lt(split[["cached_bytes"]], start[["cached_bytes"]] - 512 * 1024 + 1)
  expect_equal(split[["cached_bytes"]] + split[["live_bytes"]], start[["cached_bytes"]] + start[["live_bytes"]])
  expect_lt(scale_rel_diff(y_first, expected_small), 1e-12)
  expect_lt(scale_rel_diff(y_second, expected_small), 1e-12)
  # The first piece comes back next to a live one: cached on its own.
  rm(y_first)
  invisible(gc())
  one_back <- dw_output_cache()
  expect_equal(one_back[["joins"]], split[["joins"]])
  expect_equal(one_back[["cached_blocks"]], 2)
  # The second joins both neighbours (the piece before it and the rest
  # after it), and the whole block serves the large output again.
  rm(y_second)
  invisible(gc())
  joined <- dw_output_cache()
  expect_equal(joined[["joins"]] - one_back[["joins"]], 2)
  expect_equal(joined[["cached_blocks"]], 1)
  expect_equal(joined[["cached_bytes"]], start[["cached_bytes"]])
  y_big <- run(big)
  again <- dw_output_cache()
  expect_equal(again[["hits"]] - joined[["hits"]], 1)
  expect_equal(again[["splits"]], joined[["splits"]])
  expect_equal(again[["cached_blocks"]], 0)
  expect_lt(scale_rel_diff(y_big, expected_big), 1e-12)
  # Under a cap that the joined block would exceed, a returning piece is
  # cached on its own (older blocks give way) instead of being thrown away
  # with its neighbours.
  rm(y_big)
  invisible(gc())
  whole <- dw_output_cache()[["cached_bytes"]]
  y_piece <- run(small)
  piece <- whole - dw_output_cache()[["cached_bytes"]]
  old_cap <- dw_output_cache()[["cap_bytes"]]
  on.exit(dw_output_cache(cap_bytes = old_cap), add = TRUE)
  dw_output_cache(cap_bytes = whole - 1)
  rm(y_piece)
  invisible(gc())
  capped <- dw_output_cache(cap_bytes = old_cap)
  expect_equal(capped[["cached_blocks"]], 1)
  expect_equal(capped[["cached_bytes"]], piece)
})

test_that("outputs of mixed sizes never share memory while blocks are split and joined", {
  skip_if(dw_output_cache()[["enabled"]] == 0, "no custom output allocator on this platform")
  sides <- c(64, 72, 96, 128, 160, 200)  # outputs of 128 KiB to 1.25 MiB
  cases <- lapply(sides, function(h) make_case(c(1, h, h, 4), 3, 3, 4, 1, seed = h))
  run <- function(k) fast_run(cases[[k]]$x, cases[[k]]$kernel, NULL)
  expected <- lapply(seq_along(cases), run)
  invisible(gc())
  dw_output_cache(release = TRUE)
  on.exit(dw_output_cache(release = TRUE), add = TRUE)
  before <- dw_output_cache()
  set.seed(21)
  held <- list()
  which_case <- integer(0)
  for (step in 1:300) {
    k <- sample(length(cases), 1)
    held[[length(held) + 1]] <- run(k)
    which_case <- c(which_case, k)
    drop <- which(runif(length(held)) < 0.3)
    if (length(drop)) {
      held <- held[-drop]
      which_case <- which_case[-drop]
    }
    if (step %% 7 == 0) invisible(gc())
  }
  after <- dw_output_cache()
  # The run did split and join blocks ...
  expect_gt(after[["splits"]], before[["splits"]])
  expect_gt(after[["joins"]], before[["joins"]])
  # ... and every output still held is intact: no block was handed out twice.
  intact <- vapply(seq_along(held), function(i) identical(held[[i]], expected[[which_case[i]]]), logical(1))
  expect_true(all(intact))
  expect_gt(length(held), 0)
})

test_that("the instruction set can be lowered and restored", {
  old <- dw_set_isa("baseline")
  expect_identical(dw_isa()[["active"]], "baseline")
  dw_set_isa(old)
  expect_identical(dw_isa()[["active"]], old)
  expect_error(dw_set_isa("sse9"), "unknown instruction set")
})

test_that("channels_first inputs beyond the cache (prefetching direct kernel) match the reference", {
  # From 32 MiB of input (cf_prefetch_bytes in src/kernel_fast.cpp) the
  # direct kernel prefetches the next row tile's rows and writes whole
  # output lines with non-temporal stores (when the output is 64-byte
  # aligned, as the package's large outputs are), and narrow pixel blocks
  # (16 lanes here) run direct instead of packed. Both cases are just above
  # that size: 2 x 128 x 128 x 128 and 1 x 16 x 512 x 512.
  for (dims in list(c(2, 128, 128, 128), c(1, 16, 512, 512))) {
    case <- make_case(dims, 3, 3, dims[2], 1, seed = 29)
    expect_gte(8 * length(case$x), 32 * 2^20)
    expected <- fast_run(case$x, case$kernel, case$bias, data_format = "channels_first", reference = TRUE)
    for (isa in isa_levels()) {
      for (th in 1:2) {
        got <- with_isa(isa, fast_run(case$x, case$kernel, case$bias, data_format = "channels_first",
                                      threads = th))
        expect_lt(scale_rel_diff(got, expected), 1e-12, label = paste(dims[4], isa, th))
      }
    }
  }
})
