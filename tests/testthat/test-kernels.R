# The C++ kernels (fast and reference) against the plain-R loop of the
# formula on a grid of odd shapes.

run_kernel <- function(x, kernel, bias, strides, dilation, padding, data_format,
                       activation = "linear", threads = 1L, reference = FALSE) {
  code <- match(activation, dw_activation_names()) - 1L
  dw_forward(x, kernel, bias, as.integer(strides), as.integer(dilation),
             if (padding == "same") 1L else 0L, data_format == "channels_first",
             code, threads, reference)
}

grid <- expand.grid(
  kernel = c("1x1", "2x2", "3x3", "5x5", "7x7", "1x3", "4x2", "3x5"),
  strides = c("1x1", "2x2", "1x3"),
  dilation = c("1x1", "2x2", "2x1"),
  padding = c("valid", "same"),
  data_format = c("channels_last", "channels_first"),
  multiplier = 1:3,
  stringsAsFactors = FALSE
)
grid <- grid[!(grid$strides != "1x1" & grid$dilation != "1x1"), ]
pair <- function(s) as.integer(strsplit(s, "x", fixed = TRUE)[[1]])

test_that("fast and reference kernels match the plain-R formula on a grid of shapes", {
  set.seed(42)
  picked <- grid[sample(nrow(grid), 160), ]
  checked <- 0L
  for (k in seq_len(nrow(picked))) {
    g <- picked[k, ]
    ks <- pair(g$kernel); st <- pair(g$strides); dl <- pair(g$dilation)
    batch <- sample(1:3, 1); C <- sample(1:4, 1)
    span <- (ks - 1) * dl + 1
    # Small inputs, sometimes exactly the kernel span (a 1x1 output).
    H <- span[1] + sample(0:4, 1); W <- span[2] + sample(0:4, 1)
    if (k %% 7 == 0) { H <- span[1]; W <- span[2] }
    dims <- if (g$data_format == "channels_first") c(batch, C, H, W) else c(batch, H, W, C)
    x <- array(rnorm(prod(dims)), dims)
    kernel <- array(rnorm(prod(ks) * C * g$multiplier), c(ks, C, g$multiplier))
    bias <- rnorm(C * g$multiplier)
    expected <- ref_depthwise(x, kernel, bias, st, dl, g$padding, g$data_format)
    fast <- run_kernel(x, kernel, bias, st, dl, g$padding, g$data_format)
    reference <- run_kernel(x, kernel, bias, st, dl, g$padding, g$data_format, reference = TRUE)
    label <- paste(names(g), g, collapse = " ")
    expect_identical(dim(fast), dim(expected), label = label)
    expect_equal(fast, expected, tolerance = 1e-12, label = label)
    expect_equal(reference, expected, tolerance = 1e-12, label = label)
    checked <- checked + 1L
  }
  expect_equal(checked, 160L)
})

test_that("a 1x1 output from a kernel-sized input is the full dot product", {
  x <- array(1:18, c(1, 3, 3, 2))
  kernel <- array(c(rep(1, 9), rep(2, 9)), c(3, 3, 2, 1))
  y <- layer_depthwise_conv_2d(x, kernel_size = 3, depthwise_initializer = function(shape, dtype) kernel)
  expect_identical(dim(y), c(1L, 1L, 1L, 2L))
  expect_equal(as.vector(y), c(sum(1:9), 2 * sum(10:18)))
})

test_that("results are identical at 1 and 2 threads", {
  x <- array(rnorm(2 * 30 * 31 * 9), c(2, 30, 31, 9))
  kernel <- array(rnorm(3 * 3 * 9 * 2), c(3, 3, 9, 2))
  bias <- rnorm(18)
  one <- run_kernel(x, kernel, bias, c(1, 1), c(1, 1), "same", "channels_last", "relu", threads = 1L)
  two <- run_kernel(x, kernel, bias, c(1, 1), c(1, 1), "same", "channels_last", "relu", threads = 2L)
  expect_identical(one, two)
  xf <- aperm(x, c(1, 4, 2, 3))
  one <- run_kernel(xf, kernel, bias, c(2, 2), c(1, 1), "same", "channels_first", threads = 1L)
  two <- run_kernel(xf, kernel, bias, c(2, 2), c(1, 1), "same", "channels_first", threads = 2L)
  expect_identical(one, two)
})

test_that("channels_first equals channels_last on permuted data", {
  x <- array(rnorm(2 * 9 * 8 * 3), c(2, 9, 8, 3))
  kernel <- array(rnorm(3 * 2 * 3 * 2), c(3, 2, 3, 2))
  last <- run_kernel(x, kernel, NULL, c(2, 1), c(1, 1), "same", "channels_last", "tanh")
  first <- run_kernel(aperm(x, c(1, 4, 2, 3)), kernel, NULL, c(2, 1), c(1, 1), "same", "channels_first", "tanh")
  expect_equal(aperm(first, c(1, 3, 4, 2)), last, tolerance = 1e-14)
})

test_that("a batch of size 0 gives an output with 0 in its first dimension", {
  for (fmt in c("channels_last", "channels_first")) {
    dims <- if (fmt == "channels_first") c(0, 3, 6, 6) else c(0, 6, 6, 3)
    y <- layer_depthwise_conv_2d(array(0, dims), kernel_size = 3, data_format = fmt, depth_multiplier = 2)
    expect_identical(dim(y), if (fmt == "channels_first") c(0L, 6L, 4L, 4L) else c(0L, 4L, 4L, 6L))
  }
})

test_that("NaN and Inf propagate and stay in their channel", {
  x <- array(1, c(1, 5, 5, 3))
  x[1, 3, 3, 2] <- NaN
  x[1, 1, 1, 3] <- Inf
  y <- layer_depthwise_conv_2d(x, kernel_size = 3, padding = "same", depthwise_initializer = "ones",
                               activation = "relu")
  expect_true(all(is.finite(y[, , , 1])))
  expect_equal(sum(is.nan(y[, , , 2])), 9)
  expect_true(all(is.nan(y[1, 2:4, 2:4, 2])))
  expect_equal(y[1, 1:2, 1:2, 3], matrix(Inf, 2, 2))
  expect_true(all(is.finite(y[1, 3:5, , 3])))
})

test_that("strides and dilations far beyond the input give the reference answer", {
  big <- .Machine$integer.max
  x <- array(rnorm(2 * 5 * 6 * 3), c(2, 5, 6, 3))
  kernel <- array(rnorm(3 * 3 * 3 * 2), c(3, 3, 3, 2))
  bias <- rnorm(6)
  for (fmt in c("channels_last", "channels_first")) {
    xx <- if (fmt == "channels_first") aperm(x, c(1, 4, 2, 3)) else x
    for (case in list(list(s = c(big, big), d = c(1, 1)), list(s = c(1, big), d = c(1, 1)),
                      list(s = c(1, 1), d = c(2^30, 2^30)), list(s = c(1, 1), d = c(1, 2^30)))) {
      fast <- run_kernel(xx, kernel, bias, case$s, case$d, "same", fmt)
      ref <- run_kernel(xx, kernel, bias, case$s, case$d, "same", fmt, reference = TRUE)
      expect_identical(dim(fast), dim(ref))
      expect_equal(fast, ref, tolerance = 1e-12)
      expect_equal(fast, ref_depthwise(xx, kernel, bias, case$s, case$d, "same", fmt), tolerance = 1e-12)
    }
  }
})
