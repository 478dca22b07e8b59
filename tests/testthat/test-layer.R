test_that("the seed example works", {
  x <- random_uniform(c(4, 10, 10, 12))
  y <- x |> layer_depthwise_conv_2d(kernel_size = 3, activation = "relu")
  expect_identical(format(shape(y)), "shape(4, 8, 8, 12)")
  expect_output(print(shape(y)), "^shape\\(4, 8, 8, 12\\)$")
  expect_true(all(y >= 0))
})

test_that("a layer without object is callable, builds once and reuses its weights", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 2, bias_initializer = "ones")
  expect_s3_class(layer, "depthwise_layer")
  expect_false(layer$built)
  x <- random_uniform(c(2, 6, 7, 3), seed = 1)
  y1 <- layer(x)
  expect_true(layer$built)
  w <- get_weights(layer)
  expect_identical(dim(w[[1]]), c(3L, 3L, 3L, 2L))
  expect_equal(as.vector(w[[2]]), rep(1, 6))
  x2 <- random_uniform(c(5, 9, 4, 3), seed = 2)
  y2 <- layer(x2)
  expect_identical(get_weights(layer), w)
  expect_equal(y2, ref_depthwise(x2, w[[1]], w[[2]]), tolerance = 1e-12)
  expect_identical(dim(y1), c(2L, 4L, 5L, 6L))
})

test_that("a built layer refuses another channel count", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3, name = "dw4")
  layer(array(0, c(1, 5, 5, 4)))
  expect_error(layer(array(0, c(1, 5, 5, 3))), class = "depthwise_error_shape")
  expect_snapshot(layer(array(0, c(1, 5, 5, 3))), error = TRUE)
})

test_that("integer and logical arrays are converted", {
  xi <- array(1:32, c(1, 4, 4, 2))
  layer <- layer_depthwise_conv_2d(kernel_size = 2, depthwise_initializer = "ones")
  expect_equal(layer(xi), layer(xi + 0))
  xl <- array(c(TRUE, FALSE), c(1, 4, 4, 2))
  expect_equal(layer(xl), layer(xl + 0))
})

test_that("use_bias = FALSE means no bias weight", {
  layer <- layer_depthwise_conv_2d(kernel_size = 2, use_bias = FALSE)
  layer(array(1, c(1, 3, 3, 2)))
  expect_length(get_weights(layer), 1L)
  expect_null(layer$bias)
  expect_equal(count_params(layer), 8)
})

test_that("get_weights/set_weights round-trip and check shapes", {
  layer <- layer_depthwise_conv_2d(kernel_size = c(2, 3), depth_multiplier = 2)
  x <- random_uniform(c(1, 4, 5, 3), seed = 9)
  layer(x)
  kernel <- array(seq_len(2 * 3 * 3 * 2) / 10, c(2, 3, 3, 2))
  bias <- seq_len(6)
  set_weights(layer, list(kernel, bias))
  expect_equal(get_weights(layer)[[1]], kernel)
  expect_equal(as.vector(get_weights(layer)[[2]]), as.numeric(bias))
  expect_equal(layer(x), ref_depthwise(x, kernel, bias), tolerance = 1e-12)
  expect_error(set_weights(layer, list(kernel)), class = "depthwise_error_shape")
  expect_error(set_weights(layer, list(kernel[, , 1:2, ], bias)), class = "depthwise_error_shape")
  expect_error(set_weights(layer, list(kernel, 1:5)), class = "depthwise_error_shape")
  expect_error(set_weights(layer, list(kernel, letters[1:6])), class = "depthwise_error_type")
  expect_error(set_weights(layer, kernel), class = "depthwise_error_type")
  expect_snapshot(set_weights(layer, list(kernel[, , 1:2, ], bias)), error = TRUE)
})

test_that("weights are not available before the layer is built", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3, name = "dw")
  expect_error(get_weights(layer), class = "depthwise_error_state")
  expect_error(count_params(layer), class = "depthwise_error_state")
  expect_snapshot(get_weights(layer), error = TRUE)
})

test_that("build() and input_shape build without data", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3, input_shape = c(10, 10, 12))
  expect_true(layer$built)
  expect_equal(count_params(layer), 3 * 3 * 12 + 12)
  layer2 <- layer_depthwise_conv_2d(kernel_size = 3, data_format = "channels_first")
  build(layer2, shape(NA, 4, 8, 8))
  expect_identical(dim(get_weights(layer2)[[1]]), c(3L, 3L, 4L, 1L))
})

test_that("names are generated per session and can be given", {
  a <- layer_depthwise_conv_2d(kernel_size = 1)
  b <- layer_depthwise_conv_2d(kernel_size = 1)
  expect_match(a$name, "^depthwise_conv2d(_[0-9]+)?$")
  expect_false(identical(a$name, b$name))
  expect_identical(layer_depthwise_conv_2d(kernel_size = 1, name = "mine")$name, "mine")
})

test_that("data_format NULL follows config_image_data_format()", {
  old <- config_set_image_data_format("CHANNELS_FIRST")
  on.exit(config_set_image_data_format(old))
  expect_identical(config_image_data_format(), "channels_first")
  layer <- layer_depthwise_conv_2d(kernel_size = 3)
  expect_identical(layer$data_format, "channels_first")
  expect_identical(dim(layer(array(0, c(1, 2, 5, 6)))), c(1L, 2L, 3L, 4L))
})

test_that("config_image_data_format() reads keras.json", {
  dir <- withr::local_tempdir()
  withr::local_envvar(KERAS_HOME = dir)
  old <- the$image_data_format
  the$image_data_format <- NULL
  on.exit(the$image_data_format <- old, add = TRUE)
  expect_identical(config_image_data_format(), "channels_last")
  writeLines('{"floatx": "float32", "image_data_format": "channels_first", "backend": "jax"}',
             file.path(dir, "keras.json"))
  expect_identical(config_image_data_format(), "channels_first")
  writeLines('{"image_data_format": "sideways"}', file.path(dir, "keras.json"))
  expect_identical(config_image_data_format(), "channels_last")
})

test_that("padding and data_format take any case", {
  x <- random_uniform(c(1, 5, 5, 2), seed = 1)
  a <- layer_depthwise_conv_2d(x, 3, padding = "SAME", data_format = "Channels_Last",
                               depthwise_initializer = "ones")
  expect_identical(dim(a), c(1L, 5L, 5L, 2L))
})

test_that("kernel_size, strides and dilation accept one number, two, or a list", {
  x <- random_uniform(c(1, 12, 12, 1), seed = 3)
  l1 <- layer_depthwise_conv_2d(x, 3, strides = 2, depthwise_initializer = "ones")
  l2 <- layer_depthwise_conv_2d(x, c(3, 3), strides = list(2L, 2L), depthwise_initializer = "ones")
  expect_identical(l1, l2)
  expect_identical(dim(layer_depthwise_conv_2d(x, list(3, 2), dilation_rate = 2)), c(1L, 8L, 10L, 1L))
})

test_that("'same' padding puts the odd extra pixel at the bottom and right", {
  # 4x4 input, kernel 2, stride 1: total padding 1, all of it after.
  x <- array(1:16, c(1, 4, 4, 1))
  y <- layer_depthwise_conv_2d(x, 2, padding = "same", depthwise_initializer = "ones", use_bias = FALSE)
  expect_equal(y[1, 4, 4, 1], 16)
  expect_equal(y[1, 1, 1, 1], 1 + 2 + 5 + 6)
})

test_that("shape() builds and reads shapes", {
  expect_identical(format(shape(4, 10, 10, 12)), "shape(4, 10, 10, 12)")
  expect_identical(format(shape(NA, 3)), "shape(NA, 3)")
  expect_identical(format(shape(NULL, 3)), "shape(NA, 3)")
  expect_identical(format(shape(c(2, 3), list(4))), "shape(2, 3, 4)")
  expect_identical(format(shape(array(0, c(2, 3, 4)))), "shape(2, 3, 4)")
  expect_error(shape(1.5), class = "depthwise_error_value")
  expect_error(shape("a"), class = "depthwise_error_type")
})

test_that("random_uniform and random_normal are reproducible and in range", {
  set.seed(1)
  a <- random_uniform(c(3, 4), minval = -2, maxval = 5)
  set.seed(1)
  b <- random_uniform(shape(3, 4), minval = -2, maxval = 5)
  expect_identical(a, b)
  expect_true(all(a >= -2 & a <= 5))
  expect_identical(random_normal(10, seed = 5), random_normal(10, seed = 5))
  set.seed(2)
  before <- runif(1)
  set.seed(2)
  random_normal(10, seed = 5)
  expect_identical(runif(1), before)
  expect_error(random_uniform(c(2, NA)), class = "depthwise_error_value")
  expect_error(random_normal(2, stddev = -1), class = "depthwise_error_value")
})

test_that("layer fields are reachable with $", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3, name = "dw_fields")
  expect_identical(layer$type, "DepthwiseConv2D")
  expect_identical(layer$kernel_size, c(3L, 3L))
  expect_null(layer$input_shape)
  layer(array(0, c(2, 5, 5, 1)))
  expect_identical(format(layer$input_shape), "shape(2, 5, 5, 1)")
  expect_identical(format(layer$output_shape), "shape(2, 3, 3, 1)")
  expect_length(layer$weights, 2L)
  expect_output(print(layer), "DepthwiseConv2D")
  # They follow the last call that succeeded.
  layer(array(0, c(1, 7, 6, 1)))
  expect_identical(format(layer$input_shape), "shape(1, 7, 6, 1)")
  expect_identical(format(layer$output_shape), "shape(1, 5, 4, 1)")
  expect_error(layer(array(0, c(1, 7, 6, 2))), class = "depthwise_error_shape")
  expect_error(layer(array(0, c(1, 2, 2, 1))), class = "depthwise_error_shape")
  expect_identical(format(layer$output_shape), "shape(1, 5, 4, 1)")
  withr::local_options(depthwise.num_threads = "many")
  expect_error(layer(array(0, c(1, 300, 300, 1))), class = "depthwise_error")
  expect_identical(format(layer$input_shape), "shape(1, 7, 6, 1)")
  expect_identical(format(layer$output_shape), "shape(1, 5, 4, 1)")
})

test_that("keep_last_output() stores the latest output only when asked", {
  layer <- layer_depthwise_conv_2d(kernel_size = 3)
  x <- random_uniform(c(1, 6, 6, 2), seed = 1)
  layer(x)
  expect_null(layer$last_output)
  keep_last_output(layer)
  y <- layer(x)
  expect_identical(layer$last_output, y)
  y2 <- layer(x * 2)
  expect_identical(layer$last_output, y2)
  keep_last_output(layer, FALSE)
  expect_null(layer$last_output)
  expect_error(keep_last_output(layer, NA), class = "depthwise_error_value")
})

test_that("compute_output_shape() agrees with the forward pass, dilation included", {
  set.seed(12)
  for (k in 1:40) {
    fmt <- sample(c("channels_last", "channels_first"), 1)
    ks <- sample(1:4, 2, TRUE)
    dil <- if (k %% 2) sample(1:3, 2, TRUE) else c(1L, 1L)
    st <- if (k %% 2) c(1L, 1L) else sample(1:3, 2, TRUE)
    pad <- sample(c("valid", "same"), 1)
    hw <- (ks - 1) * dil + 1 + sample(0:5, 2, TRUE)
    C <- sample(1:3, 1)
    dims <- if (fmt == "channels_first") c(2, C, hw) else c(2, hw, C)
    layer <- layer_depthwise_conv_2d(kernel_size = ks, strides = st, dilation_rate = dil, padding = pad,
                                     data_format = fmt, depth_multiplier = sample(1:2, 1))
    predicted <- compute_output_shape(layer, shape(NA, dims[-1]))
    actual <- dim(layer(array(0, dims)))
    expect_identical(unclass(predicted), c(NA, actual[-1]))
  }
  expect_error(compute_output_shape(layer_depthwise_conv_2d(kernel_size = 5), shape(NA, 3, 3, 1)),
               class = "depthwise_error_shape")
  expect_error(compute_output_shape(layer_depthwise_conv_2d(kernel_size = 5), c(3, 3)),
               class = "depthwise_error_shape")
})
