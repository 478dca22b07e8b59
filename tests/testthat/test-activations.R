values <- c(-1000, -30, -6.5, -3, -1.2, -0.5, -1e-8, 0, 1e-8, 0.3, 1, 2.9, 3, 6, 7.5, 30, 700)

for (name in setdiff(dw_activation_names(), c("softmax", "log_softmax"))) {
  test_that(paste("activation", name, "follows the Keras 3 formula"), {
    code <- match(name, dw_activation_names()) - 1L
    got <- dw_activate(values, code)
    expected <- ref_activation(name)(values)
    # exponential overflows to Inf at 1000 in both.
    expect_equal(got, expected, tolerance = 1e-12)
    expect_true(is.nan(dw_activate(NaN, code)))
  })
}

test_that("softmax and log_softmax act over the last axis", {
  y <- array(rnorm(2 * 3 * 4 * 5, sd = 3), c(2, 3, 4, 5))
  for (name in c("softmax", "log_softmax")) {
    got <- dw_activate(y, match(name, dw_activation_names()) - 1L)
    expect_equal(got, ref_activation(name)(y), tolerance = 1e-12)
  }
  s <- dw_activate(y, match("softmax", dw_activation_names()) - 1L)
  expect_equal(apply(s, 1:3, sum), array(1, c(2, 3, 4)))
})

test_that("channels_first softmax runs over the last axis (width), as in Keras", {
  x <- random_normal(c(1, 2, 4, 5), seed = 3)
  layer <- layer_depthwise_conv_2d(kernel_size = 1, data_format = "channels_first",
                                   activation = "softmax", depthwise_initializer = "ones")
  y <- layer(x)
  expect_equal(apply(y, 1:3, sum), array(1, c(1, 2, 4)))
  expect_equal(y, ref_activation("softmax")(x), tolerance = 1e-12)
})

test_that("aliases swish and hard_swish give silu and hard_silu", {
  x <- random_normal(c(1, 4, 4, 2), seed = 1)
  for (pair in list(c("swish", "silu"), c("hard_swish", "hard_silu"))) {
    a <- layer_depthwise_conv_2d(x, 3, activation = pair[1], depthwise_initializer = initializer_ones())
    b <- layer_depthwise_conv_2d(x, 3, activation = pair[2], depthwise_initializer = initializer_ones())
    expect_identical(a, b)
  }
})

test_that("an R function activation is applied to the output", {
  x <- random_normal(c(2, 6, 6, 3), seed = 2)
  layer <- layer_depthwise_conv_2d(kernel_size = 3, activation = function(v) v^2)
  y <- layer(x)
  w <- get_weights(layer)
  expect_equal(y, ref_depthwise(x, w[[1]], w[[2]])^2, tolerance = 1e-12)
  expect_identical(layer$activation, layer$config$activation)
  expect_true(is.function(layer$activation))
})

test_that("fused activations match the R formula inside a layer", {
  x <- random_normal(c(2, 7, 6, 3), seed = 4)
  for (name in c("relu", "gelu", "mish", "selu", "hard_sigmoid", "leaky_relu", "log_softmax")) {
    layer <- layer_depthwise_conv_2d(kernel_size = c(3, 2), padding = "same", activation = name,
                                     bias_initializer = "random_normal")
    y <- layer(x)
    w <- get_weights(layer)
    expect_equal(y, ref_depthwise(x, w[[1]], w[[2]], padding = "same", activation = name),
                 tolerance = 1e-12, label = name)
  }
})
