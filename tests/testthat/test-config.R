roundtrip_layer <- function(...) {
  layer <- layer_depthwise_conv_2d(...)
  config <- get_config(layer)
  copy <- from_config(config)
  list(layer = layer, copy = copy, config = config)
}

test_that("get_config() has Keras' keys in Keras' order", {
  config <- get_config(layer_depthwise_conv_2d(kernel_size = c(3, 5)))
  expect_identical(names(config), c(
    "name", "trainable", "dtype", "depth_multiplier", "kernel_size", "strides", "padding",
    "data_format", "dilation_rate", "activation", "use_bias", "depthwise_initializer",
    "bias_initializer", "depthwise_regularizer", "bias_regularizer", "activity_regularizer",
    "depthwise_constraint", "bias_constraint"))
  expect_identical(config$kernel_size, list(3L, 5L))
  expect_identical(config$activation, "linear")
  expect_identical(config$depthwise_initializer$class_name, "GlorotUniform")
  expect_identical(attr(config, "class_name"), "DepthwiseConv2D")
})

test_that("from_config() round-trips every kind of argument", {
  cases <- list(
    list(kernel_size = 3),
    list(kernel_size = c(2, 4), strides = c(2, 1), padding = "same", depth_multiplier = 3,
         data_format = "channels_first", activation = "gelu", use_bias = FALSE, name = "x1",
         trainable = FALSE, dtype = "float64"),
    list(kernel_size = 3, dilation_rate = c(2, 3), activation = function(v) v * 2,
         depthwise_initializer = initializer_he_normal(seed = 4),
         bias_initializer = initializer_constant(0.25)),
    list(kernel_size = 1, depthwise_initializer = initializer_variance_scaling(2, "fan_out", "uniform", 1),
         bias_initializer = initializer_random_normal(1, 2, seed = 3),
         depthwise_regularizer = regularizer_l1_l2(0.1, 0.2), bias_regularizer = regularizer_l2(),
         activity_regularizer = function(y) sum(y^2),
         depthwise_constraint = constraint_minmaxnorm(0.1, 2, 0.5, c(1, 2)),
         bias_constraint = constraint_nonneg()),
    list(kernel_size = 3, depthwise_initializer = function(shape, dtype = NULL) array(1, shape),
         depthwise_constraint = constraint_unitnorm(axis = 1:3), bias_constraint = constraint_maxnorm(3),
         activation = "swish")
  )
  x4 <- random_normal(c(2, 9, 9, 2), seed = 1)
  for (args in cases) {
    r <- do.call(roundtrip_layer, args)
    expect_identical(get_config(r$copy), r$config)
    expect_false(r$copy$built)
    # Same config + same weights = same outputs.
    x <- if (identical(r$config$data_format, "channels_first")) aperm(x4, c(1, 4, 2, 3)) else x4
    y <- r$layer(x)
    r$copy(x)
    set_weights(r$copy, get_weights(r$layer))
    expect_identical(r$copy(x), y)
    expect_identical(r$copy$losses, r$layer$losses)
  }
})

test_that("a model's config round-trips", {
  model <- keras_model_sequential(input_shape = c(8, 8, 3), name = "net") |>
    layer_depthwise_conv_2d(3, activation = "relu", name = "p") |>
    layer_depthwise_conv_2d(3, depth_multiplier = 2, name = "q")
  config <- get_config(model)
  copy <- from_config(config)
  expect_identical(get_config(copy), config)
  expect_identical(copy$name, "net")
  expect_true(copy$built)
  set_weights(copy, get_weights(model))
  x <- random_uniform(c(2, 8, 8, 3), seed = 7)
  expect_identical(copy(x), model(x))
})

test_that("corrupt configs give classed errors", {
  good <- get_config(layer_depthwise_conv_2d(kernel_size = 3))
  bad <- good; bad$filters <- 3
  expect_error(from_config(bad), class = "depthwise_error_value")
  bad <- good; bad$kernel_size <- NULL
  expect_error(from_config(bad), class = "depthwise_error_value")
  bad <- good; bad$kernel_size <- list("a")
  expect_error(from_config(bad), class = "depthwise_error")
  bad <- good; bad$depthwise_initializer <- list(class_name = "Nope", config = list())
  expect_error(from_config(bad), class = "depthwise_error_value")
  bad <- good; bad$depthwise_initializer$config <- list(seed = "x")
  expect_error(from_config(bad), class = "depthwise_error_value")
  bad <- good; bad$depthwise_regularizer <- 5
  expect_error(from_config(bad), class = "depthwise_error")
  bad <- good; bad$padding <- "full"
  expect_error(from_config(bad), class = "depthwise_error_value")
  expect_error(from_config(list(1, 2)), class = "depthwise_error_type")
  expect_error(from_config("config"), class = "depthwise_error_type")
  expect_error(from_config(structure(list(a = 1), class_name = "Dense")), class = "depthwise_error_value")
  expect_error(from_config(list(name = "m", layers = list(list(class_name = "Dense", config = list())))),
               class = "depthwise_error_value")
  expect_error(from_config(list(name = "m", layers = list(), build_input_shape = c(1, 2))),
               class = "depthwise_error_shape")
})

test_that("saveRDS()/readRDS() of a built layer and a model give identical outputs", {
  x <- random_normal(c(2, 7, 7, 3), seed = 8)
  layer <- layer_depthwise_conv_2d(kernel_size = 3, activation = "mish", depth_multiplier = 2,
                                   depthwise_regularizer = regularizer_l2())
  y <- layer(x)
  path <- withr::local_tempfile(fileext = ".rds")
  saveRDS(layer, path)
  again <- readRDS(path)
  expect_identical(again(x), y)
  expect_identical(get_weights(again), get_weights(layer))
  expect_identical(again$losses, layer$losses)

  model <- keras_model_sequential(input_shape = c(7, 7, 3)) |>
    layer_depthwise_conv_2d(3, activation = function(v) pmax(v, 0)) |>
    layer_depthwise_conv_2d(3)
  ym <- model(x)
  saveRDS(model, path)
  model2 <- readRDS(path)
  expect_identical(model2(x), ym)
  # The reloaded model is independent of the original.
  set_weights(get_layer(model2, index = 2), lapply(get_weights(get_layer(model2, index = 2)), `*`, 0))
  expect_identical(model(x), ym)
})

test_that("a reloaded layer works in a fresh R process", {
  skip_on_cran()
  layer <- layer_depthwise_conv_2d(kernel_size = 2, activation = "relu")
  x <- random_normal(c(1, 4, 4, 2), seed = 3)
  y <- layer(x)
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path))
  saveRDS(list(layer = layer, x = x), path)
  out <- callr::r(function(path) {
    obj <- readRDS(path)
    obj$layer(obj$x)
  }, args = list(path = path), libpath = .libPaths())
  expect_identical(out, y)
})

test_that("keys a config leaves out take the defaults; a bad class_name is an error", {
  config <- get_config(layer_depthwise_conv_2d(kernel_size = 3, activation = "relu", strides = 2))
  config$activation <- NULL
  config$strides <- NULL
  layer <- from_config(config)
  expect_identical(layer$activation, "linear")
  expect_identical(layer$strides, c(1L, 1L))
  expect_error(from_config(structure(config, class_name = NA)), class = "depthwise_error_value")
  expect_error(keras_model_sequential(layers = list(1)), "`layers` must be a layer", class = "depthwise_error_type")
})
