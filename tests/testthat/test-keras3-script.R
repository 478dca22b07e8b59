# A keras3-style script, end to end, checked against the golden corpus.

test_that("a keras3-style script runs unchanged and matches the golden numbers", {
  case <- read_golden_case(file.path(golden_dir(), "04_k3_valid_dm2_relu"))
  n <- dim(case$x)

  model <- keras_model_sequential(input_shape = n[-1]) |>
    layer_depthwise_conv_2d(
      kernel_size = c(3, 3),
      depth_multiplier = 2,
      activation = "relu"
    )
  summary_text <- capture.output(summary(model))
  expect_true(any(grepl("(DepthwiseConv2D)", summary_text, fixed = TRUE)))

  model |> get_layer(index = 1) |> set_weights(list(case$kernel, case$bias))
  preds <- model |> predict(case$x, verbose = 0)
  expect_lt(scale_rel_diff(preds, case$y), 1e-5)

  config <- get_config(model)
  restored <- from_config(config)
  set_weights(restored, get_weights(model))
  expect_identical(predict(restored, case$x, verbose = 0), preds)

  path <- withr::local_tempfile(fileext = ".rds")
  saveRDS(model, path)
  expect_identical(predict(readRDS(path), case$x, verbose = 0), preds)
  expect_equal(count_params(model), 3 * 3 * 4 * 2 + 8)
})
