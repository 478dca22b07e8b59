# Every bad argument gives a classed error that names the argument and the
# value given. Snapshots pin the wording.

x <- array(0, c(1, 6, 6, 2))

expect_depthwise_error <- function(expr, subclass) {
  err <- expect_error(expr, class = paste0("depthwise_error_", subclass))
  expect_s3_class(err, "depthwise_error")
}

test_that("kernel_size, strides and dilation_rate reject bad values", {
  for (arg in c("kernel_size", "strides", "dilation_rate")) {
    call_with <- function(v) {
      args <- list(kernel_size = 3)
      args[arg] <- list(v)
      do.call(layer_depthwise_conv_2d, args)
    }
    expect_depthwise_error(call_with(1.5), "value")
    expect_depthwise_error(call_with(0), "value")
    expect_depthwise_error(call_with(-1), "value")
    expect_depthwise_error(call_with(NA_real_), "value")
    expect_depthwise_error(call_with(c(1, 2, 3)), "value")
    expect_depthwise_error(call_with(Inf), "value")
    expect_depthwise_error(call_with(2^31), "value")
    expect_depthwise_error(call_with("3"), "type")
    expect_depthwise_error(call_with(NULL), "type")
    expect_depthwise_error(call_with(NA), "type")
    expect_depthwise_error(call_with(list("a", 1)), "type")
  }
  expect_snapshot(error = TRUE, {
    layer_depthwise_conv_2d(kernel_size = 1.5)
    layer_depthwise_conv_2d(kernel_size = "3")
    layer_depthwise_conv_2d(kernel_size = 3, strides = c(0, 1))
    layer_depthwise_conv_2d(kernel_size = 3, dilation_rate = -1)
    layer_depthwise_conv_2d(kernel_size = c(1, 2, 3))
  })
})

test_that("kernel_size is required", {
  expect_depthwise_error(layer_depthwise_conv_2d(), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(x), "value")
  expect_snapshot(layer_depthwise_conv_2d(), error = TRUE)
})

test_that("strides > 1 with dilation_rate > 1 is an error", {
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, strides = 2, dilation_rate = 2), "incompatible")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, strides = c(1, 2), dilation_rate = c(2, 1)), "incompatible")
  expect_snapshot(layer_depthwise_conv_2d(kernel_size = 3, strides = 2, dilation_rate = 2), error = TRUE)
})

test_that("padding, data_format, depth_multiplier and use_bias are checked", {
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, padding = "full"), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, padding = 1), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, padding = c("same", "valid")), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, data_format = "nhwc"), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 0), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 1.5), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = "2"), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, use_bias = NA), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, use_bias = "yes"), "type")
  expect_snapshot(error = TRUE, {
    layer_depthwise_conv_2d(kernel_size = 3, padding = "full")
    layer_depthwise_conv_2d(kernel_size = 3, data_format = "nhwc")
    layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 0)
    layer_depthwise_conv_2d(kernel_size = 3, use_bias = "yes")
  })
})

test_that("unknown activations list the valid names", {
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, activation = "relu7"), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, activation = 3), "type")
  expect_snapshot(layer_depthwise_conv_2d(kernel_size = 3, activation = "relu7"), error = TRUE)
})

test_that("R-function activations that fail or change the size give classed errors", {
  expect_depthwise_error(layer_depthwise_conv_2d(x, 3, activation = function(v) stop("boom")), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(x, 3, activation = function(v) v[1]), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(x, 3, activation = function(v) "a"), "value")
  expect_snapshot(layer_depthwise_conv_2d(x, 3, activation = function(v) v[1]), error = TRUE)
})

test_that("initializers are checked", {
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, depthwise_initializer = "glorot"), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, bias_initializer = 1), "type")
  expect_depthwise_error(
    layer_depthwise_conv_2d(x, 3, depthwise_initializer = function(shape, dtype = NULL) 1:3), "shape")
  expect_depthwise_error(
    layer_depthwise_conv_2d(x, 3, depthwise_initializer = function(shape, dtype = NULL) stop("no")), "value")
  expect_snapshot(layer_depthwise_conv_2d(kernel_size = 3, depthwise_initializer = "glorot"), error = TRUE)
})

test_that("bad regularizers and constraints are errors, not ignored", {
  for (arg in c("depthwise_regularizer", "bias_regularizer", "activity_regularizer",
                "depthwise_constraint", "bias_constraint")) {
    args <- list(kernel_size = 3)
    args[[arg]] <- "no_such_thing"
    expect_depthwise_error(do.call(layer_depthwise_conv_2d, args), "value")
    args[[arg]] <- 0.5
    expect_depthwise_error(do.call(layer_depthwise_conv_2d, args), "type")
  }
  expect_snapshot(layer_depthwise_conv_2d(kernel_size = 3, depthwise_regularizer = "l3"), error = TRUE)
})

test_that("`...` takes only the known named options", {
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, filters = 4), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(x, 3, 1, "valid", 1, NULL, 1, NULL, TRUE,
                                                 "zeros", "zeros", NULL, NULL, NULL, NULL, NULL, 5), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, name = 1), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, trainable = "no"), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, dtype = "int8"), "value")
  expect_depthwise_error(layer_depthwise_conv_2d(kernel_size = 3, input_shape = c(4, 4)), "shape")
  expect_snapshot(layer_depthwise_conv_2d(kernel_size = 3, filters = 4), error = TRUE)
})

test_that("inputs must be 4D numeric arrays", {
  expect_depthwise_error(layer_depthwise_conv_2d(1:10, 3), "shape")
  expect_depthwise_error(layer_depthwise_conv_2d(matrix(0, 5, 5), 3), "shape")
  expect_depthwise_error(layer_depthwise_conv_2d(array(0, c(2, 5, 5)), 3), "shape")
  expect_depthwise_error(layer_depthwise_conv_2d(array(0, c(1, 2, 5, 5, 1)), 3), "shape")
  expect_depthwise_error(layer_depthwise_conv_2d(array("a", c(1, 5, 5, 1)), 3), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(array(1i, c(1, 5, 5, 1)), 3), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(data.frame(a = 1), 3), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(list(1, 2), 3), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(NULL, 3), "type")
  expect_depthwise_error(layer_depthwise_conv_2d(array(0, c(1, 5, 5, 0)), 3), "shape")
  expect_snapshot(error = TRUE, {
    layer_depthwise_conv_2d(array(0, c(2, 5, 5)), 3, name = "dw")
    layer_depthwise_conv_2d(array("a", c(1, 5, 5, 1)), 3)
  })
})

test_that("a layer that has run checks every later input as it did the first", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3)
  layer(array(0, c(1, 5, 5, 2)))
  expect_depthwise_error(layer(), "value")
  expect_depthwise_error(layer(rep(0, 50)), "shape")
  expect_depthwise_error(layer(array(0, c(5, 5, 2))), "shape")
  expect_depthwise_error(layer(array(0, c(1, 5, 5, 3))), "shape")
  expect_depthwise_error(layer(data.frame(a = 1)), "type")
  expect_depthwise_error(layer(array("a", c(1, 5, 5, 2))), "type")
  expect_identical(layer(array(1L, c(1, 5, 5, 2))), layer(array(1, c(1, 5, 5, 2))))
  expect_identical(layer(array(TRUE, c(1, 5, 5, 2))), layer(array(1, c(1, 5, 5, 2))))
})

test_that("an empty output is an error naming the input shape, kernel and dilation", {
  expect_depthwise_error(layer_depthwise_conv_2d(array(0, c(1, 2, 2, 1)), 3), "shape")
  expect_depthwise_error(layer_depthwise_conv_2d(array(0, c(1, 5, 5, 1)), 3, dilation_rate = 3), "shape")
  expect_snapshot(layer_depthwise_conv_2d(array(0, c(1, 5, 5, 1)), 3, dilation_rate = 3), error = TRUE)
})

test_that("a layer cannot be piped into a layer", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3)
  expect_depthwise_error(layer_depthwise_conv_2d(layer, 3), "type")
})

test_that("the C++ entry points reject inconsistent input with a classed error", {
  kernel <- array(0, c(3, 3, 2, 1))
  expect_depthwise_error(run_cpp(dw_forward(x, array(0, c(3, 3, 5, 1)), NULL, c(1L, 1L), c(1L, 1L),
                                            0L, FALSE, 0L, 1L, FALSE)), "internal")
  expect_depthwise_error(run_cpp(dw_forward(x, kernel, rep(0, 5), c(1L, 1L), c(1L, 1L),
                                            0L, FALSE, 0L, 1L, FALSE)), "internal")
  expect_depthwise_error(run_cpp(dw_forward(x, kernel, NULL, c(1L, 1L), c(1L, 1L),
                                            0L, FALSE, 99L, 1L, FALSE)), "internal")
  expect_depthwise_error(run_cpp(dw_output_geometry(c(1, 2^40, 2^40, 4), c(1L, 1L), c(1L, 1L),
                                                    c(1L, 1L), 0L, 1L, FALSE)), "size")
})

test_that("an R error inside a guarded C++ call becomes a classed error; a classed one keeps its class", {
  # What the guard around large outputs is for: their allocation failing
  # inside the C++ call raises an R error, which must not reach the user
  # unclassed.
  err <- expect_depthwise_error(run_cpp(stop("cannot allocate vector of size 9.0 Gb")), "size")
  expect_match(conditionMessage(err), "too large")
  expect_match(conditionMessage(err), "9.0 Gb", fixed = TRUE)
  err <- expect_depthwise_error(run_cpp(stop("a failure from R")), "internal")
  expect_match(conditionMessage(err), "a failure from R", fixed = TRUE)
  err <- expect_depthwise_error(run_cpp(abort_depthwise("bad value", "value")), "value")
  expect_false(inherits(err, "depthwise_error_internal"))
  # Warnings pass through untouched, and the value comes back.
  expect_warning(v <- run_cpp({ warning("careful"); 42 }), "careful")
  expect_identical(v, 42)
})
