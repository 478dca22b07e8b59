test_that("regularizers follow Keras' formulas", {
  w <- array(c(-1, 2, -3, 4), c(2, 2))
  expect_equal(regularizer_l1(0.1)(w), 0.1 * 10)
  expect_equal(regularizer_l2(0.1)(w), 0.1 * 30)
  expect_equal(regularizer_l1_l2(0.1, 0.2)(w), 0.1 * 10 + 0.2 * 30)
  expect_error(regularizer_l2(-1), class = "depthwise_error_value")
  expect_output(print(regularizer_l1_l2()), "L1L2")
})

test_that("layer$losses lists weight penalties and, after a call, the activity penalty", {
  layer <- layer_depthwise_conv_2d(
    kernel_size = 2, depthwise_regularizer = regularizer_l2(0.5), bias_regularizer = "l1",
    activity_regularizer = function(y) sum(abs(y)), bias_initializer = "ones"
  )
  expect_identical(layer$losses, list())
  x <- random_normal(c(3, 4, 4, 2), seed = 1)
  y <- layer(x)
  w <- get_weights(layer)
  losses <- layer$losses
  expect_length(losses, 3L)
  expect_equal(losses[[1]], sum(abs(y)) / 3)
  expect_equal(losses[[2]], 0.5 * sum(w[[1]]^2))
  expect_equal(losses[[3]], 0.01 * sum(abs(w[[2]])))
  layer$trainable <- FALSE
  expect_length(layer$losses, 1L)
})

test_that("a model's losses are its layers' losses", {
  model <- keras_model_sequential(input_shape = c(5, 5, 1)) |>
    layer_depthwise_conv_2d(2, depthwise_regularizer = regularizer_l1(1)) |>
    layer_depthwise_conv_2d(2, depthwise_regularizer = regularizer_l1(2))
  w <- get_weights(model)
  expect_equal(unlist(model$losses), c(sum(abs(w[[1]])), 2 * sum(abs(w[[3]]))))
})

test_that("constraints follow Keras' formulas on a (kh, kw, C, M) kernel", {
  set.seed(5)
  w <- array(rnorm(3 * 3 * 4 * 2, sd = 2), c(3, 3, 4, 2))
  eps <- 1e-7
  # axis = c(1, 2): one norm per (c, m) filter.
  norms <- apply(w, 3:4, function(f) sqrt(sum(f^2)))
  got <- constraint_maxnorm(max_value = 1, axis = c(1, 2))(w)
  for (c in 1:4) for (m in 1:2) {
    expect_equal(got[, , c, m], w[, , c, m] * min(norms[c, m], 1) / (eps + norms[c, m]))
  }
  unit <- constraint_unitnorm(axis = c(1, 2))(w)
  expect_equal(apply(unit, 3:4, function(f) sqrt(sum(f^2))), array(1, c(4, 2)), tolerance = 1e-6)
  mm <- constraint_minmaxnorm(min_value = 0.5, max_value = 1.5, rate = 0.5, axis = 1:3)(w)
  n3 <- apply(w, 4, function(f) sqrt(sum(f^2)))
  for (m in 1:2) {
    desired <- 0.5 * min(max(n3[m], 0.5), 1.5) + 0.5 * n3[m]
    expect_equal(mm[, , , m], w[, , , m] * desired / (eps + n3[m]))
  }
  # Default axis 1: norms over the first axis, one per (b, c, m).
  d1 <- constraint_maxnorm(max_value = 0.1)(w)
  n1 <- sqrt(apply(w^2, 2:4, sum))
  expect_equal(d1[, 2, 3, 1], w[, 2, 3, 1] * min(n1[2, 3, 1], 0.1) / (eps + n1[2, 3, 1]))
  expect_true(all(constraint_nonneg()(w) >= 0))
  expect_equal(constraint_nonneg()(w)[w > 0], w[w > 0])
  expect_error(constraint_maxnorm(axis = 0), class = "depthwise_error_value")
  expect_error(constraint_maxnorm(axis = 5)(w), class = "depthwise_error_shape")
  expect_error(constraint_minmaxnorm(min_value = 2, max_value = 1), class = "depthwise_error_incompatible")
})

test_that("constraints apply on apply_constraints() and set_weights(constrain = TRUE)", {
  layer <- layer_depthwise_conv_2d(kernel_size = 2, depthwise_constraint = constraint_nonneg(),
                                   bias_constraint = function(b) pmin(b, 1), input_shape = c(4, 4, 2))
  kernel <- array(c(-1, 1), c(2, 2, 2, 1))
  set_weights(layer, list(kernel, c(5, -5)))
  expect_equal(get_weights(layer)[[1]], kernel)
  apply_constraints(layer)
  expect_true(all(get_weights(layer)[[1]] >= 0))
  expect_equal(as.vector(get_weights(layer)[[2]]), c(1, -5))
  set_weights(layer, list(kernel, c(3, 0)), constrain = TRUE)
  expect_equal(get_weights(layer)[[1]], kernel * (kernel >= 0))
  expect_equal(as.vector(get_weights(layer)[[2]]), c(1, 0))
  bad <- layer_depthwise_conv_2d(kernel_size = 2, depthwise_constraint = function(w) w[1],
                                 input_shape = c(4, 4, 1))
  expect_error(apply_constraints(bad), class = "depthwise_error_shape")
})
