# The 42 golden cases (TensorFlow.js float32, cross-checked with PyTorch
# float64) must match within 1e-5 of the output's scale.

for (dir in golden_cases()) {
  case <- read_golden_case(dir)
  test_that(paste("golden case", basename(dir), "matches"), {
    layer <- layer_depthwise_conv_2d(
      kernel_size = case$kernel_size, strides = case$strides, padding = case$padding,
      depth_multiplier = case$depth_multiplier, data_format = case$data_format,
      dilation_rate = case$dilation_rate, activation = case$activation, use_bias = case$use_bias
    )
    build(layer, dim(case$x))
    set_weights(layer, if (case$use_bias) list(case$kernel, case$bias) else list(case$kernel))
    y <- layer(case$x)
    expect_identical(dim(y), dim(case$y))
    expect_lt(scale_rel_diff(y, case$y), 1e-5)
  })
}

test_that("the plain-R oracle agrees with the golden corpus", {
  for (dir in golden_cases()[c(1, 7, 11, 22, 25, 28, 30, 31, 39)]) {
    case <- read_golden_case(dir)
    ref <- ref_depthwise(case$x, case$kernel, case$bias, case$strides, case$dilation_rate,
                         case$padding, case$data_format, case$activation)
    expect_lt(scale_rel_diff(ref, case$y), 1e-5)
  }
})

test_that("the corpus is complete", {
  expect_length(golden_cases(), 42)
})
