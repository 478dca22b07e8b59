test_that("layers added to a sequential model run in order, in place and piped", {
  model <- keras_model_sequential(input_shape = c(10, 10, 12), name = "m")
  layer_depthwise_conv_2d(model, kernel_size = 3, activation = "relu", name = "a")
  expect_length(model$layers, 1L)
  out <- model |> layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 2, name = "b")
  expect_identical(out, model)
  expect_length(model$layers, 2L)
  expect_identical(vapply(model$layers, function(l) l$name, ""), c("a", "b"))
  expect_true(model$built)
  x <- random_uniform(c(4, 10, 10, 12), seed = 1)
  y <- model(x)
  w <- get_weights(model)
  expect_length(w, 4L)
  expected <- ref_depthwise(ref_depthwise(x, w[[1]], w[[2]], activation = "relu"), w[[3]], w[[4]])
  expect_equal(y, expected, tolerance = 1e-12)
  expect_identical(format(model$output_shape), "shape(NA, 6, 6, 24)")
})

test_that("pipe chains create (and name) layers in pipe order", {
  model <- keras_model_sequential() |>
    layer_depthwise_conv_2d(kernel_size = 3) |>
    layer_depthwise_conv_2d(kernel_size = 3)
  names <- vapply(model$layers, function(l) l$name, "")
  ids <- as.integer(sub("^depthwise_conv2d_?", "", names) |> (\(v) ifelse(v == "", "0", v))())
  expect_true(ids[1] < ids[2])
})

test_that("shapes are checked when a layer is added to a model with an input shape", {
  model <- keras_model_sequential(input_shape = c(4, 4, 3))
  model |> layer_depthwise_conv_2d(kernel_size = 3)
  expect_error(model |> layer_depthwise_conv_2d(kernel_size = 3), class = "depthwise_error_shape")
  expect_length(model$layers, 1L)
  built_elsewhere <- layer_depthwise_conv_2d(kernel_size = 1, input_shape = c(4, 4, 7))
  expect_error(model |> built_elsewhere(), class = "depthwise_error")
  expect_error(layer_depthwise_conv_2d(model, 1) |> get_layer(index = 3), class = "depthwise_error_value")
})

test_that("a model without input shape builds on its first call", {
  model <- keras_model_sequential() |> layer_depthwise_conv_2d(kernel_size = 3)
  expect_false(model$built)
  expect_error(count_params(model), class = "depthwise_error_state")
  model(array(0, c(1, 5, 5, 2)))
  expect_true(model$built)
  expect_equal(count_params(model), 3 * 3 * 2 + 2)
  expect_identical(format(model$input_shape), "shape(NA, 5, 5, 2)")
})

test_that("predict() runs in batches and equals one call", {
  model <- keras_model_sequential(input_shape = c(6, 6, 3)) |>
    layer_depthwise_conv_2d(kernel_size = 3, activation = "tanh")
  x <- random_normal(c(10, 6, 6, 3), seed = 2)
  expect_equal(predict(model, x, batch_size = 3), model(x), tolerance = 0)
  expect_equal(predict(model, x), model(x))
  expect_output(predict(model, x, batch_size = 4, verbose = 2), "3/3 batches")
  expect_output(predict(model, x, batch_size = 4, verbose = 1), "100%")
  expect_silent(predict(model, x, batch_size = 4, verbose = 0))
  expect_error(predict(model, x, batch_size = 0), class = "depthwise_error_value")
  expect_error(predict(model, x, verbose = 3), class = "depthwise_error_value")
})

test_that("summary() shows Keras' table", {
  model <- keras_model_sequential(input_shape = c(10, 10, 12), name = "seq") |>
    layer_depthwise_conv_2d(kernel_size = 3, name = "dw")
  out <- capture.output(summary(model))
  expect_match(out[1], 'Model: "seq"', fixed = TRUE)
  expect_true(any(grepl("Layer (type)", out, fixed = TRUE)))
  expect_true(any(grepl("dw (DepthwiseConv2D)", out, fixed = TRUE)))
  expect_true(any(grepl("(None, 8, 8, 12)", out, fixed = TRUE)))
  expect_true(any(grepl("120", out, fixed = TRUE)))
  expect_true(any(grepl("Total params: 120", out, fixed = TRUE)))
  expect_true(any(grepl("Non-trainable params: 0", out, fixed = TRUE)))
  expect_identical(capture.output(print(model)), out)
  dw <- get_layer(model, "dw")
  dw$trainable <- FALSE
  out <- capture.output(summary(model))
  expect_true(any(grepl("Trainable params: 0 ", out, fixed = TRUE)))
  expect_true(any(grepl("Non-trainable params: 120", out, fixed = TRUE)))
  unbuilt <- keras_model_sequential(name = "u") |> layer_depthwise_conv_2d(3, name = "dw2")
  expect_true(any(grepl("0 (unbuilt)", capture.output(summary(unbuilt)), fixed = TRUE)))
  expect_snapshot(summary(model))
})

test_that("get_layer() finds layers by name or index", {
  model <- keras_model_sequential(input_shape = c(6, 6, 1)) |>
    layer_depthwise_conv_2d(3, name = "one") |>
    layer_depthwise_conv_2d(3, name = "two")
  expect_identical(get_layer(model, name = "two"), model$layers[[2]])
  expect_identical(get_layer(model, index = 1)$name, "one")
  expect_error(get_layer(model, name = "three"), class = "depthwise_error_value")
  expect_error(get_layer(model), class = "depthwise_error_incompatible")
  expect_error(get_layer(model, "one", 1), class = "depthwise_error_incompatible")
  expect_error(get_layer(list(), index = 1), class = "depthwise_error_type")
})

test_that("build() and compute_output_shape() work for models and agree with the forward pass", {
  model <- keras_model_sequential() |>
    layer_depthwise_conv_2d(kernel_size = 3, dilation_rate = 2, padding = "valid") |>
    layer_depthwise_conv_2d(kernel_size = 2, strides = 2, padding = "same", depth_multiplier = 3)
  shp <- compute_output_shape(model, shape(NA, 17, 12, 2))
  expect_identical(format(shp), "shape(NA, 7, 4, 6)")
  build(model, shape(NA, 17, 12, 2))
  expect_true(model$built)
  y <- model(array(0, c(2, 17, 12, 2)))
  expect_identical(dim(y), c(2L, 7L, 4L, 6L))
})

test_that("model options are validated", {
  expect_error(keras_model_sequential(input_shape = c(4, 4)), class = "depthwise_error_shape")
  expect_error(keras_model_sequential(foo = 1), class = "depthwise_error_value")
  expect_error(keras_model_sequential(name = 3), class = "depthwise_error_type")
  expect_error(keras_model_sequential(layers = list(1)), class = "depthwise_error_type")
  expect_error(keras_model_sequential()(array(0, c(1, 3, 3, 1))), class = "depthwise_error_state")
  model <- keras_model_sequential(input_shape = c(5, 5, 2), input_batch_size = 8,
                                  layers = list(layer_depthwise_conv_2d(kernel_size = 3)))
  expect_identical(format(model$input_shape), "shape(8, 5, 5, 2)")
  expect_length(model$layers, 1L)
})
