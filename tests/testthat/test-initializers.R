test_that("Keras fans for a (kh, kw, C, M) kernel", {
  expect_equal(compute_fans(c(3, 5, 12, 2)), c(3 * 5 * 12, 3 * 5 * 2))
  expect_equal(compute_fans(24), c(24, 24))
})

test_that("glorot_uniform stays within sqrt(6 / (fan_in + fan_out))", {
  w <- initializer_draw("glorot_uniform", c(3, 3, 40, 2))
  limit <- sqrt(6 / (3 * 3 * 40 + 3 * 3 * 2))
  expect_true(all(abs(w) <= limit))
  expect_gt(max(abs(w)), 0.9 * limit)
})

test_that("variance-scaling initializers have the Keras variance", {
  dims <- c(5, 5, 200, 4)
  fans <- compute_fans(dims)
  set.seed(11)
  cases <- list(
    he_normal = 2 / fans[1], he_uniform = 2 / fans[1], lecun_normal = 1 / fans[1],
    lecun_uniform = 1 / fans[1], glorot_normal = 2 / sum(fans), glorot_uniform = 2 / sum(fans)
  )
  for (name in names(cases)) {
    w <- initializer_draw(name, dims)
    expect_equal(var(as.vector(w)), cases[[name]], tolerance = 0.05, label = name)
  }
  w <- initializer_draw(initializer_he_normal(), dims)
  expect_true(all(abs(w) <= 2 * sqrt(2 / fans[1]) / 0.87962566103423978))
})

test_that("simple initializers", {
  expect_equal(as.vector(initializer_draw("zeros", 4)), rep(0, 4))
  expect_equal(as.vector(initializer_draw("ones", 4)), rep(1, 4))
  expect_equal(as.vector(initializer_draw(initializer_constant(2.5), 3)), rep(2.5, 3))
  u <- initializer_draw("random_uniform", 1000)
  expect_true(all(abs(u) <= 0.05))
  t <- initializer_draw(initializer_truncated_normal(mean = 1, stddev = 2), 1000)
  expect_true(all(abs(t - 1) <= 4))
  n <- initializer_draw(initializer_random_normal(stddev = 3), 5000)
  expect_equal(sd(n), 3, tolerance = 0.05)
})

test_that("initializers are reproducible under set.seed() and with seed =", {
  set.seed(3)
  a <- layer_depthwise_conv_2d(kernel_size = 3, input_shape = c(5, 5, 4))
  set.seed(3)
  b <- layer_depthwise_conv_2d(kernel_size = 3, input_shape = c(5, 5, 4))
  expect_identical(get_weights(a), get_weights(b))
  init <- initializer_glorot_normal(seed = 7)
  expect_identical(initializer_draw(init, c(3, 3, 2, 1)), initializer_draw(init, c(3, 3, 2, 1)))
  expect_false(identical(initializer_draw(initializer_glorot_normal(seed = 8), c(3, 3, 2, 1)),
                         initializer_draw(init, c(3, 3, 2, 1))))
})

test_that("an R function initializer receives the shape", {
  seen <- NULL
  init <- function(shape, dtype = NULL) {
    seen <<- shape
    array(0.5, shape)
  }
  layer <- layer_depthwise_conv_2d(kernel_size = c(2, 3), depth_multiplier = 2,
                                   depthwise_initializer = init, input_shape = c(6, 6, 3))
  expect_identical(format(seen), "shape(2, 3, 3, 2)")
  expect_true(all(get_weights(layer)[[1]] == 0.5))
})

test_that("Keras class names are accepted as initializer names", {
  expect_identical(resolve_initializer("GlorotUniform"), initializer_glorot_uniform())
  expect_identical(resolve_initializer("he_normal"), initializer_he_normal())
  expect_output(print(initializer_random_uniform()), "RandomUniform")
})
